"""The organisation's facts about one request, as CEL sees them in ``org``: the GovernanceConfig applied
to the request's namespace, its object and the cluster's GPU usage, so that rules only compare.

Shape (every key is always present)::

    {
      "team": "ml-research",         # the namespace's label policyengine.io/team; "default" without one
      "quota": {
        "team": "ml-research",       # the team whose quota applies: "team" when spec.gpu.teams has it,
                                     # else "default" (every team without an entry shares its one pool)
        "limits": {"quota": 32, "maxPerPod": 8, "maxPerWorkload": 16, "products": [...],
                   "quotaByResource": {"nvidia.com/mig-1g.5gb": 14},
                   "quotaByProduct": {"NVIDIA-H100-80GB-HBM3": 16}},
                                     # spec.gpu.teams[quota.team] as written; {} when there is none
        "gpusInUse": 12,             # devices held by the pool's non-terminated pods (the inventory),
                                     # each counted once whatever its kind: a MIG slice is one device,
                                     # plus the pool's pending reservations (gpusReserved)
        "gpusReserved": 0,           # of gpusInUse, the GPUs reserved by admitted workloads whose pods
                                     # are not observed yet (policyengine/charging.py); 0 without a ledger
        "gpusInUseByResource": {"nvidia.com/gpu": 8, "nvidia.com/mig-1g.5gb": 4}
                                     # the same devices per resource name; every resource named in
                                     # limits.quotaByResource is present (0 when none is held)
        "gpusInUseByProduct": {"NVIDIA-H100-80GB-HBM3": 12}
                                     # devices per product (policyengine/productusage.py): a bound
                                     # pod's node label wins over its spec; devices no product pins
                                     # count against every product of limits.quotaByProduct they could
                                     # be; every product of limits.quotaByProduct is present
        "source": "config",          # where the budgets come from: "config" (spec.gpu.teams) or "kueue"
        "localQueue": "",            # kueue: "<namespace>/<LocalQueue>" the workload goes to; else ""
        "clusterQueue": "",          # kueue: the ClusterQueue whose quota is the pool (also quota.team)
        "problems": []               # kueue: why no ClusterQueue budget applies (no LocalQueue, ...)
        # Only when limits.gpuMemory is set (policyengine/memory_usage.py):
        "gpuMemoryInUse": 182536110080,   # bytes of GPU memory the pool's devices hold, where known
        "gpuMemoryUnknownInUse": 0,  # devices held whose memory no ResourceSlice or profile name says
        "gpuMemoryBudget": 687194767360   # limits.gpuMemory in bytes (a quantity, 640Gi)
      },
      "residency": {
        "zone": "eu",                # label policyengine.io/residency: the namespace's wins over the
                                     # object's; "" when neither has it
        "regions": ["eu-west-1"],    # spec.residency.zones[zone].regions; [] when the zone is not defined
        "dataLocations": [{"uri": "s3://b/x", "path": "...", "source": "env", "kind": "data",
                           "region": "eu-west-1"}]
                                     # workload.dataLocations, each with the region of its longest
                                     # matching spec.residency.dataLocations prefix; "" means unknown
                                     # (always for one marked "unknown": a bucket volume whose
                                     # bucket the manifest does not name)
      }
    }

What a team is (``inventory.team_of``) and what it uses (``inventory.usage_by_team``) live in the
inventory module; how teams pool their quota, which label names a zone and where data lives are here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policyengine.inventory import DEFAULT_TEAM, team_of
from policyengine.kueue import KueueBudgets, teams_from_kueue
from policyengine.memo import MEMO_KEY, MEMO_SIZE, remembered
from policyengine.model import Inventory
from policyengine.workloads.byproduct import budget_products
from policyengine.workloads.located import Located, Run, run_matches
from policyengine.workloads.slices import memory_bytes
from policyengine.workloads.values import as_dict, as_list

__all__ = [
    "RESIDENCY_LABEL",
    "UNKNOWN_REGION",
    "OrgRules",
    "ProductInUse",
    "pool_memory",
    "pool_of",
    "pool_usage",
    "pool_usage_by_resource",
]

RESIDENCY_LABEL = "policyengine.io/residency"
# The one spelling of "no region is known for this data location".
UNKNOWN_REGION = ""
_MEMO_SIZE, _MEMO_URI = MEMO_SIZE, MEMO_KEY  # the bounds of an OrgRules' regions (``policyengine.memo``)


def _plain(value: Any) -> dict[str, Any]:
    """A mapping as CEL values take it (a plain dict); anything else as no entry."""
    return value if isinstance(value, dict) else dict(value) if isinstance(value, Mapping) else {}


def _section(config: Mapping[str, Any] | None, name: str) -> Mapping[str, Any]:
    cfg = as_dict(config)
    # Accept the whole GovernanceConfig document or its spec, as the workload view does.
    if name not in cfg and isinstance(cfg.get("spec"), Mapping):
        cfg = cfg["spec"]
    return as_dict(cfg.get(name))


def pool_of(team: str, configured: Mapping[str, Any]) -> str:
    """The quota pool a team's usage counts against (its own with an entry, else team default's)."""
    return team if team in configured and team != DEFAULT_TEAM else DEFAULT_TEAM


def pool_usage(teams_in_use: Mapping[str, int], configured: Mapping[str, Any]) -> dict[str, int]:
    """GPUs in use per quota pool: a team with an entry in spec.gpu.teams is its own pool; every other
    team is charged to team default's pool, so a made-up team label opens no fresh quota."""
    pools: dict[str, int] = {}
    for team, used in teams_in_use.items():
        pool = pool_of(team, configured)
        pools[pool] = pools.get(pool, 0) + used
    return pools


