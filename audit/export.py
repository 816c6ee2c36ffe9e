"""Export a log to a directory an auditor can verify offline, and verify such a directory.

Layout: ``entries.jsonl`` (each line the exact canonical bytes that were hashed; line n is index n),
``checkpoints.jsonl`` (``{"size": n, "note": "..."}`` per line), ``audit.vkey`` and ``audit.pub``
(the log's first key), ``keys.json`` (every key with the sizes it signed, the co-signed hand-overs
between them and the revocations) and ``manifest.json``. Only the signed prefix (up to the latest
checkpoint) is exported.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from audit import errors
from audit.errors import EntriesArchived, ExportError
from audit.exportkeys import KEYS, read_keys, write_keys
from audit.keys import PUB_FILE, VKEY_FILE, load_verifier, public_pem
from audit.log import AuditLog
from audit.note import Verifier
from audit.verify import VerifyReport, verify_log

FORMAT = "policyengine.audit.export/v1"
ENTRIES = "entries.jsonl"
CHECKPOINTS = "checkpoints.jsonl"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ExportSummary:
    directory: Path
    entries: int
    checkpoints: int


def export(log: AuditLog, out_dir: str | os.PathLike[str]) -> ExportSummary:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vkey = log.store.meta("vkey")
    if vkey is None:
        raise ExportError(
            "the log has no key recorded yet (nothing was ever signed)", code=errors.EXPORT_NO_KEY
        )
    verifier = Verifier.from_vkey(vkey)
    archived = log.store.archived()
    if archived:  # an export is the whole signed log from index 0: the rest goes with ``audit archive``
        raise EntriesArchived(
            f"entries [0, {archived[-1].size}) are archived (the last of them to {archived[-1].location}) "
            "and dropped from the live log: archive the live entries with audit archive instead"
        )
    checkpoints = log.store.checkpoints()
    size = checkpoints[-1][0] if checkpoints else 0
    with (out / ENTRIES).open("wb") as handle:
        for stored in log.iter_entries(size):
            if stored.index >= size:
                break
            handle.write(stored.data + b"\n")
    with (out / CHECKPOINTS).open("w", encoding="utf-8") as handle:
        for filed, note in checkpoints:
            handle.write(json.dumps({"size": filed, "note": note}) + "\n")
    (out / VKEY_FILE).write_text(vkey + "\n")
    (out / PUB_FILE).write_bytes(public_pem(verifier))
    write_keys(out / KEYS, log.store, verifier, size)
    manifest = {"format": FORMAT, "origin": verifier.name, "entries": size, "checkpoints": len(checkpoints)}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return ExportSummary(out, size, len(checkpoints))


def read_entries(directory: Path) -> Iterator[tuple[int, bytes]]:
    path = directory / ENTRIES
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ExportError(f"cannot read {path}: {exc}") from exc
    with handle:
        for index, line in enumerate(handle):
            if not line.endswith(b"\n"):
                raise ExportError(f"{ENTRIES} does not end with a newline")
            yield index, line[:-1]


def read_checkpoints(directory: Path) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for number, line in enumerate(_read(directory / CHECKPOINTS).decode("utf-8").splitlines(), 1):
        try:
            item = json.loads(line)
            out.append((int(item["size"]), str(item["note"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise ExportError(f"{CHECKPOINTS}:{number}: {exc}") from exc
    return out


def verify_export(
    directory: str | os.PathLike[str],
    verifier: Verifier | None = None,
    *,
    trusted: Sequence[str] = (),
    pinned: Sequence[Verifier] = (),
) -> VerifyReport:
    """Verify an export with only its own files; ``verifier`` pins the key instead of the export's.

    An export holds only the signed prefix of its log, so an entry that no checkpoint covers was added
    after the export was written (or its checkpoints were removed): that is tampering, not a tail that
    is still waiting for its signature as in a live log.
    """
    path = Path(directory)
    if verifier is None:
        verifier = load_verifier(path / VKEY_FILE)
    chain = read_keys(path / KEYS, verifier, pinned)
    report = verify_log(read_entries(path), read_checkpoints(path), verifier, trusted=trusted, chain=chain)
    if report.ok and report.unsigned:
        return replace(
            report,
            ok=False,
            first_bad_index=report.signed_size,
            code=errors.UNSIGNED_ENTRIES,
            message=f"{report.unsigned} entries from index {report.signed_size} on are covered by no checkpoint",
        )
    return report


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ExportError(f"cannot read {path}: {exc}") from exc
