"""`policyengine check` with every accelerator of the default list: each is charged against the team
quota, reported under its own resource name, and makes its workload an AI workload; a configured list
replaces the default one, and --verbose says which list is in force."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from policyengine.workloads import describe
from policyengine.workloads.accelerators import DEFAULT_ACCELERATORS
from tests.helpers import run_cli, run_json, write

CONFIG = """
apiVersion: policyengine.io/v1
kind: GovernanceConfig
metadata: {name: accelerators}
spec:
  gpu:
    teams:
      ml: {quota: 3, quotaByResource: {%(resource)s: 1}}
      default: {quota: 0}
"""
MANIFESTS = """
apiVersion: v1
kind: Namespace
metadata: {name: ml-ns, labels: {policyengine.io/team: ml}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: serve, namespace: ml-ns}
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: c
          image: registry.acme.internal/serve:latest
          resources: {limits: {%(resource)s: 2}}
"""


def _findings(report: dict[str, Any]) -> dict[str, str]:
    return {
        r["policy"]: r["message"]
        for r in report["results"]
        if r["resource"]["kind"] == "Deployment" and r["outcome"] in ("fail", "error")
    }


def _deployment(resource: str) -> dict[str, Any]:
    container = {"name": "c", "image": "x", "resources": {"limits": {resource: 2}}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "serve", "namespace": "ml-ns"},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [container]}}},
    }


@pytest.mark.parametrize("resource", DEFAULT_ACCELERATORS)
def test_each_default_accelerator_is_charged_reported_by_name_and_makes_an_ai_workload(
    resource: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path / "config.yaml", CONFIG % {"resource": resource})
    manifest = write(tmp_path / "m.yaml", MANIFESTS % {"resource": resource})
    code, report = run_json(["check", "--config", str(config), str(manifest)], capsys, monkeypatch)
    assert code == 1
    findings = _findings(report)
    # Charged: 2 pods x 2 devices = 4 > quota 3, every device of any kind counting 1.
    assert "adds 4" in findings["gpu-team-quota"] and "over the quota of 3" in findings["gpu-team-quota"]
    # Reported by name: the per-resource budget names the resource.
    assert findings["gpu-resource-quota"].startswith(
        f"team ml: {resource}: uses 0 and Deployment serve adds 4"
    )
    # An AI workload: the unpinned image of an accelerator workload is a finding.
    assert "not pinned by digest" in findings["ai-images-pinned-by-digest"]
    assert describe(_deployment(resource))["gpus"]["byResource"] == {resource: 4}


def test_a_configured_list_replaces_the_default_one_but_the_workload_stays_an_ai_workload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(
        tmp_path / "config.yaml",
        (CONFIG % {"resource": "google.com/tpu"}).replace(
            "teams:", "resources: [example.com/npu]\n    teams:"
        ),
    )
    manifest = write(tmp_path / "m.yaml", MANIFESTS % {"resource": "google.com/tpu"})
    code, report = run_json(["check", "--config", str(config), str(manifest)], capsys, monkeypatch)
    findings = _findings(report)
    assert code == 1
    assert "gpu-team-quota" not in findings and "gpu-resource-quota" not in findings  # TPUs not counted
    assert "ai-images-pinned-by-digest" in findings  # but still an AI workload
    npu = write(tmp_path / "npu.yaml", MANIFESTS % {"resource": "example.com/npu"})
    code, report = run_json(["check", "--config", str(config), str(npu)], capsys, monkeypatch)
    assert "adds 4" in _findings(report)["gpu-team-quota"]  # the configured name is charged


def test_verbose_says_which_accelerator_list_is_in_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write(tmp_path / "m.yaml", MANIFESTS % {"resource": "google.com/tpu"})
    _, _, err = run_cli(["check", "--verbose", str(manifest)], capsys, monkeypatch)
    assert "note: accelerators counted: the default list (nvidia.com/gpu, amd.com/gpu, google.com/tpu," in err
    config = write(
        tmp_path / "config.yaml",
        "apiVersion: policyengine.io/v1\nkind: GovernanceConfig\nmetadata: {name: c}\n"
        "spec: {gpu: {resources: [nvidia.com/gpu, google.com/tpu]}}\n",
    )
    _, _, err = run_cli(["check", "--verbose", "--config", str(config), str(manifest)], capsys, monkeypatch)
    assert (
        "note: accelerators counted: spec.gpu.resources of the config (amd.com/gpu, google.com/tpu, "
        "nvidia.com/gpu) and nvidia.com/mig-*; not counted: aws.amazon.com/neuron, aws.amazon.com/neuroncore, "
        "aws.amazon.com/neurondevice, habana.ai/gaudi, gpu.intel.com/i915, gpu.intel.com/xe"
    ) in err
