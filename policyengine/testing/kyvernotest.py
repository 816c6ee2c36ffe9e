"""Kyverno CLI ``Test`` files (``cli.kyverno.io/v1alpha1``, and the older form with a top-level ``name``),
run as ``kyverno test`` runs them, for policies whose rules are CEL (docs/testing.md).

A test names policy files, resource files and a values file (``variables``); each entry of ``results``
expects ``pass``/``fail``/``skip``/``error`` for a policy (and rule) on the resources it names. Each
(entry, resource) pair is one case. Kyverno ``ClusterPolicy`` rules with ``validate.cel`` are converted
(``kyvernoconvert``); every other policy document (ValidatingPolicy, ValidatingAdmissionPolicy, …) goes to
the policy set as it is, and its results are those of the policy named after it. A resource the policy
does not match passes whatever the expectation, as in Kyverno ("excluded"). What the runner cannot
honour is a failed case whose reason starts with ``refused:``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from policyengine.errors import LoadError
from policyengine.gate import request_for, with_manifest_namespaces
from policyengine.inventory import from_documents
from policyengine.loader import Document
from policyengine.model import Outcome, SourceRef
from policyengine.policyset import build_policy_set
from policyengine.testing.cases import Case, Workspace, documents, load_reason, relative
from policyengine.testing.kyvernoconvert import KYVERNO_POLICY_KINDS, ConvertedRule, Refused, convert

TEST_API = ("cli.kyverno.io/v1alpha1", "Test")
FILE_NAME = "kyverno-test.yaml"
REFUSED = "refused: "
_KNOWN = frozenset(
    {"apiVersion", "kind", "metadata", "name", "policies", "resources", "variables", "results", "exceptions"}
    | {"paramResources", "clusterResources", "userinfo", "context", "values", "targetResources"}
    | {"jsonPayload", "jsonPayloads", "httpPayloads", "envoyPayloads", "apiCallResponses"}
    | {"globalContextEntries"}
)
_UNSUPPORTED: tuple[str, ...] = ("userinfo", "context", "values", "targetResources", "jsonPayload")
_UNSUPPORTED += ("jsonPayloads", "httpPayloads", "envoyPayloads", "apiCallResponses", "globalContextEntries")
_OUTCOME = {Outcome.FAIL: "fail", Outcome.ERROR: "error", Outcome.SKIP: "skip", Outcome.EXCEPTED: "skip"}
_OPERATIONS = ("CREATE", "UPDATE", "DELETE")
MAX_WALK_ENTRIES = 200_000


def is_kyverno_test(doc: Document) -> bool:
    """A Test document, or the older unversioned form in a file named ``kyverno-test.yaml``."""
    if (doc.api_version, doc.kind) == TEST_API:
        return True
    data = doc.data
    return (
        Path(doc.file).name == FILE_NAME
        and isinstance(data, dict)
        and "apiVersion" not in data
        and "kind" not in data
        and "results" in data
    )


def hidden_test_files(paths: Sequence[str]) -> list[str]:
    """``kyverno-test.yaml`` files inside hidden folders (``.kyverno-test/``), which the manifest walk
    leaves out, as ``kyverno test DIR`` finds them. Links are not followed (no loops) and the walk stops
    after MAX_WALK_ENTRIES directory entries, so a hostile tree cannot make it run unbounded."""
    found: list[str] = []
    seen = 0
    for path in paths:
        if not os.path.isdir(path):
            continue
        for folder, dirs, files in os.walk(path, followlinks=False):
            seen += len(dirs) + len(files)
            if seen > MAX_WALK_ENTRIES:
                return found
            dirs.sort()
            rel = Path(folder).relative_to(path).parts
            if FILE_NAME in files and any(part.startswith(".") for part in rel):
                found.append(os.path.join(folder, FILE_NAME))
    return found


@dataclass
class _Loaded:
    """A test's policies, resources and namespaces, loaded once for all its cases."""

    rules: dict[str, list[ConvertedRule]] = field(default_factory=dict)  # Kyverno policies, by name
    plain: set[str] = field(default_factory=set)  # other policies, by name
    refused: dict[str, str] = field(default_factory=dict)  # policy name -> reason
    engines: dict[str, Any] = field(default_factory=dict)  # policy name -> Engine
    resources: list[Document] = field(default_factory=list)
    by_name: dict[str, list[Document]] = field(default_factory=dict)  # resources by metadata.name
    inventory: Any = None
    operation: str = "CREATE"
    now: datetime = datetime.min


