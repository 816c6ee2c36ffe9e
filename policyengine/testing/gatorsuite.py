"""Gatekeeper ``Suite`` files (``test.gatekeeper.sh/v1alpha1``) run as ``gator verify`` runs them.

Each test loads its template and constraint (paths relative to the suite) into a policy set of their
own; each case reviews one object file. A plain object is wrapped into a request with no operation; an
``admission.k8s.io`` AdmissionReview is taken as the request, operation and oldObject included. An
assertion ``violations: yes | no | N`` counts the constraint's failed and errored results whose message
the optional ``message`` regex finds (unanchored, as Go's ``MatchString``); every assertion must hold.
PyYAML reads the YAML 1.1 booleans ``yes``/``no`` as True/False, so those mean yes/no too. ``skip``
(suite, test or case) skips; ``invalid: true`` expects the constraint to be rejected at load.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from policyengine.codec import request_from_partial_admission
from policyengine.errors import LoadError
from policyengine.inventory import from_documents
from policyengine.loader import Document, render_path
from policyengine.model import Outcome, Request, SourceRef
from policyengine.testing.cases import Case, Workspace, documents, one_document, relative

_VIOLATING = (Outcome.FAIL, Outcome.ERROR)


def cases(doc: Document, workspace: Workspace) -> list[Case]:
    """Every case of the suite ``doc``, named ``<suite>/<test>/<case>``."""
    suite = doc.name or doc.file
    tests = doc.data.get("tests")
    if not isinstance(tests, list):
        return [_broken(doc, suite, "a Suite needs a list of tests", ("tests",))]
    out: list[Case] = []
    suite_skip = bool(doc.data.get("skip", False))
    for i, test in enumerate(tests):
        if not isinstance(test, Mapping):
            out.append(_broken(doc, f"{suite}/#{i}", "a test must be a mapping", ("tests", i)))
            continue
        name = f"{suite}/{test.get('name', i)}"
        policy_paths = [relative(doc.file, test[k]) for k in ("template", "constraint") if test.get(k)]
        skip = suite_skip or bool(test.get("skip", False))
        if test.get("invalid") is True:
            ref = SourceRef(doc.file, doc.line_of(("tests", i)))
            out.append(Case(name, ref, _expect_invalid(workspace, policy_paths), skip))
            continue
        for j, case in enumerate(test.get("cases") or ()):
            path = ("tests", i, "cases", j)
            ref = SourceRef(doc.file, doc.line_of(path))
            if not isinstance(case, Mapping):
                out.append(_broken(doc, f"{name}/#{j}", "a case must be a mapping", path))
                continue
            out.append(
                Case(
                    f"{name}/{case.get('name', j)}",
                    ref,
                    _checker(workspace, doc, policy_paths, case, ref),
                    skip or bool(case.get("skip", False)),
                )
            )
    return out


def _broken(doc: Document, name: str, message: str, path: Sequence[str | int]) -> Case:
    reason = f"{message} (at {render_path(path)})"
    return Case(name, SourceRef(doc.file, doc.line_of(path)), lambda: reason)


def _expect_invalid(workspace: Workspace, policy_paths: list[str]) -> Any:
    def check() -> str | None:
        try:
            workspace.engine(policy_paths)
        except LoadError:
            return None
        return "the test is marked invalid, but the template and constraint loaded"

    return check


def _checker(
    workspace: Workspace, doc: Document, policy_paths: list[str], case: Mapping[str, Any], ref: SourceRef
) -> Any:
    def check() -> str | None:
        assertions = case.get("assertions")
        if not isinstance(assertions, list) or not assertions:
            return "the case has no assertions"
        if not case.get("object"):
            return "the case names no object"
        engine = workspace.engine(policy_paths)
        obj = one_document(relative(doc.file, case["object"]))
        inventory = from_documents(
            d.data for d in documents(relative(doc.file, p) for p in case.get("inventory") or ())
        )
        request = review_request(obj)
        decision = engine.evaluate(request, inventory=inventory, now=workspace.now)
        messages = [r.message for r in decision.results if r.outcome in _VIOLATING]
        for k, assertion in enumerate(assertions):
            reason = check_assertion(assertion, messages)
            if reason is not None:
                return f"assertions[{k}]: {reason}"
        return None

    return check


def review_request(obj: Document) -> Request:
    """The request gator reviews for a case object (see the module docstring)."""
    uid = hashlib.sha256(f"{obj.file}\0{obj.index}".encode()).hexdigest()[:32]
    source = SourceRef(obj.file, obj.line)
    if is_admission_review(obj.data) and isinstance(obj.data.get("request"), Mapping):
        return request_from_partial_admission(obj.data["request"], uid=uid, source=source)
    return request_from_partial_admission({"object": obj.data}, uid=uid, source=source)


def is_admission_review(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and obj.get("kind") == "AdmissionReview"
        and str(obj.get("apiVersion", "")).startswith("admission.k8s.io/")
    )


def expected_count(raw: Any) -> tuple[str, int]:
    """violations: yes | no | N (default yes) -> ("atleast", 1) | ("exactly", 0) | ("exactly", N)."""
    if raw is None or raw is True or (isinstance(raw, str) and raw.lower() == "yes"):
        return "atleast", 1
    if raw is False or (isinstance(raw, str) and raw.lower() == "no"):
        return "exactly", 0
    if isinstance(raw, int) and raw >= 0:
        return "exactly", raw
    if isinstance(raw, str) and raw.isdigit():
        return "exactly", int(raw)
    raise ValueError(f"violations must be yes, no or a count, not {raw!r}")


def check_assertion(assertion: Any, messages: list[str]) -> str | None:
    """None when the assertion holds for these violation messages, else why not."""
    if not isinstance(assertion, Mapping):
        return "an assertion must be a mapping"
    try:
        mode, n = expected_count(assertion.get("violations"))
        pattern = re.compile(str(assertion["message"])) if "message" in assertion else None
    except (ValueError, re.error) as err:
        return str(err)
    matching = [m for m in messages if pattern is None or pattern.search(m)]
    what = f"violations matching /{pattern.pattern}/" if pattern is not None else "violations"
    if mode == "atleast" and len(matching) < n:
        return f"expected at least {n} {what}, got {len(matching)}" + _listing(messages)
    if mode == "exactly" and len(matching) != n:
        return f"expected {n} {what}, got {len(matching)}" + _listing(matching)
    return None


def _listing(messages: list[str]) -> str:
    if not messages:
        return ""
    shown = "; ".join(messages[:3])
    return f": {shown}" + (" …" if len(messages) > 3 else "")
