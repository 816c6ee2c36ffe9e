"""`policyengine check` charges a TrainJob with the pods of the Trainer runtime it names: the runtime comes
from the checked manifests (any file of the run) or from --inventory, and one found in neither is a finding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_json, write

CONFIG = """
apiVersion: policyengine.io/v1
kind: GovernanceConfig
metadata: {name: trainjob-test}
spec:
  gpu:
    teams:
      ml: {quota: 8}
"""
NAMESPACE = """
apiVersion: v1
kind: Namespace
metadata: {name: ml-train, labels: {policyengine.io/team: ml}}
"""
RUNTIME = """
apiVersion: trainer.kubeflow.org/v1alpha1
kind: ClusterTrainingRuntime
metadata: {name: torch-gpu}
spec:
  mlPolicy: {numNodes: 1, torch: {}}
  template:
    spec:
      replicatedJobs:
        - name: model-initializer
          template:
            spec:
              template:
                spec:
                  containers:
                    - name: model-initializer
                      image: ghcr.io/kubeflow/trainer/model-initializer
                      env: [{name: STORAGE_URI, value: "hf://meta-llama/Llama-3.2-1B-Instruct"}]
                      resources: {limits: {nvidia.com/gpu: 1}}
        - name: node
          template:
            spec:
              template:
                spec:
                  containers:
                    - name: node
                      image: pytorch/pytorch:2.7
                      resources: {limits: {nvidia.com/gpu: GPUS}}
"""
TRAINJOB = """
apiVersion: trainer.kubeflow.org/v1alpha1
kind: TrainJob
metadata: {name: tune, namespace: ml-train}
spec:
  runtimeRef: {name: torch-gpu}
  trainer: {numNodes: 3}
"""


def _runtime(gpus: int = 4) -> str:
    return RUNTIME.replace("GPUS", str(gpus))


def _findings(report: dict[str, Any]) -> dict[str, str]:
    return {
        r["policy"]: r["message"]
        for r in report["results"]
        if r["resource"]["kind"] == "TrainJob" and r["outcome"] in ("fail", "error")
    }


def _check(
    tmp_path: Path, args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, dict[str, str]]:
    config = write(tmp_path / "config" / "config.yaml", CONFIG)
    code, report = run_json(["check", "--config", str(config), *args], capsys, monkeypatch)
    assert report["summary"]["errors"] == 0
    return code, _findings(report)


def test_a_trainjob_is_charged_the_pods_of_a_runtime_in_another_file_of_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "run" / "a-train.yaml", "---".join([NAMESPACE, TRAINJOB]))  # walked before the runtime
    write(tmp_path / "run" / "b-runtime.yaml", _runtime())
    code, found = _check(tmp_path, [str(tmp_path / "run")], capsys, monkeypatch)
    assert code == 1
    # 3 nodes x 4 GPUs of the runtime's trainer, and the runtime's GPU model-initializer: 13.
    assert (
        found["gpu-team-quota"] == "team ml uses 0 GPUs and TrainJob tune adds 13: 13 is over the quota of 8"
    )
    assert "gpu-counts-readable" not in found
    assert (
        "ClusterTrainingRuntime[torch-gpu].spec.template.spec.replicatedJobs[0]"
        in found["model-pinned-by-digest"]
    )


def test_the_trainjobs_resources_per_node_override_the_runtimes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    small = TRAINJOB.replace(
        "{numNodes: 3}", "{numNodes: 3, resourcesPerNode: {limits: {nvidia.com/gpu: 2}}}"
    )
    write(tmp_path / "run" / "train.yaml", "---".join([NAMESPACE, small, _runtime()]))
    _, found = _check(tmp_path, [str(tmp_path / "run")], capsys, monkeypatch)
    assert "gpu-team-quota" not in found  # 3 x 2 + 1 = 7 fits the quota of 8


def test_a_runtime_found_nowhere_is_a_finding_not_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write(tmp_path / "run" / "train.yaml", "---".join([NAMESPACE, TRAINJOB]))
    inventory = write(tmp_path / "cluster.yaml", NAMESPACE)  # --inventory given, and it lacks the runtime
    for extra in ([], ["--inventory", str(inventory)]):
        code, found = _check(tmp_path, [str(manifest), *extra], capsys, monkeypatch)
        assert code == 1
        assert found["gpu-counts-readable"].startswith(
            "spec.runtimeRef: ClusterTrainingRuntime torch-gpu not found among the checked manifests or the"
            " inventory: the pods it gives this TrainJob cannot be counted"
        )


def test_runtimes_come_from_the_inventory_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write(tmp_path / "run" / "train.yaml", TRAINJOB)
    inventory = write(tmp_path / "cluster.yaml", "---".join([NAMESPACE, _runtime()]))
    code, found = _check(tmp_path, [str(manifest), "--inventory", str(inventory)], capsys, monkeypatch)
    assert code == 1
    assert found["gpu-team-quota"].endswith("adds 13: 13 is over the quota of 8")
    assert "gpu-counts-readable" not in found


def test_a_runtime_named_in_two_files_is_the_later_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "run" / "a-train.yaml", "---".join([NAMESPACE, TRAINJOB]))
    write(tmp_path / "run" / "b-runtime.yaml", _runtime(1))
    write(tmp_path / "run" / "c-runtime.yaml", _runtime(4))  # the later file, in file order, wins
    for _ in range(2):  # and every run resolves it the same way
        _, found = _check(tmp_path, [str(tmp_path / "run")], capsys, monkeypatch)
        assert found["gpu-team-quota"].endswith("adds 13: 13 is over the quota of 8")