def cases(doc: Document, workspace: Workspace) -> list[Case]:
    """One case per resource of each ``results`` entry, named ``<test>/<policy>/<rule>/<resource>``."""
    data = doc.data
    test = str(data.get("name") or (data.get("metadata") or {}).get("name") or doc.file)
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        return [_broken(doc, test, f"unknown field {unknown[0]!r} in a Kyverno Test", (unknown[0],))]
    results = data.get("results")
    if not isinstance(results, list) or not results:
        message = f"{REFUSED}the test has no results, so it asserts nothing"
        return [_broken(doc, test, message, ("results",))]
    unsupported = [k for k in _UNSUPPORTED if data.get(k)]
    loaded: list[_Loaded] = []

    def load() -> _Loaded:
        if not loaded:
            loaded.append(_load(doc, workspace))
        return loaded[0]

    out: list[Case] = []
    for i, entry in enumerate(results):
        path = ("results", i)
        ref = SourceRef(doc.file, doc.line_of(path))
        if not isinstance(entry, Mapping) or not entry.get("policy"):
            out.append(_broken(doc, f"{test}/#{i}", "a result needs a policy", path))
            continue
        names = [str(r) for r in entry.get("resources") or ()]
        if not names:
            out.append(_broken(doc, f"{test}/#{i}", "a result needs resources", path))
            continue
        for name in names:
            case = f"{test}/{entry['policy']}/{entry.get('rule', '')}/{name}"
            if unsupported:
                reason = f"{REFUSED}the test uses {unsupported[0]}, which the runner does not provide"
                out.append(Case(case, ref, lambda r=reason: r))  # type: ignore[misc]
                continue
            out.append(Case(case, ref, _checker(load, entry, name)))
    return out


def _broken(doc: Document, name: str, message: str, path: tuple[str | int, ...]) -> Case:
    return Case(name, SourceRef(doc.file, doc.line_of(path)), lambda: message)


def _load(doc: Document, workspace: Workspace) -> _Loaded:
    data = doc.data
    loaded = _Loaded(now=workspace.now)
    extra = documents(relative(doc.file, p) for p in data.get("exceptions") or ())
    _add_policies(
        loaded, documents(relative(doc.file, p) for p in data.get("policies") or ()), extra, workspace
    )
    loaded.resources = documents(relative(doc.file, p) for p in data.get("resources") or ())
    for resource in loaded.resources:
        loaded.by_name.setdefault(resource.name, []).append(resource)
    cluster = documents(
        relative(doc.file, p)
        for p in [*(data.get("paramResources") or ()), *(data.get("clusterResources") or ())]
    )
    namespaces: list[Any] = []
    if data.get("variables"):
        values = documents([relative(doc.file, data["variables"])])
        namespaces, loaded.operation = _values(values[0].data if values else {})
    objects = [*namespaces, *(d.data for d in cluster)]
    inventory = from_documents(objects) if objects else None
    loaded.inventory = with_manifest_namespaces(inventory, loaded.resources)
    return loaded


def _add_policies(loaded: _Loaded, policy_docs: list[Document], extra: list[Document], ws: Workspace) -> None:
    """Kyverno policies get a policy set each (one refusal does not hide the others); every other
    document (policies with their bindings, exceptions) loads together, as ``check`` would load them."""
    plain = [d for d in policy_docs if (d.api_version, d.kind) not in KYVERNO_POLICY_KINDS]
    for policy_doc in policy_docs:
        if policy_doc in plain:
            continue
        name = policy_doc.name
        try:
            rules = convert(policy_doc.data)
        except Refused as err:
            loaded.refused[name] = str(err)
            continue
        loaded.rules[name] = rules
        docs = [
            Document(data, policy_doc.file, policy_doc.line, policy_doc.index)
            for r in rules
            for data in r.documents
        ]
        _build(loaded, [name], [*docs, *extra], ws)
    names = [d.name for d in plain if not d.kind.endswith("Binding")]
    loaded.plain.update(names)
    if plain:
        _build(loaded, names, [*plain, *extra], ws)


