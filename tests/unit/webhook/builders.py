"""Builders for the webhook tests: a small policy set (deny, warn, audit-only Ignore), engines, reviews."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

from policyengine.engine import Engine
from policyengine.policyset import load_policy_set

POLICIES = """
apiVersion: policyengine.io/v1
kind: Policy
metadata:
  name: no-latest-tag
  annotations:
    policyengine.io/category: supply-chain
spec:
  match:
    kinds: [{apiGroups: [""], kinds: [Pod]}]
  validations:
    - expression: "object.spec.containers.all(c, !c.image.endsWith(':latest'))"
      message: "images must not use the :latest tag"
  auditAnnotations:
    - key: containers
      valueExpression: "string(size(object.spec.containers))"
---
apiVersion: policyengine.io/v1
kind: Policy
metadata:
  name: team-label
spec:
  validationActions: [Warn]
  match:
    kinds: [{apiGroups: [""], kinds: [Pod]}]
  validations:
    - expression: "has(object.metadata.labels) && 'team' in object.metadata.labels"
      message: "pods should carry a team label"
---
apiVersion: policyengine.io/v1
kind: Policy
metadata:
  name: lenient-check
spec:
  failurePolicy: Ignore
  validationActions: [Audit]
  match:
    kinds: [{apiGroups: [""], kinds: [ConfigMap]}]
  validations:
    - expression: "size(object.data) < 100"
      message: "large configmap"
"""


def write_policies(directory: Path, text: str = POLICIES) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "policies.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def engine_for(directory: Path) -> Engine:
    return Engine(load_policy_set([str(directory)], include_bundled=False))


def pod(name: str = "web", image: str = "nginx:1.27", labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "apps"}
    if labels is not None:
        meta["labels"] = labels
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "c", "image": image}]},
    }


def review(
    obj: dict[str, Any] | None,
    *,
    uid: str = "11111111-2222-3333-4444-555555555555",
    operation: str = "CREATE",
    version: str = "admission.k8s.io/v1",
    old: dict[str, Any] | None = None,
    dry_run: bool = False,
    kind: str = "Pod",
    resource: str = "pods",
    namespace: str = "apps",
) -> dict[str, Any]:
    name = (obj or old or {}).get("metadata", {}).get("name", "")
    request: dict[str, Any] = {
        "uid": uid,
        "kind": {"group": "", "version": "v1", "kind": kind},
        "resource": {"group": "", "version": "v1", "resource": resource},
        "requestKind": {"group": "", "version": "v1", "kind": kind},
        "requestResource": {"group": "", "version": "v1", "resource": resource},
        "name": name,
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": "alice", "uid": "u-1", "groups": ["devs", "system:authenticated"]},
        "object": copy.deepcopy(obj),
        "oldObject": copy.deepcopy(old),
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }
    return {"apiVersion": version, "kind": "AdmissionReview", "request": request}