def pool_usage_by_resource(
    teams_in_use: Mapping[str, Mapping[str, int]], configured: Mapping[str, Any]
) -> dict[str, dict[str, int]]:
    """Devices in use per quota pool and resource name, pooled as ``pool_usage`` pools them."""
    pools: dict[str, dict[str, int]] = {}
    for team, by_resource in teams_in_use.items():
        pool = pools.setdefault(pool_of(team, configured), {})
        for name, used in by_resource.items():
            pool[name] = pool.get(name, 0) + used
    return pools


# The devices a pool holds per product, given the products its team budgets (``productusage``).
ProductInUse = Callable[[str, list[str]], dict[str, int]]


def _by_product(pool: str, limits: Mapping[str, Any], usage: ProductInUse | None) -> dict[str, int]:
    budgeted = budget_products(limits)
    return usage(pool, budgeted) if usage is not None else {p: 0 for p in budgeted}


def pool_memory(teams: Mapping[str, tuple[int, int]], configured: Mapping[str, Any]) -> dict[str, list[int]]:
    """[bytes known, devices of unknown memory] in use per quota pool (``memory_usage.memory_by_team``)."""
    pools: dict[str, list[int]] = {}
    for team, (known, unknown) in teams.items():
        pool = pools.setdefault(pool_of(team, configured), [0, 0])
        pool[0] = min(2**63 - 1, pool[0] + known)
        pool[1] += unknown
    return pools


