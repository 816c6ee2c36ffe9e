"""The per-entry half of verification: re-hash a run of entries and re-derive their query columns.

Pure over rows, so one process or several (``verify --jobs``) run the same code on consecutive runs and
the replay of the Merkle tree (``audit.verify``) joins their results in index order. The column check
derives exactly what ``index_fields(parse(data))`` gives, without building the intermediate objects:
this loop runs once per entry of the whole log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from audit import errors
from audit.stores import StoredEntry

# A row as the SQL stores keep it (audit.stores.sql.ENTRY_COLUMNS): index, entry bytes, leaf hash, then
# the query columns, the policies as "\npolicy\n...\n". A leaf hash of None is not checked (an export
# keeps none), nor are the columns when the time column is None (a store that derives them on the fly).
Row = tuple[Any, ...]
_LEAF_PREFIX = b"\x00"
_sha256 = hashlib.sha256
# The scanner json.loads runs with default arguments (the C one when built), called without its wrapper.
_scan_once: Callable[[str, int], tuple[Any, int]] = getattr(json.JSONDecoder(), "scan_once")  # noqa: B009


@dataclass(frozen=True)
class Problem:
    index: int
    code: str
    message: str


@dataclass
class Scan:
    """What a run of rows starting at ``start`` showed: the leaf hashes of the entries that passed, in
    order; the problem that stopped the run (the next entry missing or not matching its leaf hash); the
    first entry among those that passed whose query columns differ from it."""

    start: int
    leaves: list[bytes] = field(default_factory=list)
    first_row: int | None = None  # the index of the first row seen, None when the run held none
    stop: Problem | None = None
    columns: Problem | None = None


def scan_rows(rows: Sequence[Row], start: int) -> Scan:
    """Check rows that should hold the entries ``start``, ``start + 1``, ... in that order."""
    scan = Scan(start, first_row=int(rows[0][0]) if rows else None)
    append = scan.leaves.append
    expected = start
    check_columns = True
    for row in rows:
        index, data, stored = row[0], row[1], row[2]
        if index != expected:
            scan.stop = Problem(expected, errors.ENTRY_MISSING, f"entry {expected} is missing")
            break
        if type(data) is not bytes:
            data = bytes(data)
        digest = _sha256(_LEAF_PREFIX + data).digest()
        if stored is not None and stored != digest and bytes(stored) != digest:
            scan.stop = Problem(index, errors.ENTRY_HASH, f"entry {index} does not match its leaf hash")
            break
        if check_columns and row[3] is not None and not _columns_match(row, data):
            # Not a stop: when the entry itself was edited, the checkpoint's verdict is the one to report.
            message = f"the query columns of entry {index} differ from it"
            scan.columns = Problem(index, errors.INDEX_MISMATCH, message)
            check_columns = False
        append(digest)
        expected += 1
    return scan


def as_row(item: StoredEntry | tuple[int, bytes]) -> Row:
    """A stored entry or an (index, bytes) pair of an export, as a row ``scan_rows`` reads."""
    if not isinstance(item, StoredEntry):
        index, data = item
        return (index, data, None, None)
    f = item.fields
    if f is None:
        return (item.index, item.data, item.leaf_hash, None)
    policies = "\n" + "\n".join(f.policies) + "\n" if f.policies else ""
    return (
        item.index,
        item.data,
        item.leaf_hash,
        f.time,
        f.source,
        f.verdict,
        f.namespace,
        f.user,
        f.kind,
        policies,
    )


def _columns_match(row: Row, data: bytes) -> bool:
    """Whether the stored columns are those derived from the entry. The common case (plain text columns
    written as the stores write them) is decided here without ``str()`` of each value; any other goes to
    ``derive_columns`` and is compared as the stores read columns back."""
    entry = None
    if data[:1] == b"{" and data[1:2] != b"\x00":
        try:
            text = data.decode("utf-8", "surrogatepass")
            entry, end = _scan_once(text, 0)
            if end != len(text):
                entry = None
        except (ValueError, StopIteration, RecursionError):
            entry = None
    if type(entry) is dict:
        get = entry.get
        user, resource, results = get("user"), get("resource"), get("results")
        if type(user) is dict and type(resource) is dict and type(results) is list:
            policies: list[str] = []
            for result in results:
                name = result.get("policy") if type(result) is dict else None
                if type(name) is str and name and name not in policies:
                    policies.append(name)
            rget = resource.get
            names = (
                get("time", ""),
                get("source", ""),
                get("verdict", ""),
                rget("namespace", ""),
                user.get("username", ""),
                rget("kind", ""),
            )
            # Equal to text columns, so each value is text and str() would leave it as it is.
            if row[3:9] == names and row[9] == ("\n" + "\n".join(policies) + "\n" if policies else ""):
                return True
    return _columns_match_slowly(row, data)


def _columns_match_slowly(row: Row, data: bytes) -> bool:
    derived = derive_columns(data)
    if derived is None:
        return False
    names, policies = derived
    stored = row[9]
    return (
        tuple(str(value) for value in row[3:9]) == names
        # Exactly as the stores write it: a query by policy looks for "\nNAME\n", so a column without
        # its surrounding newlines would hide the entry from those queries.
        and (stored or "") == ("\n" + policies + "\n" if policies else "")
    )


def parse_entry(data: bytes) -> Any:
    """``json.loads(data)``, or None when it fails: for an entry starting with "{" (so UTF-8, as
    json.loads would detect) the scanner is called directly, and anything else goes through json.loads."""
    if data[:1] == b"{" and data[1:2] != b"\x00":
        try:
            text = data.decode("utf-8", "surrogatepass")
            value, end = _scan_once(text, 0)
            if end == len(text):
                return value
        except (ValueError, StopIteration, RecursionError):
            pass
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # nested too deep for the parser: no entry either
        return None


def derive_columns(data: bytes) -> tuple[tuple[str, ...], str] | None:
    """The query columns of an entry (time, source, verdict, namespace, user, kind) and its policies
    joined by newlines, as ``index_fields(parse(data))`` gives them; None when the bytes are no entry."""
    entry = parse_entry(data)
    if type(entry) is not dict:  # JSON objects decode to plain dicts only
        return None
    get = entry.get
    user = get("user")
    resource = get("resource")
    results = get("results")
    user_map = user if type(user) is dict else {}
    resource_map = resource if type(resource) is dict else {}
    policies: list[str] = []
    if type(results) is list:
        for result in results:
            name = result.get("policy") if type(result) is dict else None
            if type(name) is str and name and name not in policies:
                policies.append(name)
    names = (
        str(get("time", "")),
        str(get("source", "")),
        str(get("verdict", "")),
        str(resource_map.get("namespace", "")),
        str(user_map.get("username", "")),
        str(resource_map.get("kind", "")),
    )
    return names, "\n".join(policies)
