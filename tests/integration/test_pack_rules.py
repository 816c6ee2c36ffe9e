"""The packs' rules over the org view and shared variables: one meaning of "unknown location", and a
pack extended from another directory without copying its blocks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from policyengine.engine import Engine
from policyengine.gate import request_for
from policyengine.inventory import from_documents
from policyengine.loader import parse_text
from policyengine.model import Decision
from policyengine.policyset import load_policy_set
from tests.helpers import write

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 1, tzinfo=UTC)
INVENTORY = from_documents(
    d.data
    for d in parse_text(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: eu-ml\n"
        "  labels: {policyengine.io/residency: eu, policyengine.io/team: ml}\n",
        "cluster.yaml",
    )
)


def evaluate(policies: list[str], configs: list[Path], manifest: str, bundled: bool = False) -> Decision:
    engine = Engine(
        load_policy_set(policies, config_paths=[str(c) for c in configs], include_bundled=bundled)
    )
    (doc,) = parse_text(manifest, "m.yaml")
    return engine.evaluate(request_for(doc), inventory=INVENTORY, now=NOW)


POD = """
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: eu-ml, annotations: {policyengine.io/datasets: "s3://limbo/x"}}
spec:
  nodeSelector: {topology.kubernetes.io/region: eu-west-1}
  containers: [{name: c, image: x}]
"""


def residency_config(tmp_path: Path, mode: str) -> Path:
    return write(
        tmp_path / f"{mode}.yaml",
        f"""
        apiVersion: policyengine.io/v1
        kind: GovernanceConfig
        metadata: {{name: limbo}}
        spec:
          residency:
            zones: {{eu: {{regions: [eu-west-1]}}}}
            dataLocations: [{{prefix: "s3://limbo/", region: ""}}]   # registered, but with no region
            unknownLocation: {mode}
        """,
    )


def test_a_location_registered_without_a_region_is_unknown_in_both_modes(tmp_path: Path) -> None:
    pack = str(ROOT / "policies" / "data-residency")
    denied = evaluate([pack], [residency_config(tmp_path, "deny")], POD)
    assert not denied.allowed
    assert [r.policy for r in denied.results if r.outcome.value == "fail"] == ["residency-data-locations"]
    # Under warn the same location is reported as a warning: it used to pass unreported, as "known".
    warned = evaluate([pack], [residency_config(tmp_path, "warn")], POD)
    assert warned.allowed
    assert [w.split(":")[0] for w in warned.warnings] == ["residency-unknown-data-locations"]
    assert "s3://limbo/x (at metadata.annotations[policyengine.io/datasets]) is unknown" in warned.warnings[0]


def test_a_pack_is_extended_from_another_directory_with_its_shared_variables_and_org_facts(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "mine" / "gpu-label.yaml",
        """
        apiVersion: policyengine.io/v1
        kind: Policy
        metadata: {name: gpu-templates-labelled}
        spec:
          match: {kinds: [{apiGroups: ["*"], kinds: ["*"]}]}
          matchConditions: [{name: uses-gpus, expression: "size(variables.gpuTemplates) > 0"}]
          validations:
            - expression: "has(object.metadata.labels) && 'gpu-owner' in object.metadata.labels"
              messageExpression: "'team ' + org.team + ' (quota of ' + org.quota.team + '): label GPU workloads gpu-owner'"
        """,
    )
    gpu_pod = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: eu-ml}\n"
        "spec: {containers: [{name: c, image: x, resources: {limits: {nvidia.com/gpu: 1}}}]}\n"
    )
    decision = evaluate([str(tmp_path / "mine")], [], gpu_pod, bundled=True)
    (mine,) = [r for r in decision.results if r.policy == "gpu-templates-labelled"]
    assert (mine.outcome.value, mine.message) == (
        "fail",
        "team ml (quota of default): label GPU workloads gpu-owner",
    )
