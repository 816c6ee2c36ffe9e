"""Native ``policyengine.io/v1`` ``PolicyTest`` files: policy authors' unit tests (docs/testing.md).

A PolicyTest names the policies to load (paths relative to the file; ``tests/`` folders inside them
are never read as policies), optional config and inventory files, and cases. A case gives the object
under review (inline or a file), as ``check`` would send it (CREATE), or a full AdmissionRequest-shaped
``request``; and it says what to expect: the verdict and/or results per policy. A case with no
expectation fails.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from policyengine.codec import request_from_partial_admission
from policyengine.gate import request_for, with_manifest_namespaces
from policyengine.inventory import from_documents
from policyengine.loader import Document, render_path
from policyengine.model import Decision, Request, SourceRef
from policyengine.native import parse_time
from policyengine.policyset import bundled_policies_dir
from policyengine.schema import validate
from policyengine.testing.cases import Case, Workspace, documents, one_document, relative

OUTCOMES = ("pass", "fail", "error", "skip", "excepted")
ACTIONS = ("deny", "warn", "audit")


def cases(doc: Document, workspace: Workspace) -> list[Case]:
    """Every case of ``doc``, named ``<test>/<case>``."""
    test = doc.name or doc.file
    found = validate(doc, "policy-test.json")
    if found:
        first = found[0]
        reason = f"invalid PolicyTest: {first.message}" + (f" (at {first.path})" if first.path else "")
        reason += f" (and {len(found) - 1} more problems)" if len(found) > 1 else ""
        return [Case(test, SourceRef(first.file, first.line), lambda: reason)]
    spec = doc.data["spec"]
    if "now" in spec and parse_time(str(spec["now"])) is None:
        reason = f"spec.now {spec['now']!r} is not an RFC 3339 time with a zone"
        return [Case(test, SourceRef(doc.file, doc.line_of(("spec", "now"))), lambda: reason)]
    policies = [relative(doc.file, p) for p in spec["policies"]]
    if spec.get("bundled", False):
        policies.insert(0, str(bundled_policies_dir()))
    config = [relative(doc.file, p) for p in spec.get("config") or ()]
    inventory = [relative(doc.file, p) for p in spec.get("inventory") or ()]
    out = []
    for i, case in enumerate(spec.get("cases") or ()):
        path = ("spec", "cases", i)
        ref = SourceRef(doc.file, doc.line_of(path))
        run = _Run(workspace, doc, policies, config, inventory, spec.get("now"), case, path)
        out.append(Case(f"{test}/{case.get('name', i)}", ref, run.check, bool(case.get("skip", False))))
    return out


class _Run:
    """One case, run lazily."""

    def __init__(
        self,
        workspace: Workspace,
        doc: Document,
        policies: list[str],
        config: list[str],
        inventory: list[str],
        now: Any,
        case: Mapping[str, Any],
        path: tuple[str | int, ...],
    ) -> None:
        self.workspace, self.doc, self.case, self.path = workspace, doc, case, path
        self.policies, self.config, self.inventory, self.now = policies, config, inventory, now

    def check(self) -> str | None:
        expect = self.case.get("expect")
        if not isinstance(expect, Mapping) or not (expect.get("verdict") or expect.get("results")):
            return "the case has no expectation (expect.verdict or expect.results)"
        engine = self.workspace.engine(self.policies, self.config)
        made = self._request()
        if isinstance(made, str):
            return made
        request, manifests = made
        inv = from_documents(d.data for d in documents(self.inventory)) if self.inventory else None
        world = with_manifest_namespaces(inv, manifests)
        now = parse_time(str(self.now)) if self.now is not None else None
        decision = engine.evaluate(request, inventory=world, now=now or self.workspace.now)
        return check_expectation(expect, decision)

    def _fixture(self, key: str) -> Document | None:
        raw = self.case.get(key)
        if raw is None:
            return None
        if isinstance(raw, str):
            return one_document(relative(self.doc.file, raw))
        path = (*self.path, key)
        positions = {k[len(path) :]: v for k, v in self.doc.positions.items() if k[: len(path)] == path}
        return Document(raw, self.doc.file, self.doc.line_of(path), self.doc.index, positions)

    def _request(self) -> tuple[Request, list[Document]] | str:
        uid = hashlib.sha256(f"{self.doc.file}\0{render_path(self.path)}".encode()).hexdigest()[:32]
        raw_request = self.case.get("request")
        if isinstance(raw_request, Mapping):
            request = request_from_partial_admission(
                raw_request, uid=uid, source=SourceRef(self.doc.file, self.doc.line_of(self.path))
            )
            manifests = [
                Document(o, self.doc.file, self.doc.line_of(self.path))
                for o in (request.object, request.old_object)
                if isinstance(o, Mapping)
            ]
            return request, manifests
        obj, old = self._fixture("object"), self._fixture("oldObject")
        subject = obj or old
        if subject is None:
            return "the case needs an object, an oldObject or a request"
        operation = str(
            self.case.get("operation") or ("CREATE" if old is None else "UPDATE" if obj else "DELETE")
        )
        request = request_for(subject, operation=operation)
        changes: dict[str, Any] = {"uid": uid, "object": obj.data if obj else None}
        changes["old_object"] = old.data if old else None
        if self.case.get("namespace") is not None:
            changes["namespace"] = str(self.case["namespace"])
        return replace(request, **changes), [d for d in (obj, old) if d is not None]


def check_expectation(expect: Mapping[str, Any], decision: Decision) -> str | None:
    """None when ``decision`` meets ``expect``, else the first reason it does not."""
    verdict = expect.get("verdict")
    if verdict is not None and verdict != decision.verdict:
        return f"expected verdict {verdict}, got {decision.verdict}" + _summary(decision)
    for i, want in enumerate(expect.get("results") or ()):
        reason = _check_result(want, decision)
        if reason is not None:
            return f"expect.results[{i}]: {reason}"
    return None


def _check_result(want: Any, decision: Decision) -> str | None:
    if not isinstance(want, Mapping) or not want.get("policy"):
        return "each expected result needs a policy"
    outcome = str(want.get("outcome", "fail"))
    action = want.get("action")
    if outcome not in OUTCOMES or (action is not None and action not in ACTIONS):
        return f"outcome must be one of {', '.join(OUTCOMES)} and action one of {', '.join(ACTIONS)}"
    try:
        pattern = re.compile(str(want["message"])) if "message" in want else None
    except re.error as err:
        return f"bad message regex: {err}"
    found = [
        r
        for r in decision.results
        if r.policy == want["policy"]
        and r.outcome == outcome
        and (action is None or r.action == action)
        and (pattern is None or pattern.search(r.message))
    ]
    what = f"{want['policy']} {outcome}" + (f" ({action})" if action else "")
    if pattern is not None:
        what += f" with a message matching /{pattern.pattern}/"
    count = want.get("count")
    if count is None and not found:
        return f"expected {what}, got none" + _summary(decision)
    if count is not None and len(found) != count:
        return f"expected {count} of {what}, got {len(found)}" + _summary(decision)
    return None


def _summary(decision: Decision) -> str:
    shown = [
        f"{r.policy} {r.outcome}: {r.message}" if r.message else f"{r.policy} {r.outcome}"
        for r in decision.results
    ]
    return f" [{'; '.join(shown[:4])}{' …' if len(shown) > 4 else ''}]" if shown else " [no policy applied]"
