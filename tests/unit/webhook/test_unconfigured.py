"""Policies without their GovernanceConfig facts at admission: never denied by, still audited, and a
reload that would leave a policy unconfigured is refused unless the server allows it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from audit.decisions import entry_for
from policyengine import errors
from policyengine.codec import request_from_manifest
from policyengine.engine import Engine
from policyengine.model import Outcome
from policyengine.policyset import load_policy_set
from tests.helpers import ACME_CONFIG, write
from webhook.policies import LivePolicies

NOW = datetime(2026, 6, 1, tzinfo=UTC)
GPU_JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "train", "namespace": "research"},
    "spec": {
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "t",
                        "image": "pytorch/pytorch@sha256:" + "0" * 64,
                        "resources": {"limits": {"nvidia.com/gpu": 64}},
                    }
                ]
            }
        }
    },
}


def test_an_unconfigured_policy_is_not_evaluated_never_denies_and_is_audited() -> None:
    engine = Engine(load_policy_set([]))
    decision = engine.evaluate(request_from_manifest(GPU_JOB), now=NOW)
    assert decision.allowed
    skipped = {r.policy: r for r in decision.results if r.code == errors.NOT_CONFIGURED}
    assert {"gpu-team-quota", "gpu-per-pod-limit", "gpu-per-workload-limit"} <= set(skipped)
    assert all(r.outcome is Outcome.SKIP and not r.denies for r in skipped.values())
    assert skipped["gpu-team-quota"].message == (
        "not-configured: not evaluated, it needs GovernanceConfig spec.gpu.teams or spec.gpu.teamsFrom=kueue"
    )
    entry = entry_for(decision, source="admission", time=NOW)
    recorded = {r["policy"]: r for r in entry["results"]}
    assert recorded["gpu-team-quota"]["outcome"] == "skip"
    assert recorded["gpu-team-quota"]["message"].startswith("not-configured: ")
    # An evaluation that cannot finish (a timeout) does not make an unconfigured policy deny either.
    timed_out = engine.unevaluated(request_from_manifest(GPU_JOB), message="timeout", code=errors.EVAL_BUDGET)
    assert "gpu-team-quota" not in {r.policy for r in timed_out.results}


def test_the_same_job_is_denied_once_the_organisation_is_configured() -> None:
    engine = Engine(load_policy_set([], config_paths=[ACME_CONFIG]))
    decision = engine.evaluate(request_from_manifest(GPU_JOB), now=NOW)
    assert not decision.allowed and "gpu-team-quota" in {r.policy for r in decision.denials}
    assert not [r for r in decision.results if r.code == errors.NOT_CONFIGURED]


@pytest.mark.parametrize("allow", [False, True])
def test_a_reload_that_loses_facts_is_refused_unless_unconfigured_policies_are_allowed(
    tmp_path: Path, allow: bool
) -> None:
    config = write(tmp_path / "org.yaml", Path(ACME_CONFIG).read_text())
    write(
        tmp_path / "keys" / "ml-release.pub",
        (Path(ACME_CONFIG).parent / "keys" / "ml-release.pub").read_text(),
    )
    live = LivePolicies(
        lambda: Engine(load_policy_set([], config_paths=[str(config)])),
        [str(config)],
        allow_unconfigured=allow,
    )
    assert live.reload().ok and live.status()["unconfigured"] == []
    config.write_text(
        "apiVersion: policyengine.io/v1\nkind: GovernanceConfig\nmetadata: {name: o}\n"
        "spec: {gpu: {teams: {default: {quota: 0}}}}\n"
    )
    outcome = live.reload()
    status = live.status()
    if allow:
        assert outcome.ok
        assert [u["policy"] for u in status["unconfigured"]] == [
            "residency-data-locations",
            "residency-unknown-data-locations",
            "model-approved-source",
            "model-signature-verified",
        ]
    else:
        assert not outcome.ok and outcome.result == "failed"
        assert "model-approved-source (needs spec.models.approvedSources)" in outcome.problems[0]
        assert "--allow-unconfigured" in outcome.problems[0]
        assert status["unconfigured"] == [] and "lastReloadError" in status  # the last good set serves on
