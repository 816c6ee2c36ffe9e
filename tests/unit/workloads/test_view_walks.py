"""The per-request walks of the workload and org views (a container's env, its GPU resources, its DRA
extended resources, the regions of the data locations) give what the plain walks below give, on every
upstream manifest and on hostile ones: the faster walks change no location, reference, figure, problem or
order. The plain walks are the views' definitions, written without the shortcuts."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

import policyengine.workloads as workloads_module
import policyengine.workloads.extended as extended_module
from policyengine.org import UNKNOWN_REGION, OrgRules
from policyengine.workloads import ClaimObjects, DeviceClasses, describe
from policyengine.workloads.accelerators import GPU_PRODUCT_LABEL, PRODUCT_LABELS
from policyengine.workloads.extended import MAX_RESOURCE_NAME, ExtendedResources, container_extended
from policyengine.workloads.kinds import ContainerSite, PodTemplate, find_templates
from policyengine.workloads.models import (
    INITIALIZER_ENV,
    MODEL_INITIALIZER,
    SCANNED_ENV,
    container_refs,
    env_values,
)
from policyengine.workloads.pods import (
    GpuRules,
    container_gpus,
    label_constraint,
    placement,
    product_constraint,
)
from policyengine.workloads.references import scan_container
from policyengine.workloads.values import (
    Problems,
    as_dict,
    as_list,
    clamp,
    gpu_quantity,
    path_key,
    sha256_of,
    storage_uris_in,
)

CORPUS = Path(os.environ.get("POLICYENGINE_SHARED", "/work/shared")) / "corpus/upstream"
CONFIG = Path(__file__).resolve().parents[3] / "examples" / "governance.yaml"


# --- the plain walks ------------------------------------------------------------------------------


def plain_scan(site: ContainerSite) -> tuple[list[dict[str, str]], list[dict[str, str]], dict[str, str]]:
    """Data locations, images and every literal env value by name (the last entry wins)."""
    data: list[dict[str, str]] = []
    images: list[dict[str, str]] = []
    c = site.container
    if isinstance(c.get("image"), str):
        images.append({"image": c["image"], "path": f"{site.path}.image", "sha256": sha256_of(c["image"])})
    env: dict[str, str] = {}
    for i, entry in enumerate(as_list(c.get("env"))):
        entry = as_dict(entry)
        name, value = entry.get("name"), entry.get("value")
        if isinstance(name, str) and isinstance(value, str):
            env[name] = value
        if c.get("name") == MODEL_INITIALIZER and name == INITIALIZER_ENV:
            continue
        if type(value) is str:
            for uri in storage_uris_in(value):
                data.append(
                    {"uri": uri, "path": f"{site.path}.env[{i}].value", "source": "env", "kind": "data"}
                )
    for key in ("command", "args"):
        for i, arg in enumerate(as_list(c.get(key))):
            if isinstance(arg, str):
                for uri in storage_uris_in(arg):
                    data.append(
                        {"uri": uri, "path": f"{site.path}.{key}[{i}]", "source": key, "kind": "data"}
                    )
    return data, images, env


def plain_gpus(
    container: Mapping[str, Any], path: str, rules: GpuRules, problems: Problems
) -> dict[str, Any]:
    resources = as_dict(container.get("resources"))
    side: dict[str, dict[str, int]] = {}
    for part in ("requests", "limits"):
        entries = as_dict(resources.get(part)).items()
        gpus = sorted(((n, v) for n, v in entries if isinstance(n, str)), key=lambda item: item[0])
        side[part] = {
            name: gpu_quantity(value, f"{path}.{part}[{path_key(name)}]", problems)
            for name, value in gpus
            if rules.is_gpu(name)
        }
    names = sorted(set(side["requests"]) | set(side["limits"]))
    by_resource = {n: max(side["requests"].get(n, 0), side["limits"].get(n, 0)) for n in names}
    return {**side, "byResource": by_resource, "count": clamp(sum(by_resource.values()))}


def plain_extended(
    container: Mapping[str, Any], path: str, rules: GpuRules, extended: ExtendedResources, problems: Problems
) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for part in ("requests", "limits"):
        for name, value in as_dict(as_dict(container.get("resources")).get(part)).items():
            if not isinstance(name, str) or len(name) > MAX_RESOURCE_NAME:
                continue
            device_class, counted = extended.counted_as(name, rules)
            if not counted:
                continue
            n = gpu_quantity(value, f"{path}.{part}[{path_key(name)}]", problems)
            entry = found.setdefault(
                name, {"resource": name, "deviceClass": device_class, "countsAs": counted, "count": 0}
            )
            entry["count"] = max(entry["count"], n)
    return [found[name] for name in sorted(found)]


def plain_located(rules: OrgRules, locations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**loc, "region": UNKNOWN_REGION if loc.get("unknown") else rules.region_of(str(loc.get("uri", "")))}
        for loc in locations
    ]


# --- inputs ---------------------------------------------------------------------------------------


def corpus_objects() -> list[tuple[str, dict[str, Any]]]:
    if not CORPUS.is_dir():
        pytest.skip(f"upstream corpus not found at {CORPUS} (set POLICYENGINE_SHARED)")
    found = []
    for file in sorted(CORPUS.rglob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(file.read_text())):
            if isinstance(doc, dict):
                found.append((f"{file.relative_to(CORPUS)}#{i}", doc))
    assert len(found) > 50
    return found


class Named(str):
    """A str subclass, as a hand-built (not decoded) manifest may hold."""


def hostile_objects() -> list[tuple[str, dict[str, Any]]]:
    many = [{"name": f"V{i}", "value": f"s3://bucket-{i % 7}/p/{i}"} for i in range(5000)]
    odd: list[Any] = [
        None,
        3,
        "text",
        ["s3://in/list"],
        {"name": ["unhashable"], "value": "s3://a/unhashable-name"},
        {"name": {"a": 1}, "value": "gs://b/dict-name"},
        {"name": 1, "value": "s3://b/int-name"},
        {"name": "N", "value": 7},
        {"name": "D", "value": {"deep": [[[["s3://deep/x"]]]]}},
        {"value": "s3://a/b s3://c/d gs://e/f,https://x.s3.amazonaws.com/k"},
        {"name": "MODEL_ID", "value": "org/first"},
        {"name": "MODEL_ID", "value": "s3://later/model"},
        {"name": "REVISION", "value": Named("abc")},
        {"name": Named("MODEL_NAME"), "value": Named("s3://sub/class")},
        {"name": "STORAGE_URI", "value": "s3://init/x"},
        {"name": "MY_MODEL", "value": "org/by-variable"},
        {"name": "X", "value": "://"},
        {"name": "Y", "value": "s3://"},
        {"name": "Z", "value": "S3://UPPER/x"},
        {"name": "W", "value": "x" * 70_000 + " s3://far/away"},
    ]
    resources = {
        "limits": {"nvidia.com/gpu": "2", 3: 4, "example.com/gpu": 1, "nvidia.com/mig-1g.5gb": "x", "cpu": 2},
        "requests": {
            "nvidia.com/gpu": 3,
            "amd.com/gpu": -1,
            "deviceclass.resource.kubernetes.io/gpu.nvidia.com": 2,
        },
    }
    containers = [
        {"name": "many", "image": "r/i@sha256:" + "a" * 64, "env": many, "resources": resources},
        {
            "name": "odd",
            "image": 5,
            "env": odd,
            "command": ["vllm", "serve", "$(MY_MODEL)"],
            "args": [1, None],
        },
        {"name": MODEL_INITIALIZER, "env": odd, "args": ["--model=${MY_MODEL}", "--revision", "$REVISION"]},
        {"name": "notalist", "env": {"name": "A", "value": "s3://x/y"}, "command": "s3://not/a/list"},
        {
            "name": "sh",
            "env": many[:3],
            "command": ["sh", "-c", "vllm serve $V1 --data s3://d/e; echo gs://z/y"],
        },
    ]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "h"}, "spec": {"containers": containers}}
    return [("hostile pod", pod)]


def sites(obj: Mapping[str, Any]) -> Iterator[tuple[PodTemplate, ContainerSite]]:
    for t in find_templates(obj, []):
        for site in t.containers:
            yield t, site


def all_objects() -> list[tuple[str, dict[str, Any]]]:
    return corpus_objects() + hostile_objects()


# --- the pins -------------------------------------------------------------------------------------


def test_env_walk_gives_the_plain_walks_locations_images_and_references() -> None:
    checked = 0
    for where, obj in all_objects():
        for _, site in sites(obj):
            data: list[dict[str, str]] = []
            images: list[dict[str, str]] = []
            walked = scan_container(site, data, images, {})
            want_data, want_images, env = plain_scan(site)
            assert (data, images) == (want_data, want_images), where
            assert walked[0] == {n: v for n, v in env.items() if n in SCANNED_ENV}, where
            # The references read from the walk are those read from the whole env (``env_values``).
            problems: Problems = []
            full_problems: Problems = []
            refs = container_refs(site.container, site.path, problems, walked)
            assert refs == container_refs(site.container, site.path, full_problems), where
            assert problems == full_problems, where
            checked += 1
    assert checked > 90


def test_a_command_line_variable_still_resolves_to_any_env_entry() -> None:
    """The env walk keeps only the names the scanner reads by name; ``$(VAR)`` may name any entry."""
    container = {
        "name": "server",
        "env": [
            {"name": "MY_MODEL", "value": "org/first"},
            *({"name": f"PAD_{i}", "value": "x"} for i in range(1000)),
            {"name": "MY_MODEL", "value": "org/model"},
        ],
        "command": ["vllm", "serve", "$(MY_MODEL)"],
        "args": ["--model-id", "${MY_MODEL}", "--model-path=$UNSET"],
    }
    site = ContainerSite(container, "spec.containers[0]")
    walked = scan_container(site, [], [], {})
    assert walked[0] == {} and len(env_values(container)[0]) == 1001  # the walk kept nothing of the env
    refs = container_refs(container, site.path, [], walked)
    assert refs == [
        ("hf://org/model", "spec.containers[0].command[2]", "command"),
        ("hf://org/model", "spec.containers[0].args[1]", "args"),
        ("$UNSET", "spec.containers[0].args[2]", "args"),
    ]


def test_env_walk_keeps_a_bounded_map_for_a_huge_env() -> None:
    env = [{"name": f"V{i}", "value": f"s3://b/{i}"} for i in range(20_000)]
    env.append({"name": "MODEL_ID", "value": "org/model"})
    data: list[dict[str, str]] = []
    values, at = scan_container(ContainerSite({"name": "c", "env": env}, "spec.containers[0]"), data, [], {})
    assert values == {"MODEL_ID": "org/model"} and at == {"MODEL_ID": 20_000}
    assert len(values) <= len(SCANNED_ENV)
    assert len(data) == 20_000  # every location is still seen


def test_gpu_figures_equal_the_plain_walk() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    for rules in (GpuRules(), GpuRules.from_config(config), GpuRules(frozenset({"example.com/gpu"}), True)):
        for where, obj in all_objects():
            for _, site in sites(obj):
                path = site.resources_path or f"{site.path}.resources"
                problems: Problems = []
                want_problems: Problems = []
                got = container_gpus(site.container, path, rules, problems)
                assert got == plain_gpus(site.container, path, rules, want_problems), where
                assert list(got) == ["requests", "limits", "byResource", "count"]
                assert [list(got[k]) for k in ("requests", "limits", "byResource")] == [
                    list(v) for v in list(plain_gpus(site.container, path, rules, []).values())[:3]
                ], where
                assert problems == want_problems, where


def test_extended_resources_equal_the_plain_walk() -> None:
    objects = all_objects()
    config = yaml.safe_load(CONFIG.read_text())
    claims = ClaimObjects([obj for _, obj in objects])
    classes = DeviceClasses.from_config(config)
    extended = ExtendedResources.build(claims.device_classes, classes)
    assert extended.by_name, "the corpus has DeviceClasses serving extended resources"
    for rules in (GpuRules(), GpuRules.from_config(config)):
        for ext in (extended, ExtendedResources(classes)):
            for where, obj in objects:
                for _, site in sites(obj):
                    problems: Problems = []
                    want_problems: Problems = []
                    got = container_extended(site.container, "p", rules, ext, problems)
                    assert got == plain_extended(site.container, "p", rules, ext, want_problems), where
                    assert problems == want_problems, where


def test_extended_resources_are_looked_up_once_per_pod_template(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = extended_module.extended_resources

    def counted(claims: ClaimObjects, classes: DeviceClasses) -> ExtendedResources:
        calls.append(1)
        return real(claims, classes)

    monkeypatch.setattr(extended_module, "extended_resources", counted)
    monkeypatch.setattr(workloads_module, "extended_resources", counted, raising=False)
    containers = [{"name": f"c{i}", "resources": {"limits": {"nvidia.com/gpu": 1}}} for i in range(50)]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}}
    assert describe(pod)["gpus"]["total"] == 50
    assert len(calls) == 1


def test_regions_of_data_locations_equal_the_plain_walk() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    spec = config.get("spec", config)
    spec.setdefault("residency", {})["dataLocations"] = [
        {"prefix": "s3://bucket-1/", "region": "eu"},
        {"prefix": "s3://", "region": "us"},
        {"prefix": "gs://b", "region": 5},
        {"prefix": "", "region": "never"},
    ]
    rules = OrgRules.from_config(config)
    for where, obj in all_objects():
        locations = describe(obj, config)["dataLocations"]
        locations.append({"uri": 12, "path": "odd", "source": "env", "kind": "data"})
        locations.append({"uri": "s3://x", "path": "p", "source": "volume", "kind": "data", "unknown": True})
        before = [dict(loc) for loc in locations]
        assert rules.located(locations) == plain_located(rules, locations), where
        assert locations == before  # the workload's own list is left as it was


def test_placement_without_selector_or_affinity_reads_as_the_full_reading() -> None:
    """A template with no node affinity and none of the labels in its nodeSelector (the usual case) is
    answered without reading the terms: the same constraint as the full reading, which an empty
    affinity (no terms) takes."""
    templates = [t for _, obj in all_objects() for t in find_templates(obj, [])]
    placements = [placement(t) for t in templates]
    odd = [
        ("p", {"topology.kubernetes.io/region": None, GPU_PRODUCT_LABEL: None}, None),  # null values
        ("p", {"other": "x"}, None),
        ("p", {"topology.kubernetes.io/region": "eu-west-1"}, None),
        ("p", {GPU_PRODUCT_LABEL: "NVIDIA-H100-80GB-HBM3"}, None),
        ("p", {GPU_PRODUCT_LABEL: 5}, None),
    ]
    assert any(aff is None and not sel for _, sel, aff in placements)  # the fast case is exercised
    for t in templates[:3]:
        for placed in [*placements, *odd]:
            path, selector, affinity = placed
            full = (path, selector, {} if affinity is None else affinity)
            for label in ("topology.kubernetes.io/region", *PRODUCT_LABELS):
                assert label_constraint(t, label, placed) == label_constraint(t, label, full)
            assert product_constraint(t, placed) == product_constraint(t, full)
