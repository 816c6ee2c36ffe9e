"""The organisation's facts about one request, as CEL sees them in ``org``: the GovernanceConfig applied
to the request's namespace, its object and the cluster's GPU usage, so that rules only compare.

Shape (every key is always present)::

    {
      "team": "ml-research",         # the namespace's label policyengine.io/team; "default" without one
      "quota": {
        "team": "ml-research",       # the team whose quota applies: "team" when spec.gpu.teams has it,
                                     # else "default" (every team without an entry shares its one pool)
        "limits": {"quota": 32, "maxPerPod": 8, "maxPerWorkload": 16, "products": [...],
                   "quotaByResource": {"nvidia.com/mig-1g.5gb": 14}},
                                     # spec.gpu.teams[quota.team] as written; {} when there is none
        "gpusInUse": 12,             # devices held by the pool's non-terminated pods (the inventory),
                                     # each counted once whatever its kind: a MIG slice is one device
        "gpusInUseByResource": {"nvidia.com/gpu": 8, "nvidia.com/mig-1g.5gb": 4}
                                     # the same devices per resource name; every resource named in
                                     # limits.quotaByResource is present (0 when none is held)
      },
      "residency": {
        "zone": "eu",                # label policyengine.io/residency: the namespace's wins over the
                                     # object's; "" when neither has it
        "regions": ["eu-west-1"],    # spec.residency.zones[zone].regions; [] when the zone is not defined
        "dataLocations": [{"uri": "s3://b/x", "path": "...", "source": "env", "kind": "data",
                           "region": "eu-west-1"}]
                                     # workload.dataLocations, each with the region of its longest
                                     # matching spec.residency.dataLocations prefix; "" means unknown
      }
    }

What a team is (``inventory.team_of``) and what it uses (``inventory.usage_by_team``) live in the
inventory module; how teams pool their quota, which label names a zone and where data lives are here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policyengine.inventory import DEFAULT_TEAM, team_of
from policyengine.model import Inventory
from policyengine.workloads.values import as_dict, as_list

__all__ = ["RESIDENCY_LABEL", "UNKNOWN_REGION", "OrgRules", "pool_usage", "pool_usage_by_resource"]

RESIDENCY_LABEL = "policyengine.io/residency"
# The one spelling of "no region is known for this data location".
UNKNOWN_REGION = ""


def _plain(value: Any) -> dict[str, Any]:
    """A mapping as CEL values take it (a plain dict); anything else as no entry."""
    return value if isinstance(value, dict) else dict(value) if isinstance(value, Mapping) else {}


def _section(config: Mapping[str, Any] | None, name: str) -> Mapping[str, Any]:
    cfg = as_dict(config)
    # Accept the whole GovernanceConfig document or its spec, as the workload view does.
    if name not in cfg and isinstance(cfg.get("spec"), Mapping):
        cfg = cfg["spec"]
    return as_dict(cfg.get(name))


def _pool_of(team: str, configured: Mapping[str, Any]) -> str:
    return team if team in configured and team != DEFAULT_TEAM else DEFAULT_TEAM


def pool_usage(teams_in_use: Mapping[str, int], configured: Mapping[str, Any]) -> dict[str, int]:
    """GPUs in use per quota pool: a team with an entry in spec.gpu.teams is its own pool; every other
    team is charged to team default's pool, so a made-up team label opens no fresh quota."""
    pools: dict[str, int] = {}
    for team, used in teams_in_use.items():
        pool = _pool_of(team, configured)
        pools[pool] = pools.get(pool, 0) + used
    return pools


def pool_usage_by_resource(
    teams_in_use: Mapping[str, Mapping[str, int]], configured: Mapping[str, Any]
) -> dict[str, dict[str, int]]:
    """Devices in use per quota pool and resource name, pooled as ``pool_usage`` pools them."""
    pools: dict[str, dict[str, int]] = {}
    for team, by_resource in teams_in_use.items():
        pool = pools.setdefault(_pool_of(team, configured), {})
        for name, used in by_resource.items():
            pool[name] = pool.get(name, 0) + used
    return pools


@dataclass(frozen=True)
class OrgRules:
    """The parts of a GovernanceConfig the ``org`` view applies, read once per policy set."""

    teams: Mapping[str, Any]
    zones: Mapping[str, Any]
    # (prefix, region) by descending prefix length; ties keep config order (the first written wins).
    prefixes: tuple[tuple[str, str], ...]

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> OrgRules:
        residency = _section(config, "residency")
        entries = [as_dict(e) for e in as_list(residency.get("dataLocations"))]
        pairs = [
            (e["prefix"], e["region"] if isinstance(e.get("region"), str) else UNKNOWN_REGION)
            for e in entries
            if isinstance(e.get("prefix"), str) and e["prefix"]
        ]
        return cls(
            teams=as_dict(_section(config, "gpu").get("teams")),
            zones=as_dict(residency.get("zones")),
            prefixes=tuple(sorted(pairs, key=lambda p: -len(p[0]))),
        )

    def region_of(self, uri: str) -> str:
        """The region of the longest registered prefix of ``uri``; UNKNOWN_REGION when none matches."""
        return next((region for prefix, region in self.prefixes if uri.startswith(prefix)), UNKNOWN_REGION)

    def view(
        self,
        namespace: str,
        obj: Mapping[str, Any],
        inventory: Inventory,
        pools: Mapping[str, int],
        data_locations: Sequence[Mapping[str, Any]],
        pools_by_resource: Mapping[str, Mapping[str, int]] | None = None,
    ) -> dict[str, Any]:
        """The ``org`` CEL variable (shape in the module docstring); ``pools`` from ``pool_usage`` and
        ``pools_by_resource`` from ``pool_usage_by_resource`` (none: nothing in use per resource)."""
        team = team_of(inventory, namespace)
        quota_team = team if team in self.teams else DEFAULT_TEAM
        limits = _plain(self.teams.get(quota_team))
        in_use = as_dict(as_dict(pools_by_resource).get(quota_team))
        # Every resource with a per-resource quota is present, so a rule indexes it without a guard.
        by_resource = {n: 0 for n in as_dict(limits.get("quotaByResource")) if isinstance(n, str)}
        by_resource.update(in_use)
        zone = self._zone(inventory.namespaces.get(namespace) if namespace else None, obj)
        zone_entry = as_dict(self.zones.get(zone)) if zone else {}
        return {
            "team": team,
            "quota": {
                "team": quota_team,
                "limits": limits,
                "gpusInUse": pools.get(quota_team, 0),
                "gpusInUseByResource": dict(sorted(by_resource.items())),
            },
            "residency": {
                "zone": zone,
                "regions": [r for r in as_list(zone_entry.get("regions")) if isinstance(r, str)],
                "dataLocations": [
                    {**d, "region": self.region_of(str(d.get("uri", "")))} for d in data_locations
                ],
            },
        }

    @staticmethod
    def _zone(namespace_object: Any, obj: Mapping[str, Any]) -> str:
        for source in (namespace_object, obj):
            labels = as_dict(as_dict(as_dict(source).get("metadata")).get("labels"))
            if RESIDENCY_LABEL in labels:
                value = labels[RESIDENCY_LABEL]
                # A label that is not a string (a hand-written manifest) still binds: shown as written.
                return value if isinstance(value, str) else json.dumps(value, default=str)
        return ""
