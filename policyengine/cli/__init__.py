"""The ``policyengine`` command: thin verbs that wire the core to the webhook and the audit log.

Each verb lives in its own module with ``add_parser(subparsers)``; the parser sets ``func(args) -> int``.
Exit codes: 0 success, 1 a verdict against (violations, failed tests, tampering), 2 usage, input or
policy errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from policyengine.errors import LoadError, UsageError

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    from audit.cli import add_commands as add_audit_commands
    from policyengine.cli import certs, check, serve, test, webhook_config

    parser = argparse.ArgumentParser(
        prog="policyengine",
        description="Policy-as-code governance for AI workloads on Kubernetes.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    check.add_parser(sub)
    test.add_parser(sub)
    serve.add_parser(sub)
    certs.add_parser(sub)
    webhook_config.add_parser(sub)
    add_audit_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except LoadError as err:
        for problem in err.problems:
            print(problem.render(), file=sys.stderr)
        count = len(err.problems)
        print(
            f"policyengine: {count} problem{'s' if count != 1 else ''} found; nothing was evaluated",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except UsageError as err:
        print(f"policyengine: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def run() -> None:
    sys.exit(main())