def _build(loaded: _Loaded, names: list[str], docs: list[Document], ws: Workspace) -> None:
    try:
        policy_set = build_policy_set(docs, compiler=ws.compiler)
    except LoadError as err:
        loaded.refused.update(dict.fromkeys(names, load_reason(err)))
        return
    engine = ws.engine_factory(policy_set)
    loaded.engines.update(dict.fromkeys(names, engine))


def _values(values: Any) -> tuple[list[Any], str]:
    """The parts of a values file that CEL sees: namespaces (objects, or names with labels) and the
    request operation of ``globalValues``; policy and rule values feed JMESPath and do not apply."""
    if not isinstance(values, Mapping):
        return [], "CREATE"
    namespaces = [n for n in values.get("namespaces") or () if isinstance(n, Mapping)]
    for sel in values.get("namespaceSelector") or ():
        if isinstance(sel, Mapping) and sel.get("name"):
            meta = {"name": str(sel["name"]), "labels": dict(sel.get("labels") or {})}
            namespaces.append({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
    glob = values.get("globalValues") or {}
    operation = str(glob.get("request.operation") or "CREATE") if isinstance(glob, Mapping) else "CREATE"
    return namespaces, operation.upper() if operation.upper() in _OPERATIONS else "CREATE"


def _checker(load: Any, entry: Mapping[str, Any], resource: str) -> Any:
    def check() -> str | None:
        loaded: _Loaded = load()
        policy = str(entry["policy"]).rpartition("/")[2]
        expected = str(entry.get("result", "")).lower()
        if policy in loaded.refused:
            return f"{REFUSED}{policy}: {loaded.refused[policy]}"
        if policy not in loaded.engines:
            return f"policy {policy!r} is not among the test's policies"
        targets = [d for d in loaded.by_name.get(resource.rpartition("/")[2], ()) if _names(d, resource)]
        if not targets:
            return f"no resource {resource!r} among the test's resources"
        operation = str(entry.get("operation") or loaded.operation).upper()
        for target in targets:
            got = _actual(loaded, policy, str(entry.get("rule") or ""), target, operation)
            wrong = [g for g in got if g != expected]
            if wrong:
                return f"expected {expected}, got {', '.join(got)} ({target.kind}/{target.name})"
        return None

    return check


def _names(doc: Document, wanted: str) -> bool:
    meta = doc.data.get("metadata") if isinstance(doc.data, dict) else None
    if not isinstance(meta, dict):
        return False
    ns, _, name = wanted.rpartition("/")
    return str(meta.get("name", "")) == name and (not ns or str(meta.get("namespace", "default")) == ns)


def _actual(loaded: _Loaded, policy: str, rule: str, target: Document, operation: str) -> list[str]:
    """The Kyverno result of each rule that gave a response; empty when the policy did not match."""
    request = request_for(target, operation=operation)
    # As kyverno test: UPDATE sends the resource as object and oldObject; DELETE only as oldObject.
    if operation == "UPDATE":
        request = replace(request, old_object=request.object)
    elif operation == "DELETE":
        request = replace(request, object=None, old_object=request.object)
    decision = loaded.engines[policy].evaluate(request, inventory=loaded.inventory, now=loaded.now)
    if policy in loaded.plain:
        by_rule = {policy: [r for r in decision.results if r.policy == policy]}
    else:
        wanted = {rule, f"autogen-{rule}", f"autogen-cronjob-{rule}"} if rule else None
        by_rule = {
            c.vap_name: [r for r in decision.results if r.policy == c.vap_name]
            for c in loaded.rules[policy]
            if wanted is None or c.rule in wanted
        }
    out = []
    for results in by_rule.values():
        if results:
            # Kyverno stops at the first validation that does not pass; results come in validation order.
            outcomes = [_OUTCOME.get(r.outcome, "pass") for r in results]
            out.append(next((o for o in outcomes if o != "pass"), "pass"))
    return out