@dataclass(frozen=True)
class OrgRules:
    """The parts of a GovernanceConfig the ``org`` view applies, read once per policy set."""

    teams: Mapping[str, Any]
    zones: Mapping[str, Any]
    # (prefix, region) by descending prefix length; ties keep config order (the first written wins).
    prefixes: tuple[tuple[str, str], ...]
    # spec.gpu.teamsFrom: kueue -- the budgets are the ClusterQueues' (policyengine.kueue)
    kueue: bool = False
    # The regions of URIs located before (a set's rules serve every request; the pods and re-applies of
    # one workload name the same locations): at most _MEMO_SIZE URIs of at most _MEMO_URI characters.
    _regions: dict[str, str] = field(default_factory=dict, init=False, compare=False, repr=False)
    # The record templates of env values located with these rules (``Located.templates``).
    _templates: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

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
            kueue=teams_from_kueue(config),
        )

    def locator(self, *, deferred: bool = False) -> Located:
        """What one request's walk locates its data locations with (``workloads.located``); ``deferred``:
        the walk leaves them for ``references.with_env_locations``."""
        return Located(self.region_of, self._templates, pending=[] if deferred else None)

    def region_of(self, uri: str) -> str:
        """The region of the longest registered prefix of ``uri``; UNKNOWN_REGION when none matches."""
        return remembered(self._regions, uri, self._prefix_region)

    def _prefix_region(self, uri: str) -> str:
        for prefix, region in self.prefixes:
            if uri.startswith(prefix):
                return region
        return UNKNOWN_REGION

    def located(
        self, data_locations: Sequence[Mapping[str, Any]], runs: Sequence[Run] = ()
    ) -> list[dict[str, Any]]:
        """Each data location with its region. ``runs``: the stretches the walk that found them located
        already (``workloads.located``, with this ``region_of``), taken as they are when they still line
        up with ``data_locations``. Each distinct URI is looked up once: a workload's containers (replicas
        of one another, init containers) often name the same locations."""
        regions: dict[str, str] = {}
        out: list[dict[str, Any]] = []
        done = 0
        for run in runs:
            start, records = run
            if start >= done and run_matches(data_locations, run):
                self._locate(data_locations[done:start], regions, out)
                out.extend(records)
                done = start + len(records)
        self._locate(data_locations[done:] if done else data_locations, regions, out)
        return out

    def _locate(
        self, data_locations: Sequence[Mapping[str, Any]], regions: dict[str, str], out: list[dict[str, Any]]
    ) -> None:
        append = out.append
        for location in data_locations:
            # A location the manifest does not let us read (a bucket volume's templated or Secret-held
            # name) is unknown whatever prefixes are registered, a catch-all "s3://" included.
            if location.get("unknown"):
                region = UNKNOWN_REGION
            else:
                uri = location.get("uri", "")
                uri = uri if type(uri) is str else str(uri)
                found = regions.get(uri)
                region = found if found is not None else regions.setdefault(uri, self.region_of(uri))
            located = dict(location)  # a copy: workload.dataLocations stays as it is
            located["region"] = region
            append(located)

    def view(
        self,
        namespace: str,
        obj: Mapping[str, Any],
        inventory: Inventory,
        pools: Mapping[str, int],
        data_locations: Sequence[Mapping[str, Any]] | None,
        pools_by_resource: Mapping[str, Mapping[str, int]] | None = None,
        product_usage: ProductInUse | None = None,
        kueue: KueueBudgets | None = None,
        asked: Sequence[str] = (),
        pools_memory: Mapping[str, list[int]] | None = None,
        located: Sequence[Run] = (),
    ) -> dict[str, Any]:
        """The ``org`` CEL variable (shape in the module docstring); ``pools`` from ``pool_usage`` and
        ``pools_by_resource`` from ``pool_usage_by_resource`` (none: nothing in use per resource);
        ``product_usage(pool, budgeted products)`` the devices in use per product (none: nothing);
        ``kueue`` and ``asked`` (the resources the workload asks for) when the budgets are Kueue's;
        ``pools_memory`` from ``pool_memory``; ``located`` the runs of ``data_locations`` located already.
        ``data_locations`` None: the residency's are left None, to be filled later (``views``)."""
        team = team_of(inventory, namespace)
        quota_team = team if team in self.teams else DEFAULT_TEAM
        limits = _plain(self.teams.get(quota_team))
        in_use = as_dict(as_dict(pools_by_resource).get(quota_team))
        # Every resource with a per-resource quota is present, so a rule indexes it without a guard.
        by_resource = {n: 0 for n in as_dict(limits.get("quotaByResource")) if isinstance(n, str)}
        by_resource.update(in_use)
        quota: dict[str, Any] = {
            "team": quota_team,
            "limits": limits,
            "gpusInUse": pools.get(quota_team, 0),
            "gpusInUseByResource": dict(sorted(by_resource.items())),
            "gpusInUseByProduct": _by_product(quota_team, limits, product_usage),
            "source": "config",
            "localQueue": "",
            "clusterQueue": "",
            "problems": [],
        }
        if self.kueue and kueue is not None:
            quota = kueue.quota(namespace, obj, limits, asked)
        quota.setdefault("gpusReserved", 0)
        zone = self.zone_of(inventory.namespaces.get(namespace) if namespace else None, obj)
        zone_entry = as_dict(self.zones.get(zone)) if zone else {}
        if "gpuMemory" in limits and quota["source"] == "config":
            memory = as_dict(pools_memory).get(quota_team) or [0, 0]
            quota["gpuMemoryInUse"], quota["gpuMemoryUnknownInUse"] = memory
            # The schema admits only quantities; anything else reads as no memory at all (fail closed).
            quota["gpuMemoryBudget"] = memory_bytes(limits["gpuMemory"]) or 0
        return {
            "team": team,
            "quota": quota,
            "residency": {
                "zone": zone,
                "regions": [r for r in as_list(zone_entry.get("regions")) if isinstance(r, str)],
                "dataLocations": None if data_locations is None else self.located(data_locations, located),
            },
        }

    @staticmethod
    def zone_of(namespace_object: Any, obj: Mapping[str, Any]) -> str:
        """The residency zone of ``obj`` in a namespace of ``namespace_object`` ("" for none)."""
        for source in (namespace_object, obj):
            labels = as_dict(as_dict(as_dict(source).get("metadata")).get("labels"))
            if RESIDENCY_LABEL in labels:
                value = labels[RESIDENCY_LABEL]
                # A label that is not a string (a hand-written manifest) still binds: shown as written.
                return value if isinstance(value, str) else json.dumps(value, default=str)
        return ""
