"""What ``policyengine init`` learns from a repository's manifests (and an inventory) about the organisation:
teams and their namespaces, the GPUs their workloads ask for and the products they pin, residency zones
and the regions their workloads pin, model and data URIs by prefix -- each with where it was first seen.

Everything here is a guess for a person to review (``policyengine.startercfg`` writes it as a commented
GovernanceConfig). Input is attacker-controlled: every collection is capped, over-long values are left
out, and each cap or drop becomes a note instead of a silent loss.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policyengine.gate import is_object
from policyengine.inventory import DEFAULT_TEAM, TEAM_LABEL
from policyengine.loader import Document
from policyengine.model import Inventory
from policyengine.org import RESIDENCY_LABEL
from policyengine.workloads import describe
from policyengine.workloads.accelerators import GPU_PRODUCT_LABEL
from policyengine.workloads.pods import REGION_LABEL
from policyengine.workloads.values import as_dict, as_list

MAX_ENTRIES = 64  # teams, zones, prefixes, regions, products, resources, namespaces per team: each
MAX_VALUE = 512  # characters of one value (a label value, a region, a URI prefix); longer: left out
MAX_QUOTA = 2**31 - 1


@dataclass(frozen=True)
class Where:
    """Where a value was seen: ``file:line``, or ``inventory FILE`` (objects there carry no lines)."""

    text: str


@dataclass
class Team:
    where: Where
    namespaces: dict[str, Where] = field(default_factory=dict)
    gpus: int = 0  # the GPUs its workloads are charged, together
    gpus_where: Where | None = None  # the first workload that asks for GPUs
    products: dict[str, Where] = field(default_factory=dict)
    unpinned: bool = False  # a GPU template of its workloads pins no product


@dataclass
class Zone:
    where: Where
    regions: dict[str, Where] = field(default_factory=dict)


@dataclass
class DataPrefix:
    where: Where
    kind: str  # data | model (model weights stored somewhere are data too)
    regions: dict[str, Where] = field(default_factory=dict)  # regions the readers are pinned to
    zones: set[str] = field(default_factory=set)


@dataclass
class Facts:
    teams: dict[str, Team] = field(default_factory=dict)
    zones: dict[str, Zone] = field(default_factory=dict)
    unzoned_regions: dict[str, Where] = field(default_factory=dict)  # pinned outside any zone
    resources: dict[str, tuple[int, Where]] = field(default_factory=dict)  # GPUs asked per resource name
    models: dict[str, Where] = field(default_factory=dict)  # approvedSources candidates
    data: dict[str, DataPrefix] = field(default_factory=dict)  # dataLocations candidates
    notes: list[str] = field(default_factory=list)
    _dropped: dict[str, set[int]] = field(default_factory=dict)  # reason -> hashes of the values left out

    def admit(self, what: str, value: str, into: Mapping[str, Any]) -> bool:
        """Whether ``value`` may be added to ``into`` (a collection of ``what``): within the caps."""
        if value in into:
            return True
        if len(value) > MAX_VALUE or not _encodable(value):
            self._drop(f"{what} longer than {MAX_VALUE} characters or not text", value)
            return False
        if len(into) >= MAX_ENTRIES:
            self._drop(f"{what} past the first {MAX_ENTRIES}", value)
            return False
        return True

    def _drop(self, reason: str, value: str) -> None:
        # Each value is counted once however often it is met; hashes keep the memory small.
        self._dropped.setdefault(reason, set()).add(hash(value))

    def finish(self) -> Facts:
        self.notes += [f"left out {len(n)} {reason}" for reason, n in sorted(self._dropped.items())]
        return self


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no YAML file can hold it
        return False
    return True


def prefix_of(uri: str) -> str:
    """The prefix a URI is grouped under: ``scheme://authority/`` (an hf:// model's organisation, a
    bucket, a registry host); "" for what is not a URI."""
    scheme, sep, rest = uri.partition("://")
    if not sep or not scheme or not rest:
        return ""
    authority = rest.split("/", 1)[0]
    return f"{scheme}://{authority}/" if authority and authority != "?" else ""


def _labels(obj: Any) -> Mapping[str, Any]:
    return as_dict(as_dict(as_dict(obj).get("metadata")).get("labels"))


def _label(obj: Any, name: str) -> str:
    value = _labels(obj).get(name)
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class _Source:
    """One object to learn from and how to say where it is."""

    data: Any
    doc: Document | None
    inventory: str

    def where(self, path: Sequence[str | int] = ()) -> Where:
        if self.doc is None:
            return Where(f"inventory {self.inventory}")
        return Where(f"{self.doc.file}:{self.doc.line_of(path)}")


def gather(docs: Sequence[Document], inventory: Inventory | None = None, inventory_file: str = "") -> Facts:
    """The facts of the manifests ``docs`` and of ``inventory`` (read from ``inventory_file``)."""
    facts = Facts()
    sources = [_Source(d.data, d, "") for d in docs if is_object(d.data)]
    if inventory is not None:
        sources += [_Source(ns, None, inventory_file) for ns in inventory.namespaces.values()]
        sources += [_Source(o, None, inventory_file) for o in inventory.objects if is_object(o)]
    namespaces = [
        s for s in sources if s.data.get("kind") == "Namespace" and s.data.get("apiVersion") == "v1"
    ]
    team_of, zone_of = _namespaces(facts, namespaces)
    for source in sources:
        if source not in namespaces:
            _workload(facts, source, team_of, zone_of)
    return facts.finish()


def _namespaces(facts: Facts, namespaces: Iterable[_Source]) -> tuple[dict[str, str], dict[str, str]]:
    """Teams and zones from the namespaces' labels; the team and zone of each namespace name."""
    team_of: dict[str, str] = {}
    zone_of: dict[str, str] = {}
    for ns in namespaces:
        name = str(as_dict(ns.data.get("metadata")).get("name") or "")
        team, zone = _label(ns.data, TEAM_LABEL), _label(ns.data, RESIDENCY_LABEL)
        if team and facts.admit("team names", team, facts.teams):
            entry = facts.teams.setdefault(team, Team(ns.where(("metadata", "labels", TEAM_LABEL))))
            if facts.admit("namespaces of a team", name, entry.namespaces):
                entry.namespaces.setdefault(name, ns.where(("metadata", "name")))
            team_of.setdefault(name, team)
        if zone and facts.admit("residency zones", zone, facts.zones):
            facts.zones.setdefault(zone, Zone(ns.where(("metadata", "labels", RESIDENCY_LABEL))))
            zone_of.setdefault(name, zone)
    return team_of, zone_of


