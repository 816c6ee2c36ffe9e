"""Proof of equivalence without a cluster: every generated ValidatingAdmissionPolicy, loaded back through the
project's own VAP loader, gives the verdict its source policy gives, on every pack and gatekeeper-library
test case and on every manifest of the shared corpus."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine.engine import Engine
from policyengine.errors import LoadError
from policyengine.gate import request_for, with_manifest_namespaces
from policyengine.loader import Document, collect_documents, parse_text
from policyengine.model import Decision, Outcome, Request, Result
from policyengine.policyset import PolicySet, build_policy_set, bundled_policies_dir, load_policy_set
from policyengine.testing.runner import run_tests
from policyengine.vapgen import Generation, generate
from policyengine.vapgen.celenv import NEWEST, OLDEST

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[3]


def loaded_back(generation: Generation) -> PolicySet:
    """The generated YAML, read by the loader every policy file goes through."""
    text = yaml.safe_dump_all(generation.documents, sort_keys=False)
    return build_policy_set(parse_text(text, "generated.yaml"))


def _norm(r: Result, name: str) -> tuple[Any, ...]:
    # An error's message names the expression's path, which the added match conditions shift.
    message = r.message if r.outcome is not Outcome.ERROR else ""
    return (name, r.outcome, r.action, r.validation, message, r.code)


@dataclass
class Parity:
    """Evaluates every request twice, with the source policies and with their generated form."""

    minor: int = NEWEST
    static: bool = False
    compared: int = 0
    policies: set[str] = field(default_factory=set)
    mismatches: list[str] = field(default_factory=list)

    def engine(self, policy_set: PolicySet) -> Engine:
        return _ParityEngine(policy_set, self)

    def compare(self, request: Request, source: Decision, generated: Decision, names: dict[str, str]) -> None:
        wanted = set(names.values())
        mine = sorted(
            _norm(r, r.policy) for r in source.results if r.policy in wanted and r.outcome is not Outcome.SKIP
        )
        theirs = sorted(_norm(r, names[r.policy]) for r in generated.results if r.outcome is not Outcome.SKIP)
        self.compared += 1
        if mine != theirs:
            where = request.source or request.uid
            self.mismatches.append(
                f"{where} {request.operation} {request.kind.kind}:\n  source    {mine}\n  generated {theirs}"
            )


class _ParityEngine(Engine):
    def __init__(self, policy_set: PolicySet, parity: Parity) -> None:
        super().__init__(policy_set)
        self._parity = parity
        generation = generate(policy_set, minor=parity.minor, static=parity.static)
        self._names = {g.name: g.policy for g in generation.generated}
        parity.policies.update(self._names.values())
        self._generated = Engine(loaded_back(generation)) if generation.generated else None

    def evaluate(self, request: Request, **kwargs: Any) -> Decision:
        decision = super().evaluate(request, **kwargs)
        if self._generated is not None:
            other = self._generated.evaluate(request, **kwargs)
            self._parity.compare(request, decision, other, self._names)
        return decision


def _report(parity: Parity) -> str:
    return f"{len(parity.mismatches)} of {parity.compared} differ:\n" + "\n".join(parity.mismatches[:10])


@pytest.mark.shared
@pytest.mark.parametrize("static", [False, True], ids=["api", "static"])
def test_every_test_case_of_the_packs_and_the_gatekeeper_library_agrees(shared: Path, static: bool) -> None:
    parity = Parity(static=static)
    report, problems = run_tests(
        [str(bundled_policies_dir()), str(shared / "corpus/gatekeeper-library")],
        now=NOW,
        engine_factory=parity.engine,
    )
    assert not problems
    assert all(r.status == "pass" for r in report.results), report.lines()[:5]
    assert not parity.mismatches, _report(parity)
    # Every constraint of the gatekeeper-library's CEL templates is generated and each of its 131 cases
    # compared; the packs' own policies read views or the GovernanceConfig and stay on the webhook.
    assert len(parity.policies) == 21, sorted(parity.policies)
    assert parity.compared == 131
    assert len(report.results) > parity.compared  # the packs' cases ran too


def _corpus_policy_paths(shared: Path) -> list[str]:
    """The VAP examples and every gatekeeper-library template with one of its constraints (constraints of
    one template share names across samples)."""
    paths = [str(shared / "corpus/upstream/kueue/sample-validating-policy.yaml")]
    paths.append(str(REPO / "tests/fixtures/cel-optionals/policy.yaml"))
    for template in sorted((shared / "corpus/gatekeeper-library").rglob("template.yaml")):
        constraints = sorted(template.parent.glob("samples/*/constraint.yaml"))
        if constraints:
            paths += [str(template), str(constraints[0])]
    return paths


def _manifests(shared: Path) -> Iterator[Document]:
    files = sorted(str(p) for p in (shared / "corpus").rglob("*.yaml"))
    docs, _ = collect_documents(files)
    for doc in docs:
        data = doc.data
        if not isinstance(data, dict) or not isinstance(data.get("metadata"), dict) or "kind" not in data:
            continue
        group = str(data.get("apiVersion", "")).rpartition("/")[0]
        if group.endswith(("gatekeeper.sh", "admissionregistration.k8s.io", "kyverno.io")) or data[
            "kind"
        ] in (
            "Suite",
            "AdmissionReview",
            "PolicyTest",
        ):
            continue
        yield doc


@pytest.mark.shared
@pytest.mark.parametrize("minor", [OLDEST, NEWEST])
def test_every_corpus_manifest_gets_the_same_verdict(shared: Path, minor: int) -> None:
    try:
        policy_set = load_policy_set(_corpus_policy_paths(shared))
    except LoadError as err:  # pragma: no cover - a broken corpus says so
        pytest.fail("\n".join(p.render() for p in err.problems[:5]))
    parity = Parity(minor=minor)
    engine = parity.engine(policy_set)
    manifests = list(_manifests(shared))
    world = with_manifest_namespaces(None, manifests)
    for doc in manifests:
        created = request_for(doc)
        engine.evaluate(created, inventory=world, now=NOW)
        updated = replace(request_for(doc, operation="UPDATE"), old_object=doc.data)
        engine.evaluate(updated, inventory=world, now=NOW)
        deleted = replace(request_for(doc, operation="DELETE"), object=None, old_object=doc.data)
        engine.evaluate(deleted, inventory=world, now=NOW)
    assert not parity.mismatches, _report(parity)
    assert parity.compared == 3 * len(manifests) and len(manifests) >= 150
    assert len(parity.policies) >= 15, sorted(parity.policies)


@pytest.mark.shared
def test_the_comparison_sees_a_generated_policy_that_matches_too_much(
    shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not vacuous: without the condition that stands for Gatekeeper's kinds, the verdicts part."""
    from policyengine.vapgen import matching

    monkeypatch.setattr(matching, "_conditions", lambda match: [])
    parity = Parity()
    engine = parity.engine(load_policy_set(_corpus_policy_paths(shared)))
    manifests = list(_manifests(shared))
    world = with_manifest_namespaces(None, manifests)
    for doc in manifests:
        engine.evaluate(request_for(doc), inventory=world, now=NOW)
    assert len(parity.mismatches) > len(manifests) // 2
