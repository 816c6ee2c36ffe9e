"""The accelerator list and product labels: the default list matches the shipped config and schema, a
container asking for any well-known accelerator makes an AI workload, and hostile resource maps stay
bounded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from policyengine.inventory import from_documents, inventory_view
from policyengine.workloads import describe
from policyengine.workloads.accelerators import DEFAULT_ACCELERATORS, list_in_force

ROOT = Path(__file__).resolve().parents[3]
TEAM = "policyengine.io/team"


def _pod(limits: dict[str, Any], node_selector: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x", "resources": {"limits": limits}}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"}, "spec": spec}


def test_the_default_list_is_the_shipped_config_and_the_schema_default() -> None:
    shipped = yaml.safe_load((ROOT / "policies/config/defaults.yaml").read_text(encoding="utf-8"))
    assert tuple(shipped["spec"]["gpu"]["resources"]) == DEFAULT_ACCELERATORS
    schema = json.loads((ROOT / "policyengine/schemas/governance-config.json").read_text(encoding="utf-8"))
    gpu = schema["properties"]["spec"]["properties"]["gpu"]["properties"]
    assert tuple(gpu["resources"]["default"]) == DEFAULT_ACCELERATORS
    docs = (ROOT / "docs/accelerators.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in docs for name in DEFAULT_ACCELERATORS)


def test_an_uncounted_accelerator_still_makes_an_ai_workload() -> None:
    config = {"gpu": {"resources": ["nvidia.com/gpu"]}}
    view = describe(_pod({"habana.ai/gaudi": 1}), config)
    assert view["gpus"]["total"] == 0 and view["isAiWorkload"] is True
    assert describe(_pod({"example.com/fpga": 1}), config)["isAiWorkload"] is False
    assert describe(_pod({"example.com/fpga": 1}), {"gpu": {"resources": ["example.com/fpga"]}})[
        "isAiWorkload"
    ]


def test_tpu_and_instance_type_labels_pin_the_product() -> None:
    tpu = describe(_pod({"google.com/tpu": 4}, {"cloud.google.com/gke-tpu-accelerator": "tpu-v6e-slice"}))
    products = tpu["podTemplates"][0]["gpuProducts"]
    assert products["pinned"] is True and products["allowed"] == ["tpu-v6e-slice"]
    assert list(products["byLabel"]) == ["cloud.google.com/gke-tpu-accelerator"]
    trn = describe(_pod({"aws.amazon.com/neuron": 16}, {"node.kubernetes.io/instance-type": "trn2.48xlarge"}))
    assert trn["podTemplates"][0]["gpuProducts"]["allowed"] == ["trn2.48xlarge"]
    # The topology label is a slice's shape, not a product: alone it pins nothing.
    shape = describe(_pod({"google.com/tpu": 4}, {"cloud.google.com/gke-tpu-topology": "2x2"}))
    assert shape["podTemplates"][0]["gpuProducts"]["pinned"] is False


def test_a_container_with_ten_thousand_resource_names_stays_bounded() -> None:
    limits: dict[str, Any] = {f"example.com/r{i}": 1 for i in range(10_000)}
    limits["google.com/tpu"] = 2
    view = describe(_pod(limits))
    (container,) = view["containers"]
    # Only accelerators are kept: the view does not grow with the names the container lists.
    assert container["gpus"]["byResource"] == {"google.com/tpu": 2}
    assert view["gpus"]["byResource"] == {"google.com/tpu": 2}
    assert len(json.dumps(view)) < 5_000
    assert view["problems"] == []


def test_the_list_note_shortens_a_long_configured_list() -> None:
    note = list_in_force({"gpu": {"resources": [f"example.com/r{i:05}" for i in range(10_000)]}})
    assert "and 9982 more" in note and len(note) < 1_000  # 20 shown of 10 002 (nvidia, amd always count)
    assert list_in_force(None).startswith("accelerators counted: the default list (")


def test_team_usage_counts_every_default_accelerator_under_its_own_name() -> None:
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"p{i}", "namespace": "ml-ns"},
            "spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": {name: i + 1}}}]},
            "status": {"phase": "Running"},
        }
        for i, name in enumerate(DEFAULT_ACCELERATORS)
    ]
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml-ns", "labels": {TEAM: "ml"}}}
    team = inventory_view(from_documents([ns, *pods]))["teams"]["ml"]
    assert team["gpusInUseByResource"] == {name: i + 1 for i, name in enumerate(DEFAULT_ACCELERATORS)}
    assert team["gpusInUse"] == sum(range(1, len(DEFAULT_ACCELERATORS) + 1))
