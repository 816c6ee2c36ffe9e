"""The retention verbs of ``policyengine audit``: ``archive`` (write a signed prefix to a directory and,
with ``--drop``, remove it from the live log) and ``verify --archive`` (the whole history)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from audit import cli
from audit.archive import archive
from audit.archive_read import read_archive, verify_archives
from audit.checkpoint import peek_checkpoint
from audit.export import read_checkpoints
from audit.keys import load_verifier
from audit.log import AuditLog
from audit.note import Verifier


def add_archive_parser(verbs: Any) -> None:
    p = verbs.add_parser(
        "archive",
        help="write the signed entries before a time to a directory (--drop: then remove them from the log)",
    )
    p.add_argument("--audit-log", required=True, help="SQLite path or postgresql:// URL")
    p.add_argument("--before", required=True, help="ISO 8601 time: only entries before it are archived")
    p.add_argument("--out", type=Path, required=True, help="a new or empty directory for the archive")
    p.add_argument(
        "--drop",
        action="store_true",
        help="after the archive verifies, delete its entries from the live log (the tree state stays)",
    )
    p.add_argument("--location", help="where the archive is kept, recorded in the log (default: --out)")
    p.set_defaults(func=cli._guard(_archive))


def _archive(args: argparse.Namespace) -> int:
    before = cli._time(args.before)  # a usage error unless ISO 8601; then in UTC
    if before is None:  # argparse requires it; kept for the type checker
        return cli.USAGE
    with cli._open(args) as log:
        summary = archive(
            log, datetime.fromisoformat(before), args.out, drop=args.drop, location=args.location
        )
    count = summary.size - summary.first
    print(
        f"archived entries [{summary.first}, {summary.size}) ({count} entries, {summary.checkpoints} "
        f"checkpoints) to {summary.directory}; it verifies"
    )
    if summary.dropped:
        print(f"dropped them from the live log, which now starts at index {summary.size}")
    else:
        print("the live log still holds them: run again with --drop (same --out) to remove them")
    return cli.OK


def verify_with_archives(args: argparse.Namespace) -> int:
    """``audit verify --archive DIR ... [--audit-log LOG]``: the archives, then the live log."""
    trusted = tuple(cli._text(p) for p in args.checkpoint)
    if args.audit_log is None:
        report = verify_archives(args.archive, _pinned(args), trusted=trusted, pinned=_successors(args))
        first = min(read_archive(d).first for d in args.archive)
        if first:
            print(
                f"note: entries [0, {first}) are in an earlier archive and were not checked", file=sys.stderr
            )
        return cli._report(report)
    if args.public_key is None:
        print("error: --public-key is required with --audit-log", file=sys.stderr)
        return cli.USAGE
    with cli._open(args) as log:
        report = verify_archives(
            args.archive, _pinned(args, log), log=log, trusted=trusted, pinned=_successors(args)
        )
    if report.ok and report.unsigned > args.max_unsigned:  # as for the live log alone (cli._verify)
        print(
            f"TAMPERED at index {report.signed_size}: unsigned_tail: {report.unsigned} entries after the last "
            f"checkpoint (more than --max-unsigned {args.max_unsigned})"
        )
        return cli.FAILED
    return cli._report(report)


def _successors(args: argparse.Namespace) -> list[Verifier]:
    """``--successor-key``: later keys of the log the auditor got out of band."""
    return [load_verifier(path) for path in args.successor_key]


def live_note(log: AuditLog) -> None:
    """Say what a verification of the live log alone did not check."""
    archived = log.store.archived()
    if archived:
        places = ", ".join(r.location for r in archived)
        print(
            f"note: entries [0, {archived[-1].size}) are archived ({places}) and not checked here; "
            "add --archive DIR for each to verify the whole history",
            file=sys.stderr,
        )


def _pinned(args: argparse.Namespace, log: AuditLog | None = None) -> Verifier | None:
    if args.public_key is None:
        print("note: using the archive's own audit.vkey; pin the key with --public-key", file=sys.stderr)
        return None
    origin = log.origin if log is not None else _origin(args.archive[0])
    return cli._pinned(args.public_key, origin)


def _origin(directory: Path) -> str | None:
    """The origin a PEM key is checked under: a checkpoint's (its signature then checks it) or the manifest's."""
    checkpoints = read_checkpoints(directory)
    return peek_checkpoint(checkpoints[0][1]).origin if checkpoints else read_archive(directory).origin
