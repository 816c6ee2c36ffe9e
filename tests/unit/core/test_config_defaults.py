"""GovernanceConfig defaults: the schema's defaults are filled in at load, so ``params`` always has every
section and key the packs read and no rule needs a ``has()`` guard."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from policyengine.engine import Engine
from policyengine.gate import request_for
from policyengine.loader import parse_text
from policyengine.policyset import load_policy_set
from policyengine.workloads.accelerators import DEFAULT_ACCELERATORS
from tests.helpers import write

DEFAULTS = {
    "residency": {"zones": {}, "dataLocations": [], "unknownLocation": "deny"},
    "gpu": {
        "resources": list(DEFAULT_ACCELERATORS),
        "adminAccess": {"allowedUsers": [], "allowedGroups": []},
        "deviceClasses": {
            "gpu.nvidia.com": "nvidia.com/gpu",
            "vfio.gpu.nvidia.com": "nvidia.com/gpu",
            "mig.nvidia.com": "mig.nvidia.com",
            "gpu.amd.com": "amd.com/gpu",
            "gpu.intel.com": "gpu.intel.com",
            "gaudi.intel.com": "habana.ai/gaudi",
            "tpu.google.com": "google.com/tpu",
            "neuron.aws.com": "aws.amazon.com/neuron",
        },
        "countSuspended": True,
        "teamsFrom": "config",
        "kueue": {},
        "teams": {},
    },
    "models": {
        "approvedSources": [],
        "requireDigest": True,
        "trustedKeys": [],
        "caCertificates": [],
        "trustedIdentities": [],
        "certificates": {"requireCodeSigningEKU": True},
        "attestations": "",
    },
}


def test_without_any_config_every_section_and_key_has_its_default() -> None:
    assert load_policy_set([], include_bundled=False).config == DEFAULTS


def test_given_keys_are_kept_and_only_absent_ones_filled(tmp_path: Path) -> None:
    config = write(
        tmp_path / "config.yaml",
        """
        apiVersion: policyengine.io/v1
        kind: GovernanceConfig
        metadata: {name: partial}
        spec:
          residency: {unknownLocation: warn}
          models: {requireDigest: false}
          caps: {replicas: 3}          # a section of the organisation's own: kept as written
        """,
    )
    spec = load_policy_set([], config_paths=[str(config)], include_bundled=False).config
    assert spec["residency"] == {**DEFAULTS["residency"], "unknownLocation": "warn"}
    assert spec["models"] == {**DEFAULTS["models"], "requireDigest": False}
    assert spec["gpu"] == DEFAULTS["gpu"]
    assert spec["caps"] == {"replicas": 3}


def test_a_rule_reads_params_without_guards_when_no_config_is_given(tmp_path: Path) -> None:
    write(
        tmp_path / "p.yaml",
        """
        apiVersion: policyengine.io/v1
        kind: Policy
        metadata: {name: unguarded}
        spec:
          validations:
            - expression: "params.residency.unknownLocation == 'deny' && size(params.gpu.teams) == 0"
        """,
    )
    engine = Engine(load_policy_set([str(tmp_path)], include_bundled=False))
    (doc,) = parse_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", "m.yaml")
    decision = engine.evaluate(request_for(doc), now=datetime(2026, 1, 1, tzinfo=UTC))
    assert [(r.policy, r.outcome.value) for r in decision.results] == [("unguarded", "pass")]
