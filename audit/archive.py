"""Retention: write a closed, signed prefix of the log to a directory an auditor verifies offline, and
then, only when asked, drop its entry bodies from the live store.

The live store keeps the tree head (compact range) at the archive's end and every checkpoint, so new
entries extend the same tree: new checkpoints stay consistent with the archived ones, and proofs of live
entries still verify. An archive has an export's files (``entries.jsonl``, line n is index first+n;
``checkpoints.jsonl``; ``audit.vkey``; ``audit.pub``) and a manifest naming its range: ``first`` and
``size`` (entries [first, size)), ``range_first`` (base64 of the compact range at ``first``, which the
checkpoint at ``first`` signs) and ``before`` (no archived entry is as recent). ``audit.archive_read``
reads and verifies archives.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from audit import errors
from audit.archive_read import ARCHIVE_FORMAT, read_archive, verify_archives
from audit.checkpoint import peek_checkpoint
from audit.entry import format_time, parse
from audit.errors import EntryError, ExportError, StoreCorrupt
from audit.export import CHECKPOINTS, ENTRIES, MANIFEST, read_checkpoints
from audit.exportkeys import KEYS, write_keys
from audit.keys import PUB_FILE, VKEY_FILE, public_pem
from audit.log import AuditLog
from audit.merkle import leaf_hash
from audit.note import Verifier
from audit.retention import live_base
from audit.stores import Archived, Prunable, Query, TreeHead


@dataclass(frozen=True)
class ArchiveSummary:
    directory: Path
    first: int
    size: int  # one past the last archived index
    checkpoints: int
    dropped: bool


def archive(
    log: AuditLog,
    before: datetime,
    out_dir: str | os.PathLike[str],
    *,
    drop: bool = False,
    location: str | None = None,
) -> ArchiveSummary:
    """Archive the live entries before ``before`` (up to the last checkpoint that only covers
    such entries) to ``out_dir``; read the archive back and verify it; with ``drop``, then delete those
    entries from the store, recording ``location`` (default: the directory) as where they are kept."""
    store, until = log.store, format_time(before)  # entry times compare as these strings
    vkey = store.meta("vkey")
    if vkey is None:
        raise ExportError(
            "the log has no key recorded yet (nothing was ever signed)", code=errors.EXPORT_NO_KEY
        )
    verifier = Verifier.from_vkey(vkey)
    recorded = _recorded(store.archived(), Path(out_dir))
    if recorded is not None and drop and isinstance(store, Prunable):
        store.drop_archived(recorded)  # a drop cut short: the prefix is recorded, its last rows go now
        count = len(read_checkpoints(Path(out_dir)))
        return ArchiveSummary(Path(out_dir), recorded.first, recorded.size, count, True)
    base = live_base(store)
    checkpoints = store.checkpoints()
    size = _cut(log, base.size, until, [s for s, _ in checkpoints])
    head = store.head_at(size)
    note = store.checkpoint_at(size)
    if head is None or note is None or peek_checkpoint(note).root != head.root:
        raise StoreCorrupt(f"the stored head of size {size} is not the one its checkpoint signs")
    out = Path(out_dir)
    kept = [(s, n) for s, n in checkpoints if base.size <= s <= size]
    if not _holds(out, base.size, size):  # else written by an earlier run (without --drop): checked below
        _fresh(out)
        try:
            _write(out, log, base, head, kept, vkey, until)
        except OSError as exc:  # a full disk, a lost mount: nothing is dropped
            raise ExportError(
                f"cannot write the archive to {out}: {exc.strerror or exc}", code=errors.ARCHIVE_INVALID
            ) from exc
    report = verify_archives([out], verifier)  # what is on disk now, not what was meant to be written
    if not report.ok or report.signed_size != size or dict(read_checkpoints(out)).get(size) != note:
        raise ExportError(
            f"the archive in {out} does not verify as entries [{base.size}, {size}): {report.message}",
            code=errors.ARCHIVE_INVALID,
        )
    dropped = False
    if drop:
        if not isinstance(store, Prunable):
            raise ExportError("this store keeps nothing to drop", code=errors.USAGE)
        where = location if location is not None else str(out.resolve())
        store.drop_archived(Archived(base.size, size, head.range_blob, where, until))
        dropped = True
    return ArchiveSummary(out, base.size, size, len(kept), dropped)


def _write(
    out: Path,
    log: AuditLog,
    base: TreeHead,
    head: TreeHead,
    kept: list[tuple[int, str]],
    vkey: str,
    until: str,
) -> None:
    """The archive's files, each durable, then the directory; entries [base.size, head.size)."""
    written = _write_entries(out / ENTRIES, log, base, head.size, until)
    if written != head.range_blob:
        raise StoreCorrupt(
            f"the entries [{base.size}, {head.size}) do not hash to the stored head of that size"
        )
    verifier = Verifier.from_vkey(vkey)
    _write_text(out / CHECKPOINTS, "".join(json.dumps({"size": s, "note": n}) + "\n" for s, n in kept))
    _write_text(out / VKEY_FILE, vkey + "\n")
    _write_bytes(out / PUB_FILE, public_pem(verifier))
    write_keys(out / KEYS, log.store, verifier, head.size)  # the keys that signed it, if it ever rotated
    _fsync(out / KEYS)
    manifest = {
        "format": ARCHIVE_FORMAT,
        "origin": verifier.name,
        "first": base.size,
        "size": head.size,
        "checkpoints": len(kept),
        "range_first": base64.b64encode(base.range_blob).decode("ascii"),
        "before": until,
    }
    _write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    _fsync(out)


