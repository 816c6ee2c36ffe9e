"""The ``policyengine`` command: thin verbs that wire the core to the webhook and the audit log.

Each verb lives in its own module with ``add_parser(subparsers)``; the parser sets ``func(args) -> int``.
Exit codes: 0 success, 1 a verdict against (violations, failed tests, tampering), 2 usage, input or
policy errors -- and any unexpected error, reported on one line: a crash must never read as a verdict.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from policyengine.errors import LoadError, UsageError

EXIT_USAGE = 2


# Each verb of this package and the module that adds it, in the order ``--help`` lists them.
VERBS = {
    "check": "check", "scan": "scan", "init": "init", "test": "test", "serve": "serve", "certs": "certs",
    "webhook-config": "webhook_config", "generate": "generate",
}  # fmt: skip


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or for ``command`` (the verb on the command line) one with that verb alone: a
    verb imports only its own module (``check`` in CI never imports the audit log or the server)."""
    parser = argparse.ArgumentParser(
        prog="policyengine",
        description="Policy-as-code governance for AI workloads on Kubernetes.",
    )
    parser.add_argument("--version", action=_VersionAction, help="show program's version number and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for verb, module in VERBS.items():
        if command is None or command not in VERBS or command == verb:
            importlib.import_module(f"policyengine.cli.{module}").add_parser(sub)
    if command is None or command not in VERBS:
        from audit.cli import add_commands as add_audit_commands

        add_audit_commands(sub)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    # The top-level parser has no option that takes a value: the first word is the verb.
    return next((a for a in argv if not a.startswith("-")), None)


class _VersionAction(argparse.Action):
    """argparse's ``version`` action, the version looked up only when asked for: reading the installed
    distribution's metadata costs every other run of the command a fiftieth of a second."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        parser._print_message(f"policyengine {_version()}\n", sys.stdout)
        parser.exit()


def _version() -> str:
    """The installed distribution's version (what pip and bug reports name); the source tree's own
    ``__version__`` when the package runs uninstalled."""
    from importlib.metadata import PackageNotFoundError, version

    from policyengine import __version__

    try:
        return version("policyengine")
    except PackageNotFoundError:
        return __version__


def main(argv: Sequence[str] | None = None, *, freeze: bool = False) -> int:
    """Run one verb; ``freeze``: this process is the command alone (not a test or a host program), and
    what it imported lives as long as it does."""
    parser = build_parser(_command(sys.argv[1:] if argv is None else argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    global _freeze
    _freeze = freeze
    if freeze:
        # The modules just imported live as long as the process: set them apart from the cyclic garbage
        # collector, whose full passes would otherwise walk every one of their objects again and again.
        gc.freeze()
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
    except Exception as err:  # exit 1 means "denied": a crash must never read as a verdict
        print(f"policyengine: internal error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE


_freeze = False  # main(freeze=True): this process is the command alone


def freeze_imported() -> None:
    """In the command's own process, set apart from the cyclic garbage collector what was imported and
    built since ``main`` did so (``check`` imports the engine and compiles the policies after it has
    begun reading): left in the collected heap, they are walked again by every full collection. Then
    the youngest generation is collected less often: deciding leaves no reference cycles (each policy's
    activation ends its own), so a collection every 700 allocations would find nothing, and the objects
    it could hold back are bounded by the threshold."""
    if _freeze:
        gc.freeze()
        gc.set_threshold(_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


_YOUNG_THRESHOLD = 20_000  # allocations between young collections (CPython's default: 700)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def run() -> None:
    sys.exit(main(freeze=True))
