"""Claims made for a group of pods (PodGroup spec.resourceClaims, Job spec.scheduling.resourceClaims):
one set of devices per group, charged once, through the public view and ``check``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from policyengine.cli import main
from policyengine.workloads import ClaimObjects, describe
from policyengine.workloads.scheduling import MAX_GROUP_CLAIMS
from tests.helpers import ACME_CONFIG

FIXTURE = Path(__file__).parents[2] / "fixtures" / "scheduling" / "pod-group-claims.yaml"
EIGHT = [{"name": "gpus", "exactly": {"deviceClassName": "gpu.nvidia.com", "count": 8}}]
TEMPLATE = {
    "apiVersion": "resource.k8s.io/v1",
    "kind": "ResourceClaimTemplate",
    "metadata": {"name": "eight-gpus", "namespace": "training"},
    "spec": {"spec": {"devices": {"requests": EIGHT}}},
}
ENTRY = {"name": "gpus", "resourceClaimTemplateName": "eight-gpus"}


def pod_group(version: str = "v1beta1", claims: Any = None, **meta: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"schedulingPolicy": {"basic": {}}}
    if claims is not None:
        spec["resourceClaims"] = claims
    return {
        "apiVersion": f"scheduling.k8s.io/{version}",
        "kind": "PodGroup",
        "metadata": {"name": "group-0", "namespace": "training", **meta},
        "spec": spec,
    }


def job(pods: int = 4, group: str | None = "group-0", scheduling: Any = None) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "resourceClaims": [ENTRY],
        "containers": [{"name": "c", "image": "x", "resources": {"claims": [{"name": "gpus"}]}}],
    }
    if group:
        pod["schedulingGroup"] = {"podGroupName": group}
    spec: dict[str, Any] = {"parallelism": pods, "template": {"spec": pod}}
    if scheduling is not None:
        spec["scheduling"] = scheduling
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "training"},
        "spec": spec,
    }


def counts(view: dict[str, Any]) -> tuple[int, int]:
    return view["gpus"]["maxPerPod"], view["gpus"]["total"]


def test_a_pod_group_claim_is_one_set_for_its_pods_charged_on_the_pod_group() -> None:
    group = pod_group(claims=[ENTRY])
    objects = ClaimObjects([TEMPLATE, group])
    members = describe(job(), None, objects)
    assert counts(members) == (8, 0)  # each pod sees the group's 8; the group's claim is charged on it
    assert members["podTemplates"][0]["resourceClaims"][0]["group"] == "PodGroup group-0"
    assert members["gpus"]["claims"] == [] and members["problems"] == []
    assert members["isAiWorkload"]
    charged = describe(group, None, objects)
    assert counts(charged) == (0, 8)
    assert charged["gpus"]["claims"][0] | {"deviceClasses": []} == {
        "template": "spec",
        "claim": "gpus",
        "source": "ResourceClaimTemplate eight-gpus",
        "deviceClasses": [],
        "count": 8,
        "pods": 1,
        "total": 8,
        "shared": True,
    }
    # A pod entry that does not match the group's claim exactly is the pod's own: per pod, as before.
    other = job()
    other["spec"]["template"]["spec"]["resourceClaims"] = [
        {"name": "mine", "resourceClaimTemplateName": "eight-gpus"}
    ]
    assert counts(describe(other, None, objects)) == (8, 32)


def test_a_jobs_scheduling_claims_count_once_for_the_job() -> None:
    objects = ClaimObjects([TEMPLATE])
    scheduled = describe(job(16, None, {"resourceClaims": [ENTRY]}), None, objects)
    assert counts(scheduled) == (8, 8)
    assert [(c["template"], c["total"]) for c in scheduled["gpus"]["claims"]] == [("spec.scheduling", 8)]
    # The PodGroup the Job controller makes from it is the Job's: not charged again.
    owned = pod_group(
        claims=[ENTRY],
        ownerReferences=[
            {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "u", "controller": True}
        ],
    )
    assert counts(describe(owned, None, objects)) == (0, 0)
    # A scheduling claim no pod names still makes its claim (the quota charges it): counted.
    unnamed = job(16, None, {"resourceClaims": [ENTRY]})
    unnamed["spec"]["template"]["spec"]["resourceClaims"] = []
    assert counts(describe(unnamed, None, objects))[1] == 8


def test_the_group_is_charged_once_whatever_is_known_first() -> None:
    # Pods naming a PodGroup not (yet) known cannot be counted: a problem, never 0 and never 32.
    alone = describe(job(), None, ClaimObjects([TEMPLATE]))
    assert [p["path"] for p in alone["problems"]] == ["spec.template.spec.schedulingGroup.podGroupName"]
    assert "PodGroup group-0 is not found" in alone["problems"][0]["message"]
    # The Workload is a template of groups: it makes no claim and is charged nothing.
    workload = {
        "apiVersion": "scheduling.k8s.io/v1beta1",
        "kind": "Workload",
        "metadata": {"name": "w", "namespace": "training"},
        "spec": {"podGroupTemplates": [{"name": "group", "resourceClaims": [ENTRY]}]},
    }
    assert counts(describe(workload, None, ClaimObjects([TEMPLATE]))) == (0, 0)
    assert describe(workload)["problems"] == []


def test_unknown_versions_are_read_where_the_fields_are_and_a_problem_where_not() -> None:
    objects = ClaimObjects([TEMPLATE])
    assert counts(describe(pod_group("v2", [ENTRY]), None, objects)) == (0, 8)
    unread = describe(pod_group("v2"), None, objects)
    assert counts(unread) == (0, 0)
    assert [p["path"] for p in unread["problems"]] == ["spec.resourceClaims"]
    # Known versions without the field simply have no claims.
    assert describe(pod_group("v1alpha2"), None, objects)["problems"] == []
    # Pods of an unreadable group: which claims are the group's cannot be told.
    members = describe(job(), None, ClaimObjects([TEMPLATE, pod_group("v2")]))
    assert "is a version whose claims field" in members["problems"][0]["message"]
    workload = {
        "apiVersion": "scheduling.k8s.io/v2",
        "kind": "Workload",
        "metadata": {"name": "w", "namespace": "training"},
        "spec": {"podGroupTemplates": [{"name": "group"}]},
    }
    assert [p["path"] for p in describe(workload)["problems"]] == ["spec.podGroupTemplates[].resourceClaims"]


def test_hostile_group_objects_are_bounded() -> None:
    many = [{"name": f"c{i}", "resourceClaimTemplateName": "eight-gpus"} for i in range(10_000)]
    objects = ClaimObjects([TEMPLATE])
    view = describe(pod_group(claims=many), None, objects)
    assert counts(view) == (0, 8 * MAX_GROUP_CLAIMS)  # Kubernetes allows 4; the first 4 are read
    assert [p["path"] for p in view["problems"]] == ["spec.resourceClaims"]
    workload = {
        "apiVersion": "scheduling.k8s.io/v9",
        "kind": "Workload",
        "metadata": {"name": "w", "namespace": "training"},
        "spec": {"podGroupTemplates": [{"name": f"g{i}", "resourceClaims": many} for i in range(10_000)]},
    }
    problems = describe(workload)["problems"]
    assert len(problems) == 1 + 8  # too many templates, then too many claims in each of the 8 read
    members = describe(job(), None, ClaimObjects([TEMPLATE, pod_group(claims=[ENTRY, *many])]))
    assert counts(members) == (8, 0) and len(members["problems"]) == 1
    scheduled = describe(job(16, None, {"resourceClaims": [ENTRY, *many]}), None, objects)
    assert counts(scheduled)[1] == 8 * MAX_GROUP_CLAIMS


def _check(files: list[Path], capsys: pytest.CaptureFixture[str]) -> dict[str, set[tuple[str, str]]]:
    main(["check", "--config", ACME_CONFIG, *map(str, files), "--format", "json"])
    out: dict[str, set[tuple[str, str]]] = {}
    for r in json.loads(capsys.readouterr().out)["results"]:
        if r["outcome"] == "fail":
            out.setdefault(f"{r['resource']['kind']}/{r['resource']['name']}", set()).add(
                (r["policy"], r["message"])
            )
    return out


def test_check_denies_each_group_once_with_its_count(capsys: pytest.CaptureFixture[str]) -> None:
    failed = _check([FIXTURE], capsys)
    assert set(failed) == {"PodGroup/trainer-group-0", "Job/scheduled"}
    ((policy, message),) = failed["PodGroup/trainer-group-0"]
    assert policy == "gpu-team-quota" and "PodGroup trainer-group-0 asks for 8 GPUs" in message
    ((policy, message),) = failed["Job/scheduled"]
    assert policy == "gpu-team-quota" and "Job scheduled asks for 8 GPUs" in message
    assert "eight-gpus in spec.scheduling: 8 gpu.nvidia.com shared by the pods = 8" in message


def test_check_reports_an_unreadable_group_as_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = FIXTURE.read_text().replace(
        "scheduling.k8s.io/v1beta1\nkind: PodGroup", "scheduling.k8s.io/v2\nkind: PodGroup"
    )
    text = text.replace(
        "  resourceClaims: [{name: gpus, resourceClaimTemplateName: eight-gpus}]\n---\n# Its 4",
        "---\n# Its 4",
    )
    bundle = tmp_path / "unknown.yaml"
    bundle.write_text(text)
    failed = _check([bundle], capsys)
    assert {p for p, _ in failed["PodGroup/trainer-group-0"]} == {"gpu-counts-readable"}
    assert "gpu-counts-readable" in {p for p, _ in failed["Job/group-members"]}
