"""A small workspace for the report tests: policies of every action, and multi-document manifests whose
failing documents are not the first, checked from inside the workspace so paths are relative."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import run_cli, write

POLICIES = """
apiVersion: policyengine.io/v1
kind: Policy
metadata:
  name: gpu-cap
  annotations:
    policyengine.io/category: gpu-quotas
    policyengine.io/severity: high
    policyengine.io/description: A container asks for at most 4 GPUs.
    policyengine.io/remediation: Lower resources.limits['nvidia.com/gpu'] to 4 or fewer.
spec:
  match:
    kinds: [{apiGroups: [apps], kinds: [Deployment]}]
  validations:
    - expression: "object.spec.template.spec.containers.all(c, c.resources.limits['nvidia.com/gpu'] <= 4)"
      message: at most 4 GPUs per container
      fieldPath: "spec.template.spec.containers[0].resources.limits['nvidia.com/gpu']"
---
apiVersion: policyengine.io/v1
kind: Policy
metadata:
  name: owner-label
  annotations:
    policyengine.io/category: ownership
    policyengine.io/severity: medium
    policyengine.io/description: Workloads name the team that owns them.
    policyengine.io/remediation: "Add metadata.labels.owner: <team>."
spec:
  validationActions: [Warn]
  match:
    kinds: [{apiGroups: [apps], kinds: [Deployment]}]
  validations:
    - expression: "has(object.metadata.labels) && 'owner' in object.metadata.labels"
      message: "no owner label, so GPU usage cannot be charged: add one"
      fieldPath: metadata.labels
---
apiVersion: policyengine.io/v1
kind: Policy
metadata:
  name: replica-watch
  annotations:
    policyengine.io/category: gpu-quotas
spec:
  validationActions: [Audit]
  match:
    kinds: [{apiGroups: [apps], kinds: [Deployment]}]
  validations:
    - expression: "object.spec.replicas <= 2"
      message: more than 2 replicas
      fieldPath: spec.replicas
---
apiVersion: policyengine.io/v1
kind: Policy
metadata:
  name: job-deadline
spec:
  match:
    kinds: [{apiGroups: [batch], kinds: [Job]}]
  validations:
    - expression: "object.spec.activeDeadlineSeconds <= 3600"
      message: jobs finish within an hour
---
apiVersion: policyengine.io/v1
kind: PolicyException
metadata:
  name: legacy-waiver
spec:
  policies: [owner-label]
  match:
    names: [legacy]
  reason: migrating
"""


def deployment(name: str, gpus: int, replicas: int = 1, labels: str = "{owner: ml}", ns: str = "ml") -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {ns}
  labels: {labels}
spec:
  replicas: {replicas}
  template:
    spec:
      containers:
        - name: main
          image: trainer:1
          resources:
            limits:
              nvidia.com/gpu: {gpus}
"""


# Line numbers below are pinned by the tests: keep this text as it is.
DEPLOY = "---\n".join(
    [
        deployment("good", 1),  # lines 1-16
        deployment("big", 8, labels="{team: x}"),  # starts at 18; the GPU limit is at line 33, column 15
        deployment("legacy", 2, replicas=5, labels="{}"),  # starts at 35: excepted owner, audited replicas
    ]
)
JOBS = """apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  a: b
---
apiVersion: batch/v1
kind: Job
metadata:
  name: nightly
spec:
  template:
    spec:
      containers: [{name: j, image: j:1}]
"""


@dataclass(frozen=True)
class Workspace:
    root: Path
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch

    def check(
        self, *args: str, paths: Sequence[str] = ("manifests",), stdin: str = ""
    ) -> tuple[int, str, str]:
        base = ["check", *paths, "--no-default-policies", "--policies", "policies"]
        return run_cli([*base, *args], self.capsys, self.monkeypatch, stdin)


@pytest.fixture
def workspace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Workspace:
    write(tmp_path / "policies" / "policies.yaml", POLICIES)
    write(tmp_path / "manifests" / "deploy.yaml", DEPLOY)
    write(tmp_path / "manifests" / "jobs.yaml", JOBS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return Workspace(tmp_path, capsys, monkeypatch)
