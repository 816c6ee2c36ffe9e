"""``--audit-log`` / ``--audit-key`` for the verbs that decide (check, serve): open the signed log and
record one entry per decision before the decision is reported. The audit package is imported only
when a log is named: a plain ``check`` does not pay for it."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from policyengine.errors import UsageError

if TYPE_CHECKING:
    from audit import AuditLog
    from policyengine.model import Decision


def add_arguments(p: Any) -> None:
    group = p.add_argument_group("audit log")
    group.add_argument(
        "--audit-log",
        metavar="PATH_OR_URL",
        help="record every decision in this signed log: a SQLite file or postgresql://…",
    )
    group.add_argument(
        "--audit-key", metavar="FILE", help="the log's Ed25519 key (audit.key from `audit keygen`)"
    )
    group.add_argument(
        "--audit-next-key",
        metavar="FILE",
        help="a key the log may be handed over to (`audit rotate-key`): the writer signs with it once the "
        "hand-over is recorded, without a restart",
    )
    group.add_argument("--audit-origin", metavar="ORIGIN", help="log origin (default: read beside the key)")


def open_log(args: argparse.Namespace) -> AuditLog | None:
    """The log the flags name, opened for appending (after recovery), or None without --audit-log."""
    if not args.audit_log:
        if args.audit_key:
            raise UsageError("--audit-key needs --audit-log")
        return None
    if not args.audit_key:
        raise UsageError("--audit-log needs --audit-key (create one with `policyengine audit keygen`)")
    from audit import AuditError, AuditLog, load_signer

    try:
        signer = load_signer(args.audit_key, args.audit_origin)
        successors = [load_signer(args.audit_next_key, signer.name)] if args.audit_next_key else []
        return AuditLog.open(args.audit_log, signer=signer, next_signers=successors)
    except AuditError as err:
        raise UsageError(f"cannot open the audit log {args.audit_log}: {err}") from err


def record(
    log: AuditLog, decisions: Iterable[Decision], *, source: str, commit: str | None = None
) -> list[int]:
    """Append one entry per decision; returns their indexes once all are durable."""
    from audit.decisions import entry_for

    now = datetime.now(UTC)
    futures = [log.submit(entry_for(d, source=source, time=now, commit=commit)) for d in decisions]
    return [f.result() for f in futures]


def record_ci_run(log: AuditLog, decisions: Iterable[Decision]) -> list[int]:
    from audit.git import git_commit

    return record(log, decisions, source="ci", commit=git_commit("."))
