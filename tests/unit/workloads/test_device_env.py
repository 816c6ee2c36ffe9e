"""A container given GPUs by NVIDIA_VISIBLE_DEVICES instead of its resources is a problem of the view (the
quota rules cannot count what it runs on), and ``gpu-counts-readable`` denies it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine.workloads import describe
from policyengine.workloads.located import Located
from tests.helpers import run_cli

C = "spec.template.spec.containers[0]"
DEVICE_ENV = "NVIDIA_VISIBLE_DEVICES"


def job(env: list[Any], resources: dict[str, Any] | None = None, **pod: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "train", "image": "nvidia/cuda:12.4.0-base-ubuntu22.04", "env": env}
    if resources is not None:
        container["resources"] = resources
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "ml"},
        "spec": {"template": {"spec": {"containers": [container], **pod}}},
    }


def problems(obj: dict[str, Any]) -> list[dict[str, str]]:
    return describe(obj)["problems"]


@pytest.mark.parametrize("value", ["all", "0,1", "GPU-6f5a0e3c-1111-2222-3333-444455556666", " ALL "])
def test_a_device_list_without_a_gpu_asked_for_is_a_problem(value: str) -> None:
    found = problems(job([{"name": "A", "value": "1"}, {"name": DEVICE_ENV, "value": value}]))
    assert [p["path"] for p in found] == [f"{C}.env[1]"]
    assert found[0]["message"].startswith(f"{DEVICE_ENV}={value!r} gives the container nvidia.com devices")


@pytest.mark.parametrize("value", ["void", "none", "", "NONE"])
def test_a_value_that_gives_no_gpu_is_no_problem(value: str) -> None:
    assert problems(job([{"name": DEVICE_ENV, "value": value}])) == []


def test_the_last_entry_of_the_name_decides_as_in_kubernetes() -> None:
    last_void = [{"name": DEVICE_ENV, "value": "all"}, {"name": DEVICE_ENV, "value": "void"}]
    assert problems(job(last_void)) == []
    last_all = [{"name": DEVICE_ENV, "value": "void"}, {"name": DEVICE_ENV, "value": "all"}]
    assert [p["path"] for p in problems(job(last_all))] == [f"{C}.env[1]"]


def test_a_value_from_a_config_map_cannot_be_read_and_is_a_problem() -> None:
    env = [{"name": DEVICE_ENV, "valueFrom": {"configMapKeyRef": {"name": "gpus", "key": "visible"}}}]
    assert problems(job(env))[0]["message"].startswith(f"{DEVICE_ENV} from valueFrom gives")


@pytest.mark.parametrize("name", ["HABANA_VISIBLE_DEVICES", "HABANA_VISIBLE_MODULES"])
def test_gaudi_devices_by_the_habana_runtimes_variables(name: str) -> None:
    """The Habana runtime's hook gives the devices these name to any container that sets them."""
    assert [p["path"] for p in problems(job([{"name": name, "value": "0,1,2,3"}]))] == [f"{C}.env[0]"]
    assert problems(job([{"name": name, "value": "all"}], {"limits": {"habana.ai/gaudi": 1}})) == []
    both = [{"name": name, "value": "all"}, {"name": DEVICE_ENV, "value": "all"}]  # each vendor's own
    assert [p["path"] for p in problems(job(both, {"limits": {"habana.ai/gaudi": 1}}))] == [f"{C}.env[1]"]


@pytest.mark.parametrize(
    "resources",
    [
        {"limits": {"nvidia.com/gpu": 1}},  # the device plugin sets the variable to what it allocated
        {"limits": {"nvidia.com/mig-1g.5gb": 1}},
        {"claims": [{"name": "gpu"}]},  # a DRA driver gives its claim's devices
    ],
)
def test_a_container_given_gpus_by_its_resources_is_left_to_them(resources: dict[str, Any]) -> None:
    pod = {"resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}]}
    assert [
        p
        for p in problems(job([{"name": DEVICE_ENV, "value": "all"}], resources, **pod))
        if "env" in p["path"]
    ] == []


def test_an_init_container_or_sidecar_is_read_too() -> None:
    obj = job([])
    spec = obj["spec"]["template"]["spec"]
    spec["initContainers"] = [
        {
            "name": "warm",
            "image": "i",
            "restartPolicy": "Always",
            "env": [{"name": DEVICE_ENV, "value": "all"}],
        }
    ]
    assert [p["path"] for p in problems(obj)] == ["spec.template.spec.initContainers[0].env[0]"]


def test_hostile_env_is_read_once_and_its_value_is_cut_in_the_message() -> None:
    env: list[Any] = [{"name": f"V{i}", "value": "x"} for i in range(100_000)]
    env += [7, None, {"name": ["not", "a", "name"]}, {"name": DEVICE_ENV, "value": "0," * 50_000}]
    found = problems(job(env))
    assert [p["path"] for p in found] == [f"{C}.env[100003]"]
    assert len(found[0]["message"]) < 400


@pytest.mark.parametrize("deferred", [False, True])
def test_both_walks_of_the_env_find_it(deferred: bool) -> None:
    """The env walk that writes data locations at once, and the one that puts them off (what a request
    whose policies never read the locations walks), record the device variables alike."""
    located = Located(lambda uri: "", pending=[] if deferred else None)
    env = [{"name": "A", "value": "s3://bucket/x"}, {"name": DEVICE_ENV, "valueFrom": {"fieldRef": {}}}]
    assert [p["path"] for p in describe(job(env), located=located)["problems"]] == [f"{C}.env[1]"]
    assert (located.pending is not None) == deferred


def test_the_gpu_pack_denies_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = tmp_path / "job.yaml"
    manifest.write_text(yaml.safe_dump(job([{"name": DEVICE_ENV, "value": "all"}])))
    code, out, _ = run_cli(["check", str(manifest), "--format", "json"], capsys, monkeypatch)
    assert code == 1
    denied = [r for r in json.loads(out)["results"] if r["outcome"] == "fail"]
    assert [(r["policy"], r["fieldPath"]) for r in denied] == [("gpu-counts-readable", f"{C}.env[0]")]
