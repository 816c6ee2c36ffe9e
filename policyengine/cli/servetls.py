"""``serve``'s serving certificate: ``--tls-reload-interval`` (how often ``--tls-cert``/``--tls-key`` are
polled for a renewed pair) and the check of the pair at start, the same check a reload makes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from policyengine.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tls-reload-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how often the certificate files are polled; a changed pair is served to new connections "
        "(default 10; 0: never reload)",
    )


def check(args: argparse.Namespace) -> None:
    """The pair exists and can be served (a bad one is a usage error naming the file, not a failed start)."""
    if args.tls_reload_interval < 0:
        raise UsageError(f"--tls-reload-interval must not be negative, not {args.tls_reload_interval:g}")
    if args.insecure_http:
        return
    if not args.tls_cert or not args.tls_key:
        raise UsageError("serve needs --tls-cert and --tls-key (or --insecure-http for local development)")
    for path in (args.tls_cert, args.tls_key):
        if not Path(path).is_file():
            raise UsageError(f"no such file: {path}")
    from webhook.connections import tls_context
    from webhook.servingcert import CertificateError, load_pair

    try:
        load_pair(args.tls_cert, args.tls_key, tls_context)
    except CertificateError as err:
        raise UsageError(str(err)) from None


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"tls_reload_interval": args.tls_reload_interval or None}
