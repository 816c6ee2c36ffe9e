"""`policyengine check` with GPUs asked for through DRA claims: the claims come from the checked
manifests (any file of the run) or from --inventory, and a claim found in neither is a finding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ACME_CONFIG, run_json, write

NAMESPACE = """
apiVersion: v1
kind: Namespace
metadata: {name: nobody-ns, labels: {policyengine.io/team: nobody}}
"""
TEMPLATE = """
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: eight-gpus, namespace: nobody-ns}
spec:
  spec:
    devices:
      requests:
        - name: gpus
          exactly: {deviceClassName: gpu.nvidia.com, count: 8}
"""
JOB = """
apiVersion: batch/v1
kind: Job
metadata: {name: train, namespace: nobody-ns}
spec:
  parallelism: 16
  template:
    spec:
      restartPolicy: Never
      resourceClaims: [{name: gpus, resourceClaimTemplateName: eight-gpus}]
      containers:
        - name: t
          image: busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000
          resources: {claims: [{name: gpus}]}
"""


def _findings(report: dict[str, Any], kind: str = "Job") -> dict[str, str]:
    return {
        r["policy"]: r["message"]
        for r in report["results"]
        if r["resource"]["kind"] == kind and r["outcome"] in ("fail", "error")
    }


def test_the_reproduction_is_denied_naming_the_claim_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write(tmp_path / "job.yaml", "---".join([NAMESPACE, TEMPLATE, JOB]))
    code, report = run_json(["check", "--config", ACME_CONFIG, str(manifest)], capsys, monkeypatch)
    assert code == 1
    assert report["summary"]["errors"] == 0
    message = _findings(report)["gpu-team-quota"]
    assert (
        "asks for 128 GPUs (ResourceClaimTemplate eight-gpus in spec.template.spec: 8 gpu.nvidia.com"
        in message
    )
    assert "per pod x 16 pods = 128)" in message


def test_claim_templates_in_another_file_of_the_run_are_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "a-job.yaml", "---".join([NAMESPACE, JOB]))  # walked before the template's file
    write(tmp_path / "b-claims.yaml", TEMPLATE)
    code, report = run_json(["check", "--config", ACME_CONFIG, str(tmp_path)], capsys, monkeypatch)
    assert code == 1
    assert set(_findings(report)) >= {"gpu-team-quota"} and "gpu-counts-readable" not in _findings(report)


def test_claim_templates_come_from_the_inventory_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write(tmp_path / "job.yaml", JOB)
    inventory = write(tmp_path / "cluster.yaml", "---".join([NAMESPACE, TEMPLATE]))
    code, report = run_json(
        ["check", "--config", ACME_CONFIG, str(manifest), "--inventory", str(inventory)], capsys, monkeypatch
    )
    assert code == 1
    assert "128 GPUs" in _findings(report)["gpu-team-quota"]


def test_a_claim_template_found_nowhere_is_a_finding_not_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write(tmp_path / "job.yaml", "---".join([NAMESPACE, JOB]))
    inventory = write(tmp_path / "cluster.yaml", NAMESPACE)  # --inventory given, and it lacks the template
    for extra in ([], ["--inventory", str(inventory)]):
        code, report = run_json(
            ["check", "--config", ACME_CONFIG, str(manifest), *extra], capsys, monkeypatch
        )
        assert code == 1
        found = _findings(report)
        assert found["gpu-counts-readable"].startswith(
            "spec.template.spec.resourceClaims[0]: ResourceClaimTemplate eight-gpus is not found in namespace "
            "nobody-ns"
        )
        assert report["summary"]["errors"] == 0
