"""The ``audit rotate-key`` and ``audit revoke-key`` verbs: hand the log over to a new checkpoint key,
and record from which size a compromised key is no longer trusted."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audit import errors
from audit.errors import KeyFileError
from audit.keychain import revoke
from audit.keys import load_signer, load_verifier
from audit.log import AuditLog
from audit.note import Verifier

Handler = Callable[[argparse.Namespace], int]


def add_key_verbs(verbs: Any, guard: Callable[[Handler], Handler]) -> None:
    p = verbs.add_parser(
        "rotate-key",
        help="hand the log over to a new key (a checkpoint co-signed by the old and the new key)",
    )
    p.add_argument("--audit-log", required=True, help="SQLite path or postgresql:// URL")
    p.add_argument("--key", type=Path, required=True, help="the key the log signs with now (audit.key)")
    p.add_argument("--new-key", type=Path, required=True, help="the next key (audit.key from `audit keygen`)")
    p.set_defaults(func=guard(_rotate))

    p = verbs.add_parser("revoke-key", help="record from which size a key of the log is no longer trusted")
    p.add_argument("--audit-log", required=True, help="SQLite path or postgresql:// URL")
    p.add_argument("--public-key", type=Path, required=True, help="the revoked key (audit.vkey or audit.pub)")
    p.add_argument("--from", dest="from_size", type=int, required=True, metavar="SIZE")
    p.set_defaults(func=guard(_revoke))


def _log_path(text: str) -> str:
    if "://" not in text and not Path(text).exists():
        raise KeyFileError(f"no audit log at {text}", code=errors.LOG_MISSING)
    return text


def _rotate(args: argparse.Namespace) -> int:
    old = load_signer(args.key)
    new = load_signer(args.new_key, old.name)
    with AuditLog.open(_log_path(args.audit_log), signer=old) as log:
        note = log.rotate_key(new)
    print(f"handed over to {new.verifier().vkey()}; only it signs from now on. The hand-over:")
    sys.stdout.write(note)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    with AuditLog.open(_log_path(args.audit_log)) as log:
        genesis = log.store.meta("vkey")
        if genesis is None:
            raise KeyFileError("the log has no key recorded yet", code=errors.KEY_MISMATCH)
        first = Verifier.from_vkey(genesis)
        key = load_verifier(args.public_key, first.name)
        revoked = revoke(log.store, first, key, args.from_size)
    print(f"revoked {key.vkey()} from size {args.from_size}")
    if revoked.last is not None and args.from_size <= revoked.last:
        print(
            f"note: the hand-over away from it (size {revoked.last}) is no longer trusted; auditors verify "
            "with the next key pinned (audit verify --successor-key)",
            file=sys.stderr,
        )
    return 0
