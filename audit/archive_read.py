"""Reading archives (``audit.archive``) and verifying a whole history: archives chained by their ranges,
then, when given, the live log that continues them, checked as one sequence of entries.

An archive's files are untrusted input: the manifest is read with a size bound and each field checked,
and every entry and checkpoint is checked against the signed checkpoints exactly as a live log's are.
A plain ``audit export`` directory reads as an archive of entries [0, its size).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import chain, pairwise
from pathlib import Path
from typing import Any

from audit import errors
from audit.checkpoint import peek_checkpoint
from audit.errors import AuditError, ExportError
from audit.export import ENTRIES, FORMAT, MANIFEST, read_checkpoints, read_entries
from audit.exportkeys import KEYS, read_keys
from audit.keychain import load_chain
from audit.keys import VKEY_FILE, load_verifier
from audit.log import AuditLog
from audit.merkle import CompactRange
from audit.note import Verifier
from audit.retention import live_base
from audit.stores import StoredEntry, TreeHead
from audit.stores.sql import PAGE
from audit.verify import VerifyReport, verify_log

ARCHIVE_FORMAT = "policyengine.audit.archive/v1"
MANIFEST_LIMIT = 64 * 1024  # a manifest is a few hundred bytes


@dataclass(frozen=True)
class ArchiveDir:
    path: Path
    origin: str
    first: int
    size: int
    start: TreeHead  # the tree head at ``first``: the compact range the checkpoint at ``first`` signs
    before: str


def read_archive(directory: str | os.PathLike[str]) -> ArchiveDir:
    """The manifest of an archive (or of an export, an archive from index 0), checked field by field."""
    path = Path(directory)
    manifest = _manifest(path)
    origin = _field(path, manifest, "origin", str)
    if manifest.get("format") == FORMAT:  # an export: entries [0, entries)
        size = _index(path, manifest, "entries")
        return ArchiveDir(path, origin, 0, size, TreeHead.empty(), "")
    if manifest.get("format") != ARCHIVE_FORMAT:
        raise _invalid(path, "format", f"is not {ARCHIVE_FORMAT!r}")
    first, size = _index(path, manifest, "first"), _index(path, manifest, "size")
    if size < first:
        raise _invalid(path, "size", f"{size} is below first {first}")
    try:
        blob = base64.b64decode(_field(path, manifest, "range_first", str), validate=True)
        start = CompactRange.from_bytes(first, blob)
    except (binascii.Error, ValueError, AuditError) as exc:
        raise _invalid(path, "range_first", f"is not the compact range of size {first}: {exc}") from exc
    head = TreeHead(first, start.root(), blob)
    return ArchiveDir(path, origin, first, size, head, _field(path, manifest, "before", str))


def verify_archives(
    directories: Sequence[str | os.PathLike[str]],
    verifier: Verifier | None = None,
    *,
    log: AuditLog | None = None,
    trusted: Sequence[str] = (),
    pinned: Sequence[Verifier] = (),
) -> VerifyReport:
    """Verify archives that follow each other, and the live ``log`` after them when given, as one history.

    ``verifier`` pins the first key (default: the first archive's own ``audit.vkey``); later keys come
    from the co-signed hand-overs the live log holds, or without it from the newest archive's
    ``keys.json`` (``pinned``: keys the auditor got otherwise). Without a live log the history must end
    on a checkpoint, as an export's does."""
    archives = sorted((read_archive(d) for d in directories), key=lambda a: a.first)
    if not archives:
        raise ExportError("no archive given", code=errors.USAGE)
    if verifier is None:
        verifier = load_verifier(archives[0].path / VKEY_FILE)
    checkpoints, problem = _checkpoints(archives, log)
    problem = problem or _gaps(archives, log)
    if problem is not None:
        return problem
    end = archives[-1].size
    entries: Iterable[StoredEntry | tuple[int, bytes]] = chain.from_iterable(_entries(a) for a in archives)
    head = None
    if log is not None:
        head, count = log.store.state()
        stop = min(max(count, live_base(log.store).size), head.size + 1)  # past the head: tampering
        entries = chain(entries, _live(log, end, stop))
    keys = load_chain(log.store, verifier, pinned) if log is not None else None
    if keys is None:
        keys = read_keys(archives[-1].path / KEYS, verifier, pinned)
    report = verify_log(
        entries, checkpoints, verifier, head=head, trusted=trusted, start=archives[0].start, chain=keys
    )
    if log is None and report.ok and report.unsigned:
        message = f"{report.unsigned} entries from index {report.signed_size} on are covered by no checkpoint"
        return replace(
            report,
            ok=False,
            first_bad_index=report.signed_size,
            code=errors.UNSIGNED_ENTRIES,
            message=message,
        )
    return report


def _entries(archive: ArchiveDir) -> Iterator[tuple[int, bytes]]:
    for line, data in read_entries(archive.path):
        index = archive.first + line
        if index >= archive.size:
            raise ExportError(
                f"{archive.path / ENTRIES}:{line + 1}: more entries than the manifest's size {archive.size}",
                code=errors.ARCHIVE_INVALID,
            )
        yield index, data


def _live(log: AuditLog, start: int, stop: int) -> Iterator[StoredEntry]:
    """The live entries [start, stop): those below ``start`` are in the archives given."""
    for low in range(max(start, live_base(log.store).size), stop, PAGE):
        yield from log.store.entries(low, min(low + PAGE, stop))


def _checkpoints(
    archives: Sequence[ArchiveDir], log: AuditLog | None
) -> tuple[list[tuple[int, str]], VerifyReport | None]:
    """The live log's checkpoints and the archives' as one list; an archive's that contradicts another
    note for its size (another root) is a mismatch, reported at the archive's first index."""
    notes: dict[int, str] = dict(log.store.checkpoints()) if log is not None else {}
    for archive in archives:
        for size, note in read_checkpoints(archive.path):
            known = notes.setdefault(size, note)
            if known != note and _root(known) != _root(note):
                message = f"checkpoint {size} of {archive.path} differs from another for that size"
                return [], _mismatch(archive.first, message)
    return sorted(notes.items()), None


def _gaps(archives: Sequence[ArchiveDir], log: AuditLog | None) -> VerifyReport | None:
    """Archives must follow one another, and reach the first entry the live log still holds."""
    for earlier, later in pairwise(archives):
        if later.first != earlier.size:
            message = f"{earlier.path} ends at {earlier.size} but {later.path} starts at {later.first}"
            return _mismatch(min(earlier.size, later.first), message)
    if log is not None:
        end, base = archives[-1].size, live_base(log.store).size
        if end < base:
            held = ", ".join(r.location for r in log.store.archived() if r.size > end)
            message = f"entries [{end}, {base}) are archived to {held}, which is not among the archives given"
            return _mismatch(end, message)
    return None


def _mismatch(index: int, message: str) -> VerifyReport:
    return VerifyReport(False, 0, 0, 0, index, errors.ARCHIVE_MISMATCH, message)


def _root(note: str) -> bytes | None:
    try:
        return peek_checkpoint(note).root
    except AuditError:
        return None


def _manifest(path: Path) -> dict[str, Any]:
    file = path / MANIFEST
    try:
        with file.open("rb") as handle:
            data = handle.read(MANIFEST_LIMIT + 1)
    except OSError as exc:
        raise ExportError(f"cannot read {file}: {exc.strerror or exc}", code=errors.ARCHIVE_INVALID) from exc
    if len(data) > MANIFEST_LIMIT:
        raise ExportError(f"{file} is over {MANIFEST_LIMIT} bytes", code=errors.ARCHIVE_INVALID)
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ExportError(f"{file} is not JSON: {exc}", code=errors.ARCHIVE_INVALID) from exc
    if not isinstance(value, dict):
        raise ExportError(f"{file} is not a JSON object", code=errors.ARCHIVE_INVALID)
    return value


def _field(path: Path, manifest: dict[str, Any], name: str, kind: type[str]) -> str:
    value = manifest.get(name)
    if not isinstance(value, kind):
        raise _invalid(path, name, "is missing or not a string")
    return value


def _index(path: Path, manifest: dict[str, Any], name: str) -> int:
    value = manifest.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise _invalid(path, name, "is missing or not an index (an integer from 0 to 2^63-1)")
    return value


def _invalid(path: Path, name: str, problem: str) -> ExportError:
    return ExportError(f"{path / MANIFEST}: field {name!r} {problem}", code=errors.ARCHIVE_INVALID)
