"""A loaded, fully checked policy set: policies, exceptions, organisation parameters and a digest.

``load_policy_set`` is all-or-nothing. Every document is schema-validated, converted, and every CEL
expression compiled; any problem anywhere raises one LoadError listing all of them, and nothing is
returned, so a caller holding a working set keeps it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from policyengine import errors, native, policyvars, requirements
from policyengine.cel import ANY
from policyengine.cel.parser import parse_once
from policyengine.errors import LoadError, Problem
from policyengine.expressions import (
    Compiler,
    check_variable_references,
    declarations,
    exception_expressions,
    policy_expressions,
    typed_expressions,
)
from policyengine.loader import DEFAULT_LIMITS, Document, InputLimits, collect_documents, discover
from policyengine.model import Policy, PolicyException, Result
from policyengine.schema import validate, with_defaults

NATIVE_GROUP = "policyengine.io/"
# Test cases live beside policies but are never policies (``policyengine test`` reads them); folders of
# this name inside a policy directory hold test fixtures and are not read as policies.
TEST_KINDS = frozenset(
    {
        ("policyengine.io/v1", "PolicyTest"),
        ("test.gatekeeper.sh/v1alpha1", "Suite"),
        ("cli.kyverno.io/v1alpha1", "Test"),
    }
)
TESTS_DIR = "tests"
_NATIVE_SCHEMAS = {
    "Policy": "policy.json",
    "PolicyException": "policy-exception.json",
    "GovernanceConfig": "governance-config.json",
    policyvars.KIND: "policy-variables.json",
}


def bundled_policies_dir() -> Path:
    """The packs shipped with the product (``policies/`` in the repository, ``policyengine/packs`` installed)."""
    return Path(str(resources.files("policyengine").joinpath("packs")))


@dataclass(frozen=True)
class PolicySet:
    policies: tuple[Policy, ...] = ()
    exceptions: tuple[PolicyException, ...] = ()
    # The merged GovernanceConfig spec, every key the schema gives a default filled in.
    config: Mapping[str, Any] = field(default_factory=dict)
    param_objects: tuple[Any, ...] = ()  # objects a binding's paramRef may select
    # The GovernanceConfig document that set each (section, key) of ``config``, to point at its lines.
    config_sources: Mapping[tuple[str, str], Document] = field(default_factory=dict)
    shared_variables: tuple[policyvars.SharedVariable, ...] = ()  # from PolicyVariables, in load order
    notes: tuple[str, ...] = ()  # what loaded but does nothing (an unbound policy, ...), for --verbose
    # Policies the merged config gives too few facts to evaluate (policyengine/requirements.py).
    unconfigured: tuple[requirements.Unconfigured, ...] = ()
    digest: str = ""
    compiler: Compiler = field(default_factory=Compiler, compare=False, repr=False)

    def by_name(self) -> dict[str, Policy]:
        return {p.name: p for p in self.policies}

    def needs(self, policy: str) -> tuple[str, ...] | None:
        """The config keys an unconfigured policy needs; None when it is configured (or needs none)."""
        return next((u.needs for u in self.unconfigured if u.policy == policy), None)

    def not_configured(self, policy: Policy) -> Result | None:
        """The skip result of ``policy`` when it is not configured (it is then not evaluated), else None."""
        needs = self.needs(policy.name)
        return None if needs is None else requirements.not_configured_result(policy, needs)

    def config_line(self, path: Sequence[str | int]) -> tuple[str, int]:
        """The file and line of a GovernanceConfig field, ``("spec", "models", "trustedKeys", 0)``, as
        merged: the document that set its (section, key) wins."""
        if len(path) >= 3:
            doc = self.config_sources.get((str(path[1]), str(path[2])))
            if doc is not None:
                return doc.file, doc.line_of(path)
        return "GovernanceConfig", 1


def _locate_config(doc: Document, sources: dict[tuple[str, str], Document]) -> None:
    """Record ``doc`` as the source of every (section, key) it sets, as ``merge_config`` merges them."""
    spec = doc.data.get("spec")
    for section, value in (spec or {}).items() if isinstance(spec, Mapping) else ():
        if isinstance(value, Mapping):
            for key in value:
                sources[(str(section), str(key))] = doc


def digest_documents(docs: Sequence[Document]) -> str:
    h = hashlib.sha256()
    for doc in sorted(docs, key=lambda d: (d.file, d.index)):
        h.update(json.dumps(doc.data, sort_keys=True, separators=(",", ":"), default=str).encode())
        h.update(b"\n")
    return "sha256:" + h.hexdigest()


@dataclass
class _Native:
    """The native documents of a set as they are read: policies, exceptions, config, shared variables."""

    policies: list[Policy] = field(default_factory=list)
    exceptions: list[PolicyException] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    config_sources: dict[tuple[str, str], Document] = field(default_factory=dict)
    shared: list[policyvars.SharedVariable] = field(default_factory=list)

    def add(self, doc: Document, problems: list[Problem]) -> None:
        """``doc``, which passed its schema."""
        if doc.kind == "Policy":
            self.policies.append(native.policy(doc, problems))
        elif doc.kind == "PolicyException":
            self.exceptions.append(native.exception(doc, problems))
        elif doc.kind == policyvars.KIND:
            self.shared.extend(policyvars.parse(doc))
        else:
            spec = doc.data.get("spec") or {}
            if doc.file != "<stdin>":
                spec = native.resolve_config_paths(spec, str(Path(doc.file).parent))
            self.config = native.merge_config(self.config, spec)
            _locate_config(doc, self.config_sources)


def _read_native(
    docs: Iterable[Document], compiler: Compiler, problems: list[Problem]
) -> tuple[_Native, list[Document]]:
    """The native documents read, and the others (Kubernetes and Gatekeeper kinds) for compat."""
    found_native = _Native()
    foreign: list[Document] = []
    for doc in docs:
        if not isinstance(doc.data, dict) or not doc.kind or not doc.api_version:
            problems.append(
                doc.problem(
                    errors.NOT_AN_OBJECT, "a policy document must be a mapping with apiVersion and kind"
                )
            )
            continue
        if (doc.api_version, doc.kind) in TEST_KINDS:
            continue
        schema = _NATIVE_SCHEMAS.get(doc.kind) if doc.api_version.startswith(NATIVE_GROUP) else None
        if schema is None:
            foreign.append(doc)
            continue
        found = _validate_native(doc, schema)
        if found:
            problems.extend(found)
            _compile_anyway(doc, compiler, problems, {p.path for p in found})
            continue
        found_native.add(doc, problems)
    return found_native, foreign


def build_policy_set(
    docs: Sequence[Document],
    *,
    config_docs: Sequence[Document] = (),
    compiler: Compiler | None = None,
) -> PolicySet:
    """Documents -> PolicySet. Raises LoadError with every problem found."""
    from policyengine import compat  # compat converts Kubernetes and Gatekeeper kinds to the same model

    compiler = compiler or Compiler()
    problems: list[Problem] = []
    with parse_once():  # a text is compiled, then read for its variables, maybe compiled again: one parse
        read, foreign = _read_native((*docs, *config_docs), compiler, problems)
        converted = compat.convert(foreign, problems)
        policies = [*read.policies, *converted.policies]
        read.exceptions.extend(converted.exceptions)
        _report_unclaimed(foreign, converted.claimed, problems)
        _check_names(policies, read.exceptions, problems)
        policies = _check_expressions(policies, read, compiler, problems)
    if problems:
        # A ValidatingAdmissionPolicy with several bindings (a template with several constraints) is several
        # policies sharing its expressions: report each problem of theirs once.
        unique = list(dict.fromkeys(problems))
        raise LoadError(sorted(unique, key=lambda p: (p.file, p.line)))
    config = with_defaults(read.config, "governance-config.json", ["spec"])
    return PolicySet(
        policies=tuple(policies),
        exceptions=tuple(read.exceptions),
        config=config,
        unconfigured=requirements.unconfigured(policies, config),
        param_objects=converted.param_objects,
        config_sources=read.config_sources,
        shared_variables=tuple(read.shared),
        notes=tuple(converted.notes),
        digest=digest_documents([*docs, *config_docs]),
        compiler=compiler,
    )


def _validate_native(doc: Document, schema: str) -> list[Problem]:
    found = validate(doc, schema)
    if doc.api_version != "policyengine.io/v1" and not found:
        found.append(
            doc.problem(errors.UNKNOWN_KIND, f"unsupported apiVersion {doc.api_version}", ["apiVersion"])
        )
    return found


def _report_unclaimed(foreign: Sequence[Document], claimed: set[int], problems: list[Problem]) -> None:
    for doc in foreign:
        if id(doc) not in claimed:
            problems.append(
                doc.problem(
                    errors.UNKNOWN_KIND,
                    f"{doc.api_version} {doc.kind} is not a policy document "
                    "(expected policyengine.io/v1 Policy, PolicyException, PolicyVariables or GovernanceConfig, "
                    "a ValidatingAdmissionPolicy or binding, a Gatekeeper ConstraintTemplate or constraint, "
                    "or a Kyverno ValidatingPolicy or PolicyException)",
                    ["kind"],
                )
            )


def _check_expressions(
    policies: list[Policy], read: _Native, compiler: Compiler, problems: list[Problem]
) -> list[Policy]:
    """Compile every expression against the names its document kind binds and the result its field
    needs, and check its ``variables.<name>`` references; the policies with their shared variables bound."""
    shared = policyvars.SharedVariables(read.shared, problems)
    compiler.check((v.expression for v in read.shared), problems, native.DECLARED)
    bound = []
    for p in policies:
        compiler.check(typed_expressions(p), problems, declarations(p))
        native_policy = p.origin == "Policy"  # shared variables are for native policies only
        check_variable_references(p, problems, shared.names if native_policy else frozenset())
        bound.append(shared.bind(p, list(policy_expressions(p)), problems) if native_policy else p)
    for e in read.exceptions:
        compiler.check(exception_expressions(e), problems, native.EXCEPTION_DECLARED)
    return bound


def _compile_anyway(doc: Document, compiler: Compiler, problems: list[Problem], reported: set[str]) -> None:
    """Compile the expressions of a document that failed its schema, when they can still be read, so
    that one run reports the CEL problems too instead of one kind of problem per run (but not of a
    field the schema already rejected: ``expression: 1`` is a schema problem, not a CEL one)."""
    try:
        if doc.kind == "Policy":
            exprs, declared = list(typed_expressions(native.policy(doc, []))), native.DECLARED
        elif doc.kind == "PolicyException":
            exprs, declared = (
                list(exception_expressions(native.exception(doc, []))),
                native.EXCEPTION_DECLARED,
            )
        elif doc.kind == policyvars.KIND:
            exprs, declared = [(v.expression, ANY) for v in policyvars.parse(doc)], native.DECLARED
        else:
            return
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        return  # too malformed to read further: the schema problems say why
    compiler.check(((e, r) for e, r in exprs if e.path not in reported), problems, declared)


def _check_names(
    policies: Sequence[Policy], exceptions: Sequence[PolicyException], problems: list[Problem]
) -> None:
    seen: dict[str, Policy] = {}
    for p in policies:
        first = seen.setdefault(p.name, p)
        if first is not p:
            problems.append(
                Problem(
                    p.source.file,
                    p.source.line,
                    errors.DUPLICATE_NAME,
                    f"policy {p.name!r} is already defined at {first.source.file}:{first.source.line}",
                    "metadata.name",
                )
            )
    seen_exc: dict[str, PolicyException] = {}
    for e in exceptions:
        first_exc = seen_exc.setdefault(e.name, e)
        if first_exc is not e:
            problems.append(
                Problem(
                    e.source.file,
                    e.source.line,
                    errors.DUPLICATE_NAME,
                    f"policy exception {e.name!r} is already defined at "
                    f"{first_exc.source.file}:{first_exc.source.line}",
                    "metadata.name",
                )
            )
        for i, name in enumerate(e.policies):
            if name not in seen:
                problems.append(
                    Problem(
                        e.source.file,
                        e.source.line,
                        errors.UNKNOWN_POLICY,
                        f"exception {e.name!r} names policy {name!r}, which is not loaded",
                        f"spec.policies[{i}]",
                    )
                )


def policy_files(paths: Sequence[str]) -> tuple[list[str], list[Problem]]:
    """``paths`` with each directory expanded to its files, leaving out its ``tests/`` folders, and a
    problem for every path the walk cannot read."""
    return discover(paths, skip_dirs=(TESTS_DIR,))


def load_policy_set(
    paths: Sequence[str],
    *,
    config_paths: Sequence[str] = (),
    include_bundled: bool = True,
    compiler: Compiler | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
) -> PolicySet:
    """Read policy directories/files (the bundled packs first, unless excluded) and config files."""
    all_paths = [str(bundled_policies_dir())] if include_bundled else []
    all_paths.extend(paths)
    files, problems = policy_files(all_paths)
    docs, read_problems = collect_documents(files, limits=limits)
    problems.extend(read_problems)
    config_docs, config_problems = collect_documents(list(config_paths), limits=limits)
    problems.extend(config_problems)
    for doc in config_docs:
        if doc.kind != "GovernanceConfig":
            problems.append(
                doc.problem(
                    errors.UNKNOWN_KIND,
                    f"--config takes GovernanceConfig documents, not {doc.kind or 'this'}",
                    ["kind"] if doc.kind else [],
                )
            )
    # Only the config documents go on: any other was just reported, and must not be reported again (or
    # loaded) as a policy document.
    config_docs = [d for d in config_docs if d.kind == "GovernanceConfig"]
    try:
        policy_set = build_policy_set(docs, config_docs=config_docs, compiler=compiler)
    except LoadError as err:
        problems.extend(err.problems)
    if problems:
        raise LoadError(problems)
    return policy_set
