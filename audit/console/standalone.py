"""``policyengine audit console``: the console and the auditors' API over a copy of a log or an export,
read-only, verified against the auditor's public key when it starts.

An export directory is loaded into a SQLite file in a temporary directory (removed at exit), so the
console reads it with the same queries as a live log.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audit import errors
from audit.api import DEFAULT_MAX_QUERIES, ConsoleOptions, create_app
from audit.console.logstatus import LogStatus
from audit.entry import index_fields
from audit.errors import AuditError, KeyFileError
from audit.export import read_checkpoints, read_entries
from audit.keys import load_verifier
from audit.log import AuditLog
from audit.merkle import leaf_hash
from audit.stores import Record
from audit.stores.sqlite import SQLiteStore

BATCH = 4096


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("console", help="serve the auditors' web console over a copy or an export of a log")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--audit-log", help="SQLite path (a copy) or postgresql:// URL")
    where.add_argument("--export", type=Path, help="a directory written by `policyengine audit export`")
    p.add_argument(
        "--public-key", type=Path, required=True, help="audit.vkey or audit.pub: verified at start"
    )
    p.add_argument("--tokens", type=Path, required=True, help="bearer tokens, one per line")
    p.add_argument("--policies", action="append", default=[], help="policy set (for exceptions' approvers)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8444)
    p.add_argument("--tls-cert", type=Path, help="serving certificate (PEM)")
    p.add_argument("--tls-key", type=Path, help="its private key (PEM)")
    p.add_argument(
        "--insecure-http", action="store_true", help="plain HTTP (only on a loopback address, for a laptop)"
    )
    p.add_argument("--max-queries", type=int, default=DEFAULT_MAX_QUERIES)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        _check(args)
        verifier = load_verifier(args.public_key)
        exceptions = _exceptions(args.policies)
        with tempfile.TemporaryDirectory(prefix="policyengine-console-") as scratch:
            log = _open(args, Path(scratch))
            try:
                status = LogStatus()
                status.verify_in_background(log, verifier)
                app = create_app(
                    log, args.tokens, max_queries=args.max_queries, console=ConsoleOptions(exceptions, status)
                )
                _serve(app, args)
            finally:
                log.close()
    except (KeyFileError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except AuditError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    return 0


class UsageError(Exception):
    pass


def _check(args: argparse.Namespace) -> None:
    if not args.tokens.is_file():
        raise UsageError(f"no such file: {args.tokens}")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if not args.tls_cert and not args.insecure_http:
        raise UsageError("give --tls-cert and --tls-key, or --insecure-http on a loopback address")
    if args.insecure_http and not _loopback(args.host):
        raise UsageError(f"--insecure-http serves only a loopback address, not {args.host}")
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port} is not a TCP port")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _exceptions(paths: list[str]) -> tuple[Any, ...]:
    if not paths:
        return ()
    from audit.console.policyset import LoadError, exceptions_from

    try:
        return exceptions_from(paths)
    except LoadError as exc:
        raise UsageError(f"the policy set does not load:\n{exc}") from exc


def _open(args: argparse.Namespace, scratch: Path) -> AuditLog:
    if args.export is not None:
        return load_export(args.export, scratch / "export.db")
    target = str(args.audit_log)
    if "://" not in target and not Path(target).is_file():
        raise KeyFileError(f"no audit log at {target}", code=errors.LOG_MISSING)
    return AuditLog.open(target)


def load_export(directory: Path, database: Path) -> AuditLog:
    """The export's entries and checkpoints in a new SQLite log (what was exported, byte for byte)."""
    store = SQLiteStore(str(database))
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        origin = manifest.get("origin") if isinstance(manifest, dict) else None
        if isinstance(origin, str):
            store.meta("origin", origin)
        for batch in _batches(read_entries(directory)):
            store.append(batch)
        for size, note in read_checkpoints(directory):
            store.add_checkpoint(size, note)
    except (OSError, ValueError) as exc:
        store.close()
        raise KeyFileError(f"cannot load the export {directory}: {exc}", code=errors.LOG_MISSING) from exc
    except BaseException:
        store.close()
        raise
    return AuditLog.open(store)


def _batches(entries: Iterator[tuple[int, bytes]]) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for _, data in entries:
        try:
            fields = index_fields(json.loads(data))
        except (ValueError, AttributeError):
            fields = index_fields({})  # kept as it is: verification reports the bad entry
        batch.append(Record(data, leaf_hash(data), fields))
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _serve(app: Any, args: argparse.Namespace) -> None:
    import uvicorn

    tls = {"ssl_certfile": str(args.tls_cert), "ssl_keyfile": str(args.tls_key)} if args.tls_cert else {}
    scheme = "https" if tls else "http"
    print(f"auditors' console on {scheme}://{args.host}:{args.port}/console/", file=sys.stderr, flush=True)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,  # paths carry filters only, but an access log is not the auditors' record
        proxy_headers=False,
        server_header=False,
        **tls,  # type: ignore[arg-type]
    )
    uvicorn.Server(config).run()
