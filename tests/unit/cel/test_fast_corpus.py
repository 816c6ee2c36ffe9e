"""The fast backend against the reference on real policies: every shipped pack on every upstream manifest
(Decisions compared result by result), the packs' own test cases and the gatekeeper-library suites; and
the fast backend evaluated from several threads at once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from policyengine.cel import get_backend
from policyengine.engine import Engine
from policyengine.expressions import Compiler
from policyengine.gate import is_object, request_for
from policyengine.loader import read_documents
from policyengine.model import Decision
from policyengine.policyset import load_policy_set
from policyengine.testing.cases import CaseResult, Workspace
from policyengine.testing.runner import cases_of, find_test_files, run_case

_NOW = datetime(2026, 1, 1, tzinfo=UTC)
_SUFFIXES = (".yaml", ".yml", ".json")


def _manifests(shared: Path) -> list[Any]:
    root = shared / "corpus" / "upstream"
    paths = [
        str(p)
        for p in sorted(root.rglob("*"))
        if p.suffix in _SUFFIXES and "model-signing-spec" not in p.relative_to(root).parts
    ]
    return [d for d in read_documents(paths) if is_object(d.data)]


def _summary(decision: Decision) -> tuple[Any, ...]:
    return (
        decision.allowed,
        tuple((r.policy, r.validation, r.outcome, r.message, r.code, r.reason) for r in decision.results),
    )


def _decisions(backend: str, docs: list[Any]) -> list[tuple[Any, ...]]:
    policy_set = load_policy_set([], include_bundled=True, compiler=Compiler(get_backend(backend)))
    engine = Engine(policy_set)
    return [_summary(engine.evaluate(request_for(d), now=_NOW)) for d in docs]


@pytest.mark.shared
def test_packs_decide_the_upstream_corpus_alike_on_both_backends(shared: Path) -> None:
    docs = _manifests(shared)
    assert len(docs) >= 40
    reference, fast = _decisions("reference", docs), _decisions("fast", docs)
    differing = [d.file for d, a, b in zip(docs, reference, fast, strict=True) if a != b]
    assert not differing
    assert sum(len(results) for _, results in fast) > 500  # the packs really ran


def _suite(backend: str, path: Path) -> list[CaseResult]:
    workspace = Workspace(now=_NOW, compiler=Compiler(get_backend(backend)))
    docs, problems = find_test_files([str(path)])
    assert not problems
    return [run_case(case) for doc in docs for case in cases_of(doc, workspace)]


def _compare_suites(path: Path) -> list[CaseResult]:
    reference, fast = _suite("reference", path), _suite("fast", path)
    assert [(r.name, r.status, r.reason) for r in fast] == [(r.name, r.status, r.reason) for r in reference]
    return fast


def test_pack_test_cases_pass_alike_on_both_backends(repo_root: Path) -> None:
    results = _compare_suites(repo_root / "policies")
    assert results
    assert all(r.status == "pass" for r in results)


@pytest.mark.shared
def test_gatekeeper_library_suites_pass_alike_on_both_backends(shared: Path) -> None:
    library = shared / "corpus" / "gatekeeper-library"
    if not library.is_dir():
        pytest.skip("the gatekeeper-library corpus is not there yet")
    results = _compare_suites(library)
    assert len(results) >= 100
    assert all(r.status == "pass" for r in results)


@pytest.mark.shared
def test_fast_backend_gives_the_same_decisions_from_many_threads(shared: Path) -> None:
    docs = _manifests(shared)
    policy_set = load_policy_set([], include_bundled=True, compiler=Compiler(get_backend("fast")))
    engine = Engine(policy_set)
    expected = [_summary(engine.evaluate(request_for(d), now=_NOW)) for d in docs]
    seen: list[list[tuple[Any, ...]]] = []
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                seen.append([_summary(engine.evaluate(request_for(d), now=_NOW)) for d in docs])
        except BaseException as err:  # a failure on a thread must fail the test
            failures.append(err)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert len(seen) == 18
    assert all(run == expected for run in seen)
