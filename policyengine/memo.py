"""The views' bounded memos of what they read from short texts (an env value's storage URIs, a URI's
region, an image's digest): the pods, replicas and re-applies of one workload carry the same texts, and a
look-up costs a fraction of reading one again. Each memo keeps only keys of at most MEMO_KEY characters,
at most MEMO_SIZE of them (full, it starts over), so a hostile stream of distinct texts cannot grow it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

MEMO_SIZE = 4096
MEMO_KEY = 256

T = TypeVar("T")
K = TypeVar("K")


def remembered(
    memo: dict[str, T], key: str, make: Callable[[str], T], keep: Callable[[T], bool] | None = None
) -> T:
    """``make(key)``, from ``memo`` when it is there, else made and kept there when ``key`` is short (and
    ``keep`` accepts what was made)."""
    known = memo.get(key)  # one call: another thread may start the memo over at any time
    if known is not None:
        return known
    made = make(key)
    return kept(memo, key, len(key), made) if keep is None or keep(made) else made


def kept(memo: dict[K, T], key: K, length: int, made: T) -> T:
    """``made``, kept in ``memo`` under ``key`` when the text it stands for (``length`` characters) is
    short; a full memo starts over."""
    if length <= MEMO_KEY:
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        memo[key] = made
    return made


def interned(table: dict[K, K], value: K, limit: int) -> K:
    """The one object equal to ``value`` that ``table`` holds, or ``value`` itself, kept as that object
    while ``table`` has fewer than ``limit`` (past it, a new value is returned as it is, unkept)."""
    found = table.get(value)
    if found is not None:
        return found
    if len(table) < limit:
        table[value] = value
    return value
