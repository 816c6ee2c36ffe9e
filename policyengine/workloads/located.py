"""Data locations with their regions, built in the walk that finds them: ``org.residency.dataLocations``
is ``workload.dataLocations`` with each location's region, and a long env names the same few storage URIs
in every container, so the env walk writes both records of a location at once from one pair of templates
per distinct value instead of a second walk copying every location (``org.OrgRules.located``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The region of a URI (``org.OrgRules.region_of``): "" when no registered prefix matches.
Locate = Callable[[str], str]

# A run of consecutive data locations already located: the index of its first in the workload's list,
# and the located records in order.
Run = tuple[int, Sequence[dict[str, Any]]]

# What the walk of one env gave (``references.walk_env``): its locations, their located records, and
# the values the model scanner reads by name with their indexes. Kept across requests, never written.
Walk = tuple[tuple[dict[str, str], ...], tuple[dict[str, Any], ...], Mapping[str, str], Mapping[str, int]]


@dataclass
class Located:
    """What one request's walk located as it went: runs of ``workload.dataLocations`` with their region
    (``region`` the last key, as ``org.OrgRules.located`` writes it). The rest is located after the walk.
    ``walks``: the env walks of earlier requests located with the same ``locate``, by container path and
    env contents (owned by the rules ``locate`` reads, bounded by ``references.walk_env``)."""

    locate: Locate
    walks: dict[tuple[Any, ...], Walk] | None = None
    runs: list[Run] = field(default_factory=list)


def run_matches(data: Sequence[Any], run: Run) -> bool:
    """Whether ``run`` still lines up with ``data`` (its first and last locations have its paths, the very
    objects): the workload's list only grows, so it does, but a mismatch is located afresh, not trusted."""
    start, records = run
    end = start + len(records) - 1
    if start < 0 or end >= len(data) or not records:
        return False
    first, last = data[start], data[end]
    return (
        type(first) is dict
        and type(last) is dict
        and first.get("path") is records[0]["path"]
        and last.get("path") is records[-1]["path"]
        and first.get("uri") is records[0]["uri"]
        and last.get("uri") is records[-1]["uri"]
    )
