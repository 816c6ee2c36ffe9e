"""``check --baseline FILE`` and ``--write-baseline FILE``: reading a baseline (bounded like every input)
and writing one atomically. What a baseline means lives in ``policyengine.baseline``; admission never
reads one (``serve`` has no such flag, and the engine takes no baseline)."""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import TYPE_CHECKING

from policyengine.errors import LoadError, Problem, UsageError
from policyengine.loader import DEFAULT_LIMITS, InputLimits, read_text

if TYPE_CHECKING:  # imported when a baseline is read or written: the gate and the engine under it
    from policyengine import baseline
    from policyengine.gate import CheckReport


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--baseline",
        dest="baseline",
        metavar="FILE",
        help="fail only on findings this baseline does not record; the rest are reported as baselined",
    )
    parser.add_argument(
        "--write-baseline",
        dest="write_baseline",
        metavar="FILE",
        help="record today's findings in FILE (paths relative to its folder) and judge the run against it",
    )


def load(args: argparse.Namespace, limits: InputLimits, problems: list[Problem]) -> baseline.Baseline | None:
    """The --baseline to judge against, or None; its problems go to ``problems`` (exit 2 with the rest).
    With --write-baseline the fresh baseline is the one judged against, so the old one need not parse."""
    if not args.baseline or args.write_baseline:
        return None
    try:
        return read(args.baseline, limits)
    except LoadError as err:
        problems.extend(err.problems)
        return None


def judge(report: CheckReport, args: argparse.Namespace, known: baseline.Baseline | None) -> CheckReport:
    """``report`` marked against the baseline: the one --write-baseline just wrote, else --baseline's."""
    if args.write_baseline:
        known = write(report, args.write_baseline)
    if known is None:
        return report
    from policyengine import baseline

    return baseline.apply(report, known)


def read(path: str, limits: InputLimits = DEFAULT_LIMITS) -> baseline.Baseline:
    """The baseline at ``path``; LoadError (exit 2) naming the file, line and field when it is not one."""
    from policyengine import baseline

    return baseline.parse(read_text(path, limits=limits), path, limits)


def write(report: CheckReport, path: str) -> baseline.Baseline:
    """Record ``report``'s findings at ``path``, replacing it atomically: a reader never sees half a file."""
    from policyengine import baseline
    from policyengine.reports.sarif import TOOL_NAME, tool_version

    root = os.path.dirname(os.path.abspath(path))
    entries = baseline.entries_of(report, root)
    text = baseline.render(entries, f"{TOOL_NAME} {tool_version()}")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".baseline-", suffix=".tmp", dir=root)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as err:
        raise UsageError(f"cannot write --write-baseline {path}: {err.strerror or err}") from None
    return baseline.Baseline(entries, root)
