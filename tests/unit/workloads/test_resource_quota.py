"""Per-resource quotas: the devices in use per quota pool and resource name (``org.quota.
gpusInUseByResource``), and the bounds GovernanceConfig puts on ``quotaByResource``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from policyengine.errors import LoadError
from policyengine.gate import request_for
from policyengine.inventory import from_documents, inventory_view
from policyengine.loader import parse_text
from policyengine.policyset import build_policy_set
from policyengine.schema import MAX_PROBLEMS
from policyengine.views import views_for

CONFIG = """
apiVersion: policyengine.io/v1
kind: GovernanceConfig
metadata: {name: c}
spec:
  gpu:
    teams:
      vision: {quota: 20, quotaByResource: {nvidia.com/mig-1g.5gb: 14, nvidia.com/gpu: 8, amd.com/gpu: 2}}
"""


def pod(ns: str, limits: dict[str, int], phase: str = "Running") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p-{ns}-{len(str(limits))}", "namespace": ns},
        "spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": limits}}]},
        "status": {"phase": phase},
    }


INVENTORY = from_documents(
    [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "cv", "labels": {"policyengine.io/team": "vision"}},
        },
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "misc"}},
        pod("cv", {"nvidia.com/mig-1g.5gb": 10}),
        pod("cv", {"nvidia.com/gpu": 4}),
        pod("cv", {"nvidia.com/gpu": 3}, phase="Succeeded"),  # released its devices
        pod("misc", {"nvidia.com/mig-3g.20gb": 2}),
    ]
)


def org_quota(namespace: str) -> dict[str, Any]:
    policy_set = build_policy_set(parse_text(CONFIG, "config.yaml"))
    (doc,) = parse_text(
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: {namespace}}}\nspec: {{}}\n", "m.yaml"
    )
    views = views_for(policy_set)(request_for(doc), INVENTORY, policy_set.config, datetime.now(UTC))
    quota: dict[str, Any] = views["org"]["quota"]
    return quota


def test_a_mig_slice_counts_one_device_and_is_kept_under_its_own_resource() -> None:
    quota = org_quota("cv")
    # 10 slices + 4 whole GPUs: 14 devices against quota, split by resource for quotaByResource.
    assert quota["gpusInUse"] == 14
    # amd.com/gpu has a per-resource quota and none in use: present as 0, so rules index it unguarded.
    assert quota["gpusInUseByResource"] == {
        "amd.com/gpu": 0,
        "nvidia.com/gpu": 4,
        "nvidia.com/mig-1g.5gb": 10,
    }


def test_teams_without_an_entry_pool_per_resource_into_default() -> None:
    assert org_quota("misc")["gpusInUseByResource"] == {"nvidia.com/mig-3g.20gb": 2}
    teams = inventory_view(INVENTORY)["teams"]
    assert teams["vision"]["gpusInUseByResource"] == {"nvidia.com/gpu": 4, "nvidia.com/mig-1g.5gb": 10}


def config_with(quota_by_resource: str) -> str:
    return (
        "apiVersion: policyengine.io/v1\nkind: GovernanceConfig\nmetadata: {name: c}\nspec:\n"
        "  gpu:\n    teams:\n      ml:\n        quota: 1\n        quotaByResource:\n" + quota_by_resource
    )


def load_problems(text: str) -> list[str]:
    with pytest.raises(LoadError) as err:
        build_policy_set(parse_text(text, "config.yaml"))
    return [str(p) for p in err.value.problems]


def test_a_hundred_thousand_resource_quotas_are_refused_with_one_clear_error() -> None:
    keys = "".join(f"          nvidia.com/mig-{i}g: 1\n" for i in range(100_000))
    (problem,) = load_problems(config_with(keys))
    assert "line=9" in problem  # the quotaByResource key
    assert "has 100000 entries, more than the 64 allowed" in problem
    assert "spec.gpu.teams.ml.quotaByResource" in problem


def test_a_hundred_thousand_bad_names_give_a_bounded_list_of_problems() -> None:
    keys = "".join(f"          'bad name {i}': 1\n" for i in range(100_000))
    problems = load_problems(config_with(keys))
    assert len(problems) == MAX_PROBLEMS + 1
    assert any(f"more than {MAX_PROBLEMS} schema problems" in p for p in problems)


def test_a_huge_resource_name_is_refused_without_echoing_it() -> None:
    name = "nvidia.com/" + "m" * 200_000
    (problem,) = load_problems(config_with(f"          ? {name}\n          : 1\n"))
    assert "is 200011 characters long, more than the 317 allowed" in problem
    assert len(problem) < 1_000


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_a_resource_quota_is_a_whole_non_negative_number(value: str) -> None:
    problems = load_problems(config_with(f"          nvidia.com/gpu: {value}\n"))
    assert any("spec.gpu.teams.ml.quotaByResource.nvidia.com/gpu" in p for p in problems)
