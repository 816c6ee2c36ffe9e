"""Data locations with their regions, built in the walk that finds them: ``org.residency.dataLocations``
is ``workload.dataLocations`` with each location's region, and a long env names the same few storage URIs
in every container, so the env walk writes both records of a location at once from one pair of templates
per distinct value instead of a second walk copying every location (``org.OrgRules.located``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# The region of a URI (``org.OrgRules.region_of``): "" when no registered prefix matches.
Locate = Callable[[str], str]

# A run of consecutive data locations already located: the index of its first in the workload's list,
# and the located records in order.
Run = tuple[int, list[dict[str, Any]]]


@dataclass
class Located:
    """What one request's walk located as it went: runs of ``workload.dataLocations`` with their region
    (``region`` the last key, as ``org.OrgRules.located`` writes it). The rest is located after the walk."""

    locate: Locate
    # The record templates of env values met before, kept by the rules ``locate`` reads (values and
    # templates bounded by ``references``): the pods and re-applies of a workload repeat their values.
    templates: dict[str, Any] | None = None
    runs: list[Run] = field(default_factory=list)
    # When a list, the env locations put off (``references.with_env_locations`` writes them): where each
    # container's go in the workload's list, its env, whether it is the model initializer and its path.
    # None: they are written as the walk finds them.
    pending: list[tuple[int, list[Any], bool, str]] | None = None


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
