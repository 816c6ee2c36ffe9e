"""``policyengine certs``: a CA and a serving certificate for the webhook (ECDSA P-256)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from policyengine.errors import UsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "certs",
        help="create a CA and a serving certificate for the webhook",
        description="Write ca.crt, tls.crt and tls.key to --out. Every --dns name is a subjectAltName "
        "(IP addresses become IP entries). Give the Service's names, e.g. policyengine.policyengine.svc.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write into (created if needed)")
    p.add_argument(
        "--dns", action="append", required=True, metavar="NAME", help="a DNS name or IP (repeatable)"
    )
    p.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from webhook import tls

    if args.days < 1:
        raise UsageError("--days must be at least 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory")
    for path in tls.write(tls.issue(list(args.dns), days=args.days), out):
        print(path)
    return 0