def _cut(log: AuditLog, first: int, before: str, signed: Sequence[int]) -> int:
    """The largest checkpoint size above ``first`` whose entries from ``first`` are all before ``before``.

    The prefix ends at the first entry of that time or later, so an entry is never archived while an
    earlier one (by index) is still too recent: replicas' clocks differ a little, the log's order rules.
    The store's time column finds it; the entries themselves are checked as they are written."""
    later = [s for s in signed if s > first]
    if not later:
        raise ExportError(f"no checkpoint signs entries after index {first}", code=errors.ARCHIVE_EMPTY)
    found = log.store.find(Query(since=before, after=first - 1, limit=1))
    newer = min(found[0].index, max(later)) if found else max(later)
    size = max((s for s in later if s <= newer), default=None)
    if size is None:
        raise ExportError(
            f"no entry from index {first} on is both before {before} and signed by a checkpoint that "
            "covers only such entries",
            code=errors.ARCHIVE_EMPTY,
        )
    return size


def _time(data: bytes) -> str:
    """The entry's time; one that cannot be read sorts after every time, so it is never archived."""
    try:
        value = parse(data).get("time")
    except (ValueError, EntryError):
        return "\uffff"
    return value if isinstance(value, str) else "\uffff"


def _recorded(archived: Sequence[Archived], out: Path) -> Archived | None:
    """The recorded archive whose range the archive in ``out`` holds (dropped already), if any."""
    if not (out / MANIFEST).is_file():
        return None
    try:
        found = read_archive(out)
    except ExportError:
        return None
    return next((r for r in archived if (r.first, r.size) == (found.first, found.size)), None)


def _holds(out: Path, first: int, size: int) -> bool:
    """Whether ``out`` holds an archive of exactly [first, size) (it is verified before any drop)."""
    if not (out / MANIFEST).is_file():
        return False
    try:
        found = read_archive(out)
    except ExportError:
        return False
    return (found.first, found.size) == (first, size)


def _fresh(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not an empty directory", code=errors.ARCHIVE_EXISTS)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create {out}: {exc.strerror or exc}", code=errors.ARCHIVE_INVALID) from exc
    return out


def _write_entries(path: Path, log: AuditLog, base: TreeHead, size: int, until: str) -> bytes:
    """Write entries [base.size, size), each older than ``until``; return the compact range they lead to."""
    compact = base.compact()
    with _open(path) as handle:
        for stored in log.iter_entries(size):
            if _time(stored.data) >= until:  # its time column was edited: the cut was chosen on it
                raise StoreCorrupt(
                    f"entry {stored.index} is not before {until}, though its query column says so: "
                    "run audit verify; nothing was dropped"
                )
            handle.write(stored.data + b"\n")
            compact.append(leaf_hash(stored.data))
        _flush(handle)
    return compact.to_bytes()


def _write_text(path: Path, text: str) -> None:
    _write_bytes(path, text.encode("utf-8"))


def _write_bytes(path: Path, data: bytes) -> None:
    with _open(path) as handle:
        handle.write(data)
        _flush(handle)


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("xb")  # the directory was empty: a file already there is someone else's
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}", code=errors.ARCHIVE_INVALID) from exc


def _flush(handle: BinaryIO) -> None:
    """Make the file durable: once the live log drops these entries, this may be their only copy."""
    handle.flush()
    os.fsync(handle.fileno())


def _fsync(out: Path) -> None:
    """fsync a directory (its entries), or a file another module wrote (keys.json)."""
    descriptor = os.open(out, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
