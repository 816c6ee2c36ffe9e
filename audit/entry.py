"""Audit entries: the versioned record of one decision and its canonical bytes (RFC 8785).

An entry is plain JSON without floats. ``canonical`` turns it into the bytes that are stored and hashed;
a fast path (``json.dumps`` with sorted keys) is used when it provably gives RFC 8785 output, and the
``rfc8785`` package otherwise. ``index_fields`` pulls out the columns stores index for queries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec

import rfc8785

from audit import errors
from audit.errors import EntryError

# Version 2 added the source "background" (a scan of existing objects); otherwise an entry of version 1
# has the same shape, so logs written before it still verify and query as they are.
ENTRY_VERSION = 2
SOURCES_BY_VERSION = {1: ("admission", "ci"), 2: ("admission", "ci", "background")}
SOURCES = SOURCES_BY_VERSION[ENTRY_VERSION]
VERDICTS = ("allowed", "denied", "warned")
MAX_SAFE_INTEGER = 2**53 - 1  # RFC 8785 numbers are IEEE 754 doubles
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # fixed width, so text order is time order


@dataclass(frozen=True)
class IndexFields:
    """What stores index an entry by (derived from the entry, never stored apart from it in exports)."""

    time: str
    source: str
    verdict: str
    namespace: str
    user: str
    kind: str
    policies: tuple[str, ...]


P = ParamSpec("P")
_BMP_LAST = "\uffff"  # the highest code point one UTF-16 unit holds


def format_time(when: datetime) -> str:
    if when.tzinfo is None:
        raise EntryError("entry time must be timezone-aware", code=errors.ENTRY_NAIVE_TIME)
    return when.astimezone(UTC).strftime(TIME_FORMAT)


def encode_entry(
    *,
    time: datetime,
    source: str,
    uid: str,
    operation: str,
    resource: Mapping[str, str],
    verdict: str,
    user: str = "",
    groups: Sequence[str] = (),
    policy_set_digest: str = "",
    results: Sequence[Mapping[str, str]] = (),
    exceptions: Sequence[str] = (),
    dry_run: bool = False,
    commit: str | None = None,
) -> tuple[dict[str, Any], bytes]:
    """``make_entry`` and the entry's canonical bytes, made once: the log stores and hashes these bytes
    (``AuditLog.submit_encoded``), so an admission's entry is canonicalised a single time."""
    if source not in SOURCES:
        raise EntryError(f"source must be one of {SOURCES}, not {source!r}", code=errors.ENTRY_SOURCE)
    if verdict not in VERDICTS:
        raise EntryError(f"verdict must be one of {VERDICTS}, not {verdict!r}", code=errors.ENTRY_VERDICT)
    entry: dict[str, Any] = {
        "version": ENTRY_VERSION,
        "time": format_time(time),
        "source": source,
        "uid": uid,
        "user": {"username": user, "groups": list(groups)},
        "operation": operation,
        "resource": {key: str(resource.get(key, "")) for key in ("apiVersion", "kind", "namespace", "name")},
        "policySetDigest": policy_set_digest,
        "results": [_result(r) for r in results],
        "exceptions": list(exceptions),
        "verdict": verdict,
        "dryRun": bool(dry_run),
    }
    if commit:
        entry["commit"] = commit
    # Rejects what cannot be stored now, not in the writer thread.
    return entry, _canonical_built(
        entry, (uid, operation, user, policy_set_digest, commit, *groups, *exceptions)
    )


def _entry_only(encode: Callable[P, tuple[dict[str, Any], bytes]]) -> Callable[P, dict[str, Any]]:
    def make_entry(*args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        """Build an entry of the current version from plain values (``encode_entry`` without the bytes).

        ``resource`` holds ``apiVersion``, ``kind``, ``namespace`` and ``name``; each of ``results`` holds
        ``policy``, ``action``, ``outcome``, ``message`` and optionally ``exception`` (the exception used).
        ``commit`` is the git commit of a CI run made inside a repository.
        """
        return encode(*args, **kwargs)[0]

    return make_entry


make_entry = _entry_only(encode_entry)


def _canonical_built(entry: dict[str, Any], free: tuple[object, ...]) -> bytes:
    """``canonical`` of an entry ``encode_entry`` built: its keys are ASCII literals and every value but
    ``free`` (the values taken as given) is a string, a bool or the version, so once ``free`` holds only
    strings (or None: no commit) no float, big integer or astral key can be in it, and the sorted
    ``json.dumps`` is RFC 8785 without walking the entry first. Anything else takes the checked path."""
    if not all(value is None or isinstance(value, str) for value in free):
        return canonical(entry)
    return _dumps(entry)


def _result(result: Mapping[str, str]) -> dict[str, str]:
    out = {key: str(result.get(key, "")) for key in ("policy", "action", "outcome", "message")}
    if result.get("exception"):
        out["exception"] = str(result["exception"])
    return out


def canonical(value: Any) -> bytes:
    """RFC 8785 bytes of ``value``; raises EntryError for floats, huge integers or bad strings."""
    astral = _check(value)
    if astral:  # keys outside the BMP sort differently by UTF-16 code units: use the reference
        try:
            return rfc8785.dumps(value)
        except (rfc8785.CanonicalizationError, TypeError) as exc:
            raise EntryError(f"entry is not canonicalisable: {exc}") from exc
    return _dumps(value)


def _dumps(value: Any) -> bytes:
    """Sorted, compact JSON: RFC 8785 for a value ``_check`` passed without astral keys."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EntryError(
            f"entry holds a string that is not valid Unicode: {exc}", code=errors.ENTRY_UNICODE
        ) from exc


def _check(value: Any) -> bool:
    """Validate JSON types; return True when some object key has a character outside the BMP."""
    astral = False
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None or isinstance(item, (bool, str)):
            continue
        if isinstance(item, int):
            if abs(item) > MAX_SAFE_INTEGER:
                raise EntryError(f"integer {item} exceeds the I-JSON safe range", code=errors.ENTRY_INTEGER)
        elif isinstance(item, float):
            raise EntryError("entries must not hold floats", code=errors.ENTRY_FLOAT)
        elif isinstance(item, Mapping):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise EntryError(f"object key {key!r} is not a string", code=errors.ENTRY_KEY)
                # max() of a string is its highest code point, found in C: this runs for every key of
                # every entry an admission records.
                if not astral and not key.isascii() and max(key) > _BMP_LAST:
                    astral = True
                stack.append(sub)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        else:
            raise EntryError(f"{type(item).__name__} is not a JSON type", code=errors.ENTRY_TYPE)
    return astral


def parse(data: bytes) -> dict[str, Any]:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise EntryError("an entry is a JSON object")
    return value


def index_fields(entry: Mapping[str, Any]) -> IndexFields:
    user = entry.get("user")
    resource = entry.get("resource")
    results = entry.get("results")
    user_map = user if isinstance(user, Mapping) else {}
    resource_map = resource if isinstance(resource, Mapping) else {}
    policies: list[str] = []
    for result in results if isinstance(results, list) else []:
        name = result.get("policy") if isinstance(result, Mapping) else None
        if isinstance(name, str) and name and name not in policies:
            policies.append(name)
    return IndexFields(
        time=str(entry.get("time", "")),
        source=str(entry.get("source", "")),
        verdict=str(entry.get("verdict", "")),
        namespace=str(resource_map.get("namespace", "")),
        user=str(user_map.get("username", "")),
        kind=str(resource_map.get("kind", "")),
        policies=tuple(policies),
    )
