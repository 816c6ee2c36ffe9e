"""The auditor's ``audit`` verbs: keygen, query, verify, checkpoint, prove, verify-proof, export, console
(and rotate-key, revoke-key from ``audit.keycli``; archive from ``audit.archive_cli``).

``add_commands(subparsers)`` adds them to an argparse sub-parser group; each sets ``func(args) -> int``.
Exit codes: 0 success (or intact), 1 verification failed (the first bad index is printed), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from audit import errors
from audit.checkpoint import peek_checkpoint
from audit.console import standalone as console
from audit.entry import SOURCES, VERDICTS, format_time
from audit.errors import AuditError, KeyFileError
from audit.export import MANIFEST, export, read_checkpoints, verify_export
from audit.keycli import add_key_verbs
from audit.keys import VKEY_FILE, keygen, load_signer, load_verifier
from audit.log import AuditLog
from audit.note import Verifier
from audit.proof import InclusionProof, verify_proof
from audit.querytable import render
from audit.stores import Query
from audit.verify import VerifyReport

OK, FAILED, USAGE = 0, 1, 2
DEFAULT_MAX_UNSIGNED = 256  # AuditLog.open's default max_batch
Handler = Callable[[argparse.Namespace], int]


def add_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``audit`` with its sub-verbs to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    audit: argparse.ArgumentParser = subparsers.add_parser(
        "audit", help="inspect, prove and verify the signed audit log"
    )
    verbs = audit.add_subparsers(dest="audit_verb", metavar="VERB", required=True)

    p = verbs.add_parser("keygen", help="create the log's Ed25519 checkpoint key")
    p.add_argument("--origin", required=True, help="log origin and key name, e.g. example.com/audit")
    p.add_argument("--out", required=True, type=Path, help="directory for audit.key, audit.pub, audit.vkey")
    p.add_argument("--force", action="store_true", help="replace existing key files")
    p.set_defaults(func=_guard(_keygen))

    _query_parser(verbs)
    _verify_parser(verbs)

    p = verbs.add_parser("checkpoint", help="print the latest signed checkpoint")
    _log_arg(p)
    p.add_argument("--key", type=Path, help="audit.key: sign committed but unsigned entries first")
    p.set_defaults(func=_guard(_checkpoint))

    p = verbs.add_parser("prove", help="print a C2SP tlog-proof of one entry")
    _log_arg(p)
    p.add_argument("--index", type=_int64, required=True)
    p.add_argument("--size", type=_int64, help="prove against the checkpoint of this size (default latest)")
    p.add_argument("--out", type=Path, help="write the proof here instead of stdout")
    p.set_defaults(func=_guard(_prove))

    p = verbs.add_parser("verify-proof", help="check a tlog-proof offline")
    p.add_argument("proof", type=Path)
    p.add_argument("--public-key", type=Path, required=True)
    p.add_argument("--entry", type=Path, help="the entry's canonical bytes (default: the proof's extra line)")
    p.set_defaults(func=_guard(_verify_proof))

    p = verbs.add_parser("export", help="write entries, checkpoints and the public key to a directory")
    _log_arg(p)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_guard(_export))
    console.add_parser(verbs)
    add_key_verbs(verbs, _guard)

    from audit.archive_cli import add_archive_parser  # it builds on this module's helpers

    add_archive_parser(verbs)
    return audit


def _query_parser(verbs: Any) -> None:
    p = verbs.add_parser("query", help="list entries matching filters")
    _log_arg(p)
    p.add_argument("--since", help="ISO 8601 time (inclusive)")
    p.add_argument("--until", help="ISO 8601 time (exclusive)")
    p.add_argument("--verdict", choices=VERDICTS)
    p.add_argument("--policy")
    p.add_argument("--namespace")
    p.add_argument("--user")
    p.add_argument("--kind")
    p.add_argument("--source", choices=SOURCES)
    p.add_argument("--after", type=_int64, default=-1, help="only entries with a higher index (pagination)")
    p.add_argument("--limit", type=_count, default=None)
    p.add_argument("--format", choices=("table", "json", "jsonl", "csv"), default="table")
    p.add_argument(
        "--all-results",
        action="store_true",
        help="show every result of each entry (passed and skipped too), not only the failing and excepted",
    )
    p.set_defaults(func=_guard(_query))


def _verify_parser(verbs: Any) -> None:
    p = verbs.add_parser("verify", help="re-hash every entry and check every checkpoint")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--audit-log", help="SQLite path or postgresql:// URL")
    where.add_argument("--export", type=Path, help="an exported directory")
    p.add_argument(
        "--archive",
        type=Path,
        action="append",
        default=[],
        help="an archive (audit archive): its entries come before the log's; repeat for each",
    )
    p.add_argument("--public-key", type=Path, help="audit.pub or audit.vkey (required with --audit-log)")
    p.add_argument("--checkpoint", type=Path, action="append", default=[], help="a checkpoint kept earlier")
    p.add_argument(
        "--successor-key",
        type=Path,
        action="append",
        default=[],
        help="a later key of the log obtained out of band (.vkey): trusted even where the hand-over to it "
        "is not (its old key revoked)",
    )
    p.add_argument(
        "--max-unsigned",
        type=_int64,
        default=DEFAULT_MAX_UNSIGNED,
        metavar="N",
        help="entries after the last checkpoint that still count as in flight (default "
        f"{DEFAULT_MAX_UNSIGNED}: one group-commit batch); more is reported as tampering. "
        "0 for a log that is closed",
    )
    p.add_argument(
        "--jobs",
        type=_jobs,
        default=1,
        metavar="N",
        help="check the entries of --audit-log in N processes (same verdict and first bad index as 1)",
    )
    p.set_defaults(func=_guard(_verify))


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"--jobs takes a number of processes from 1 to 256, not {text!r}")
    return value


def _int64(text: str) -> int:
    """An integer the stores can hold; anything else is a usage error from argparse (exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not -(2**63) <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{text} is out of range")
    return value


def _count(text: str) -> int:
    value = _int64(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _log_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--audit-log", required=True, help="SQLite path or postgresql:// URL")


def _guard(handler: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except KeyFileError as exc:
            print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
            return USAGE
        except AuditError as exc:
            print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
            return FAILED

    run.__name__ = handler.__name__
    return run


def _open(args: argparse.Namespace) -> AuditLog:
    target = str(args.audit_log)
    if "://" not in target and not Path(target).exists():
        raise KeyFileError(f"no audit log at {target}", code=errors.LOG_MISSING)
    return AuditLog.open(target)


def _keygen(args: argparse.Namespace) -> int:
    files = keygen(args.origin, args.out, overwrite=args.force)
    print(f"wrote {files.key} (private, 0600), {files.pub} and {files.vkey}")
    print(Path(files.vkey).read_text().strip())
    return OK


def _time(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return format_time(when if when.tzinfo else when.replace(tzinfo=UTC))
    except (ValueError, OverflowError) as exc:  # 9999-12-31T23:59-23:59 is a valid time outside UTC's range
        raise KeyFileError(f"{text!r} is not an ISO 8601 time", code=errors.USAGE) from exc


def _query(args: argparse.Namespace) -> int:
    query = Query(
        since=_time(args.since),
        until=_time(args.until),
        verdict=args.verdict,
        policy=args.policy,
        namespace=args.namespace,
        user=args.user,
        kind=args.kind,
        source=args.source,
        after=args.after,
        limit=args.limit,
    )
    with _open(args) as log:
        rows = log.query(query)
    sys.stdout.write(render(rows, args.format, all_results=args.all_results))
    return OK


def _read(path: Path) -> bytes:
    """A file the user named; one that cannot be read is a usage error (exit 2), not a traceback."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror or exc}", code=errors.USAGE) from exc


def _text(path: Path) -> str:
    # Undecodable bytes stay visible as U+FFFD, so the note or proof parser rejects them as malformed.
    return _read(path).decode("utf-8", "replace")


def _verify(args: argparse.Namespace) -> int:
    from audit.archive_cli import live_note, verify_with_archives

    if args.archive and args.export is None:
        return verify_with_archives(args)
    if args.audit_log is None and args.export is None:
        print("error: one of --audit-log, --export or --archive is required", file=sys.stderr)
        raise SystemExit(USAGE)  # as argparse does for a missing argument
    trusted = tuple(_text(p) for p in args.checkpoint)
    if args.export is not None:
        verifier = None
        if args.public_key is not None:
            checkpoints = read_checkpoints(args.export)
            # A PEM key has no name: take the origin from a checkpoint (the signature then checks it) or,
            # when there is none, from the manifest, so that an export stripped of its checkpoints is
            # reported as tampered rather than refused for want of a name.
            origin = (
                peek_checkpoint(checkpoints[0][1]).origin if checkpoints else _manifest_origin(args.export)
            )
            verifier = _pinned(args.public_key, origin)
        else:
            print(f"note: using the export's own {VKEY_FILE}; pin the key with --public-key", file=sys.stderr)
        pinned = [load_verifier(p) for p in args.successor_key]
        report = verify_export(args.export, verifier, trusted=trusted, pinned=pinned)
    else:
        if args.public_key is None:
            print("error: --public-key is required with --audit-log", file=sys.stderr)
            return USAGE
        with _open(args) as log:
            pinned = [load_verifier(p) for p in args.successor_key]
            first = _pinned(args.public_key, log.origin)
            report = log.verify(first, trusted=trusted, pinned=pinned, jobs=args.jobs)
            live_note(log)
    if report.ok and report.unsigned > args.max_unsigned:
        # A writer signs every batch as soon as it commits (and on recovery), so a long unsigned tail is
        # what deleting the latest checkpoints and rewriting the entries after them leaves behind.
        print(
            f"TAMPERED at index {report.signed_size}: unsigned_tail: {report.unsigned} entries after the last "
            f"checkpoint (more than --max-unsigned {args.max_unsigned})"
        )
        return FAILED
    return _report(report)


def _manifest_origin(directory: Path) -> str | None:
    try:
        origin = json.loads((directory / MANIFEST).read_text(encoding="utf-8")).get("origin")
    except (OSError, ValueError, AttributeError):
        return None
    return origin if isinstance(origin, str) else None


def _pinned(path: Path, origin: str | None) -> Verifier:
    """The auditor's key: a ``.vkey`` names its log itself, so the log's (editable) origin is not asked
    to agree with it up front; a PEM key has no name and takes the origin the log records."""
    try:
        return load_verifier(path)
    except KeyFileError as exc:
        if exc.code != errors.KEY_ORIGIN:
            raise
    return load_verifier(path, origin)


def _report(report: VerifyReport) -> int:
    if report.ok:
        tail = f", {report.unsigned} not yet signed" if report.unsigned else ""
        print(f"intact: {report.entries} entries, {report.checkpoints} checkpoints{tail}")
        return OK
    print(f"TAMPERED at index {report.first_bad_index}: {report.code}: {report.message}")
    return FAILED


def _checkpoint(args: argparse.Namespace) -> int:
    if args.key is not None:
        with AuditLog.open(str(args.audit_log), signer=load_signer(args.key)) as log:
            note = log.checkpoint()
    else:
        with _open(args) as log:
            note = log.checkpoint()
    if note is None:
        print("error: the log has no checkpoint yet", file=sys.stderr)
        return FAILED
    sys.stdout.write(note)
    return OK


def _prove(args: argparse.Namespace) -> int:
    with _open(args) as log:
        text = log.prove(args.index, args.size)
    if args.out is not None:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return OK


def _verify_proof(args: argparse.Namespace) -> int:
    text = _text(args.proof)
    # A malformed proof is a failed verification (exit 1), whatever kind of key was given.
    origin = peek_checkpoint(InclusionProof.parse(text).checkpoint_note).origin
    verifier = load_verifier(args.public_key, origin)
    entry = _read(args.entry) if args.entry is not None else None
    checkpoint, _ = verify_proof(text, verifier, entry)
    print(f"verified: entry is in {checkpoint.origin} at size {checkpoint.size}")
    return OK


def _export(args: argparse.Namespace) -> int:
    with _open(args) as log:
        summary = export(log, args.out)
    print(f"exported {summary.entries} entries and {summary.checkpoints} checkpoints to {summary.directory}")
    return OK
