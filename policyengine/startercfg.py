"""The starter GovernanceConfig ``policyengine init`` writes: the facts of ``policyengine.starter`` as YAML,
every guessed value followed by a ``# review: guessed from <where>`` comment.

Values come from manifests anyone can write, so the text is made by a small emitter that writes every
string double-quoted with everything outside printable ASCII escaped, and every comment with the same
escapes (no line break can end a comment early). The result is parsed back and must equal the data it
was made from, so a value can never turn into a key, a comment or another document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import yaml

from policyengine.starter import DataPrefix, Facts, Where

MAX_COMMENT = 300  # characters of one comment's text; longer is cut with "..."

Scalar = Union[str, int, bool]  # noqa: UP007 -- a runtime alias, kept readable


@dataclass
class Node:
    """A mapping (``entries``) or a sequence (``items``), each child with its comment."""

    entries: list[tuple[str, Any, str]] = field(default_factory=list)  # key, Node | Scalar, comment
    items: list[tuple[Any, str]] | None = None  # set: a sequence

    @classmethod
    def seq(cls) -> Node:
        return cls(items=[])

    def put(self, key: str, value: Any, comment: str = "") -> Any:
        self.entries.append((key, value, comment))
        return value

    def add(self, value: Any, comment: str = "") -> None:
        assert self.items is not None
        self.items.append((value, comment))

    def data(self) -> Any:
        if self.items is not None:
            return [_data(v) for v, _ in self.items]
        return {k: _data(v) for k, v, _ in self.entries}

    def empty(self) -> bool:
        return not (self.items if self.items is not None else self.entries)


def _data(value: Any) -> Any:
    return value.data() if isinstance(value, Node) else value


def _escape(ch: str, quotes: str = '"') -> str:
    code = ord(ch)
    if ch == "\\" or ch in quotes:
        return "\\" + ch
    if 0x20 <= code < 0x7F:
        return ch
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def quote(text: str) -> str:
    """``text`` as a YAML double-quoted scalar on one line, only printable ASCII in it."""
    return '"' + "".join(_escape(ch) for ch in text) + '"'


def comment_text(text: str) -> str:
    """``text`` fit for a comment: the same escapes as ``quote`` (so no line break), cut at MAX_COMMENT."""
    escaped = "".join(_escape(ch, "") for ch in text)
    return escaped if len(escaped) <= MAX_COMMENT else escaped[: MAX_COMMENT - 3] + "..."


# The schema's own keys are written plain; every other key (a team, a zone) is quoted, so that a team
# named "yes" or "null" stays a string.
_PLAIN_KEYS = frozenset(
    [
        "apiVersion",
        "kind",
        "metadata",
        "name",
        "spec",
        "gpu",
        "teams",
        "quota",
        "products",
        "residency",
        "zones",
        "regions",
        "dataLocations",
        "prefix",
        "region",
        "models",
        "approvedSources",
        "paths",
        "config",
        "inventory",
    ]
)


def _key(key: str) -> str:
    return key if key in _PLAIN_KEYS else quote(key)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Node):
        return "[]" if value.items is not None else "{}"
    return quote(str(value))


def _tail(comment: str) -> str:
    return f"  # {comment_text(comment)}" if comment else ""


def emit(node: Node, indent: int = 0) -> list[str]:
    """The lines of ``node`` at ``indent``. Items of a sequence are scalars or flat mappings."""
    pad = " " * indent
    lines: list[str] = []
    if node.items is not None:
        for value, comment in node.items:
            if isinstance(value, Node) and not value.empty():
                inner = emit(value, indent + 2)
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines += inner[1:]
            else:
                lines.append(f"{pad}- {_scalar(value)}{_tail(comment)}")
        return lines
    for key, value, comment in node.entries:
        if isinstance(value, Node) and not value.empty():
            lines.append(f"{pad}{_key(key)}:{_tail(comment)}")
            lines += emit(value, indent + 2)
        else:
            lines.append(f"{pad}{_key(key)}: {_scalar(value)}{_tail(comment)}")
    return lines


def review(where: Where | None, extra: str = "") -> str:
    text = f"review: guessed from {where.text}" if where is not None else "review: guessed"
    return f"{text}; {extra}" if extra else text


def _teams(facts: Facts) -> Node:
    teams = Node()
    for name, team in sorted(facts.teams.items()):
        namespaces = ", ".join(sorted(team.namespaces)) or "none labelled (namespaces without a team label)"
        entry = teams.put(name, Node(), review(team.where, f"namespaces: {namespaces}"))
        entry.put("quota", team.gpus, review(team.gpus_where, "the GPUs its workloads ask for, together"))
        if team.products and team.unpinned:  # a product list would deny its templates that pin none
            seen = ", ".join(sorted(team.products))
            entry.put(
                "products",
                Node.seq(),
                f"review: products pinned: {seen}; not listed, some GPU templates pin none",
            )
        elif team.products:
            products = entry.put(
                "products", Node.seq(), "review: its GPU templates must then pin one of these"
            )
            for product, where in sorted(team.products.items()):
                products.add(product, review(where))
    return teams


# Object stores whose buckets live in one region, where data usually sits beside the pods that read it.
# A model hub or registry (hf://, oci://) serves from wherever it is: its readers say nothing of that.
BUCKET_SCHEMES = frozenset({"s3", "gs", "gcs", "az", "abfs", "abfss", "wasb", "wasbs"})


def _region_of(prefix: str, entry: DataPrefix, facts: Facts) -> tuple[str, str]:
    """The region to write for a data prefix, and the comment saying why: for a bucket, the one region
    its readers are pinned to, else the one region of their zone; else "" -- the engine's unknown
    location, denied while unknownLocation is deny, so a guess never passes for a known region."""
    placeholder = 'review: placeholder: "" is an unknown location (denied while unknownLocation is deny); set the region'
    if prefix.partition("://")[0].lower() not in BUCKET_SCHEMES:
        stored = "these model weights are" if entry.kind == "model" else "this data is"
        return "", f"{placeholder} where {stored} stored"
    zone_regions = {r for z in entry.zones if z in facts.zones for r in facts.zones[z].regions}
    candidates = set(entry.regions) or zone_regions
    if len(candidates) == 1:
        region = next(iter(candidates))
        where = entry.regions.get(region) or _zone_where(facts, entry.zones, region)
        return region, review(where, "the region its readers run in")
    seen = f" (its readers run in {', '.join(sorted(candidates))})" if candidates else ""
    return "", f"{placeholder}{seen}"


def _zone_where(facts: Facts, zones: set[str], region: str) -> Where | None:
    for name in sorted(zones):
        zone = facts.zones.get(name)
        if zone is not None and region in zone.regions:
            return zone.regions[region]
    return None


def _residency(facts: Facts) -> Node:
    residency = Node()
    if facts.zones:
        zones = residency.put("zones", Node())
        for name, zone in sorted(facts.zones.items()):
            regions = Node.seq()
            for region, where in sorted(zone.regions.items()):
                regions.add(region, review(where))
            note = "" if zone.regions else "no workload of this zone pins a region: list its regions"
            zones.put(name, Node()).put("regions", regions, review(zone.where, note))
    if facts.data:
        locations = residency.put("dataLocations", Node.seq())
        for prefix, entry in sorted(facts.data.items()):
            region, why = _region_of(prefix, entry, facts)
            item = Node()
            item.put("prefix", prefix, review(entry.where, f"{entry.kind} read here"))
            item.put("region", region, why)
            locations.add(item)
    return residency


def _models(facts: Facts) -> Node:
    models = Node()
    if facts.models:
        sources = models.put("approvedSources", Node.seq())
        for prefix, where in sorted(facts.models.items()):
            sources.add(prefix, review(where))
    return models


def header(facts: Facts, read: Sequence[str]) -> list[str]:
    """The comment block at the top: what was read, what is in use, what was left out or not found."""
    lines = [
        "Starter GovernanceConfig written by `policyengine init` from: " + ", ".join(read),
        "Every value marked `review` is a guess from what the manifests ask for, not a policy decision:",
        "check each one (quotas, approved sources, regions) before you enforce with it.",
    ]
    in_use = [f"{n} ({c} asked, first at {w.text})" for n, (c, w) in sorted(facts.resources.items())]
    lines.append("GPU resources in use: " + (", ".join(in_use) if in_use else "none"))
    if facts.unzoned_regions:
        regions = ", ".join(f"{r} ({w.text})" for r, w in sorted(facts.unzoned_regions.items()))
        lines.append(f"Regions pinned outside any residency zone: {regions}")
    if not facts.teams:
        lines.append("No team found: label namespaces with policyengine.io/team and add spec.gpu.teams.")
    if not facts.zones:
        lines.append("No residency zone found: label namespaces with policyengine.io/residency to use one.")
    lines += [f"Note: {note}" for note in facts.notes]
    return ["# " + comment_text(line) for line in lines]


def render(facts: Facts, read: Sequence[str]) -> str:
    """The starter GovernanceConfig's text. Raises RuntimeError if it would not read back as built."""
    root = Node()
    root.put("apiVersion", "policyengine.io/v1")
    root.put("kind", "GovernanceConfig")
    root.put("metadata", Node()).put("name", "starter")
    spec = root.put("spec", Node())
    sections = {"gpu": Node(), "residency": _residency(facts), "models": _models(facts)}
    if facts.teams:
        sections["gpu"].put("teams", _teams(facts))
    for name, section in sections.items():
        if not section.empty():
            spec.put(name, section)
    text = "\n".join([*header(facts, read), *emit(root)]) + "\n"
    if yaml.safe_load(text) != root.data():
        raise RuntimeError("the starter configuration does not read back as written")
    return text
