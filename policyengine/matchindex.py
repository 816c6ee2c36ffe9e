"""The policies that match a request, worked out once per kind of request instead of per policy each time.

Most matches read only what kind of request it is: its operation, kind, resource, subresource and whether
it is namespaced (resource rules without resourceNames, kinds, operations, scope). Such a match says the
same of every request of that kind, so its answer is kept by that key; a match that also reads the
request's name, namespace or labels (namespaces, names, selectors, resourceNames) is judged by
``matches`` on every request, as before. The order of the policies is kept.

The keys come from requests, so the table is bounded: at most ``MAX_KEYS`` keys, each of at most
``MAX_KEY_CHARS`` characters (a longer one is judged policy by policy and not kept); when it is full it is
emptied and filled again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from policyengine.match import matches
from policyengine.model import Match, Request, ResourceRule

T = TypeVar("T")

MAX_KEYS = 1024
MAX_KEY_CHARS = 1024

Key = tuple[str, str, str, str, str, str, str, str, bool]


def reads_only_kind(match: Match) -> bool:
    """Whether ``matches(match, ...)`` reads nothing of a request beyond its ``key``."""
    rules: tuple[ResourceRule, ...] = match.resource_rules + match.exclude_resource_rules
    return (
        not (match.namespaces or match.excluded_namespaces or match.names)
        and match.namespace_selector is None
        and match.object_selector is None
        and not any(rule.resource_names for rule in rules)
        and all(reads_only_kind(m) for m in match.also)
    )


def key_of(request: Request) -> Key:
    kind, resource = request.kind, request.resource
    return (
        request.operation,
        kind.group,
        kind.version,
        kind.kind,
        resource.group,
        resource.version,
        resource.resource,
        request.sub_resource,
        bool(request.namespace),
    )


class MatchIndex(Generic[T]):
    """``select(request, ns)`` is ``[i for i in items if matches(match_of(i), request, ns)]``, the
    answers of matches that read only the kind of request kept per kind of request."""

    def __init__(self, items: Sequence[T], match_of: Callable[[T], Match]) -> None:
        self._items = tuple((item, match_of(item), reads_only_kind(match_of(item))) for item in items)
        # key -> the items that may match, in order, each with its match when it is judged per request
        self._table: dict[Key, tuple[tuple[T, Match | None], ...]] = {}

    def select(self, request: Request, namespace_object: Any) -> list[T]:
        key = key_of(request)
        entry = self._table.get(key)
        if entry is None:
            entry = self._entry(key, request, namespace_object)
        return [item for item, match in entry if match is None or matches(match, request, namespace_object)]

    def _entry(self, key: Key, request: Request, namespace_object: Any) -> tuple[tuple[T, Match | None], ...]:
        """For each item that may match requests of this kind: the item, and its match when it must be
        judged per request (None: it matches every request of this kind)."""
        entry = tuple(
            (item, None if by_kind else match)
            for item, match, by_kind in self._items
            if not by_kind or matches(match, request, namespace_object)
        )
        if sum(len(part) for part in key[:-1]) <= MAX_KEY_CHARS:
            if len(self._table) >= MAX_KEYS:
                self._table.clear()
            self._table[key] = entry
        return entry

    def __len__(self) -> int:
        """The kinds of request kept."""
        return len(self._table)
