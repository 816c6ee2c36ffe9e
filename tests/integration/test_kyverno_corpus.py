"""The kyverno/policies acceptance corpus (tests/data/kyverno-policies, origin in its README): every
expected result of its Kyverno CLI test files, run by ``policyengine test``, counted exactly. The counts
are pinned so that an improvement (a neighbour feature that makes refused cases run) or a regression
both show here; update them with the figures of ``bench/kyverno_corpus.py tests/data/kyverno-policies``."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from policyengine.testing.kyvernotest import REFUSED
from policyengine.testing.runner import find_test_files, run_tests

CORPUS = Path(__file__).resolve().parents[1] / "data" / "kyverno-policies"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def refusal(reason: str) -> str:
    if "unknown_kind: policies.kyverno.io/" in reason and "ValidatingPolicy" in reason:
        return "ValidatingPolicy not loadable"
    if "cel_compile: syntax error" in reason:
        return "CEL syntax the parser lacks"
    return reason


def test_corpus_holds_at_least_sixty_policies_with_tests() -> None:
    docs, problems = find_test_files([str(CORPUS)])
    assert problems == []
    assert len(docs) == 107
    assert {Path(d.file).relative_to(CORPUS).parts[0] for d in docs} >= {
        "pod-security-cel",
        "best-practices-cel",
        "other-cel",
    }


def test_corpus_counts() -> None:
    report, problems = run_tests([str(CORPUS)], now=NOW)
    assert problems == []
    matches = [r for r in report.results if r.status == "pass"]
    refused = Counter(refusal(r.reason) for r in report.results if r.reason.startswith(REFUSED))
    mismatches = [
        r.render() for r in report.results if r.status == "fail" and not r.reason.startswith(REFUSED)
    ]
    # Three expected "fail"s come out as evaluation errors: their predicates yield a non-bool (for example
    # `env.?valueFrom.?secretKeyRef.orValue(true)` is the secretKeyRef map when one is set), which CEL
    # makes an error; Kyverno reports those cases as fail.
    assert [m.split(" (")[0] for m in mismatches] == [
        "FAIL no-secrets/no-secrets/secrets-not-from-env-envFrom-and-volumes/default/secret-env-pod",
        "FAIL secrets-not-from-env-vars/secrets-not-from-env-vars/secrets-not-from-env-vars/default/secret-env-pod",
        "FAIL require-annotations/require-annotations/check-for-annotation/badcronjob01",
    ]
    assert len(matches) == 2221
    # With Kyverno ValidatingPolicies loaded and CEL's optional syntax parsed, nothing is refused.
    assert refused == Counter()
    assert len(report.results) == 2224