def _workload(facts: Facts, source: _Source, team_of: Mapping[str, str], zone_of: Mapping[str, str]) -> None:
    view = describe(source.data)
    namespace = view["namespace"] or "default"
    team = team_of.get(namespace, DEFAULT_TEAM)
    zone = zone_of.get(namespace) or _label(source.data, RESIDENCY_LABEL)
    if zone and zone not in facts.zones and facts.admit("residency zones", zone, facts.zones):
        facts.zones[zone] = Zone(source.where(("metadata", "labels", RESIDENCY_LABEL)))
    _gpus(facts, source, view, team)
    pinned = _regions(facts, source, view, zone if zone in facts.zones else "")
    for model in as_list(view["models"]):
        prefix = prefix_of(str(model.get("uri", "")))
        if prefix and facts.admit("model source prefixes", prefix, facts.models):
            facts.models.setdefault(prefix, source.where(_path(model)))
    for location in as_list(view["dataLocations"]):
        prefix = prefix_of(str(location.get("uri", "")))
        if (
            location.get("unknown")
            or not prefix
            or not facts.admit("data location prefixes", prefix, facts.data)
        ):
            continue
        kind = "model" if location.get("kind") == "model" else "data"
        entry = facts.data.setdefault(prefix, DataPrefix(source.where(_path(location)), kind))
        entry.kind = "data" if "data" in (kind, entry.kind) else "model"
        entry.regions.update((r, w) for r, w in pinned.items() if r not in entry.regions)
        if zone:
            entry.zones.add(zone)


def _gpus(facts: Facts, source: _Source, view: Mapping[str, Any], team: str) -> None:
    gpus = as_dict(view["gpus"])
    charged = int(as_dict(gpus.get("charge")).get("total") or 0)
    first = next((t for t in as_list(view["podTemplates"]) if as_dict(t.get("gpus")).get("perPod")), None)
    where = source.where(_path(first) if first else ())
    for name, count in as_dict(gpus.get("byResource")).items():
        if (
            isinstance(name, str)
            and isinstance(count, int)
            and facts.admit("GPU resource names", name, facts.resources)
        ):
            known, seen = facts.resources.get(name, (0, where))
            facts.resources[name] = (min(MAX_QUOTA, known + count), seen)
    if charged <= 0 or not facts.admit("team names", team, facts.teams):
        return
    entry = facts.teams.setdefault(team, Team(where))
    entry.gpus = min(MAX_QUOTA, entry.gpus + charged)
    entry.gpus_where = entry.gpus_where or where
    for template in as_list(view["podTemplates"]):
        products = as_dict(template.get("gpuProducts"))
        if not as_dict(template.get("gpus")).get("perPod"):
            continue
        if not products.get("pinned"):
            entry.unpinned = True
            continue
        for product in as_list(products.get("allowed")):
            if isinstance(product, str) and facts.admit("GPU products of a team", product, entry.products):
                entry.products.setdefault(
                    product, source.where((*_path(products), "nodeSelector", GPU_PRODUCT_LABEL))
                )


def _regions(facts: Facts, source: _Source, view: Mapping[str, Any], zone: str) -> dict[str, Where]:
    """The regions the workload's templates are pinned to, added to its zone (or to those seen outside
    any zone); returned with where each was seen."""
    pinned: dict[str, Where] = {}
    for template in as_list(view["podTemplates"]):
        regions = as_dict(template.get("regions"))
        if not regions.get("pinned"):
            continue
        for region in as_list(regions.get("allowed")):
            if isinstance(region, str) and region and region not in pinned:
                pinned[region] = source.where((*_path(regions), "nodeSelector", REGION_LABEL))
    into = facts.zones[zone].regions if zone else facts.unzoned_regions
    for region, where in pinned.items():
        if facts.admit("regions", region, into):
            into.setdefault(region, where)
    return pinned


def _path(entry: Any) -> tuple[str | int, ...]:
    """The manifest path of a view entry's ``path`` field (a dotted field path)."""
    from policyengine.gate import parse_field_path

    text = as_dict(entry).get("path")
    return parse_field_path(text) if isinstance(text, str) and text else ()
