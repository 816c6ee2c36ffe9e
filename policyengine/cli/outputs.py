"""Where ``check`` sends its reports: ``--format F [--output FILE]`` pairs, rendered and written.

Pairing rule: each ``--output`` applies to the ``--format`` just before it; a ``--format`` with no
``--output`` after it goes to stdout, and at most one may. With no ``--format`` at all, the report is text
(to ``--output`` if given). An ``--output`` before every ``--format`` is a usage error, so the rule is never
guessed.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from policyengine.errors import Problem, UsageError

if TYPE_CHECKING:  # the gate (and the engine under it) is imported by the verbs that run it
    from policyengine.gate import CheckReport

FORMATS = ("text", "json", "sarif", "junit", "github")
DEST = "report_args"
STDOUT = "-"
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"

PAIRING_HELP = (
    "Reports: each --output applies to the --format just before it; a --format without --output goes to "
    "stdout (at most one may). Example: --format sarif --output r.sarif --format github writes SARIF to "
    "r.sarif and GitHub annotations to stdout. With --format github and $GITHUB_STEP_SUMMARY set, a "
    "Markdown summary is appended to that file."
)


class _Ordered(argparse.Action):
    """Records --format and --output in command-line order, so --output can bind to its --format."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        recorded = list(getattr(namespace, DEST, None) or [])
        recorded.append((self.dest, str(values)))
        setattr(namespace, DEST, recorded)


def add_arguments(parser: argparse.ArgumentParser, formats: Sequence[str] = FORMATS) -> None:
    parser.add_argument(
        "--format",
        action=_Ordered,
        choices=formats,
        metavar="{" + ",".join(formats) + "}",
        help="report format (repeatable; default text)",
    )
    parser.add_argument(
        "--output",
        action=_Ordered,
        metavar="FILE",
        help="write the report of the --format just before it to FILE instead of stdout (- for stdout)",
    )
    parser.set_defaults(**{DEST: []})


@dataclass(frozen=True)
class ReportSpec:
    format: str
    output: str | None = None  # None: stdout


def plan(recorded: Sequence[tuple[str, str]]) -> list[ReportSpec]:
    """(option, value) pairs in command-line order -> the reports to write. Raises UsageError."""
    specs: list[ReportSpec] = []
    bound: set[int] = set()  # indexes of the specs that already took an --output
    if not any(opt == "format" for opt, _ in recorded):
        recorded = [("format", "text"), *recorded]  # no --format: the text report, wherever --output says
    for opt, value in recorded:
        if opt == "format":
            specs.append(ReportSpec(value))
        elif not specs:
            raise UsageError(f"--output {value} comes before any --format; put it after its --format")
        elif len(specs) - 1 in bound:
            raise UsageError(f"--format {specs[-1].format} has two --output files; give each its --format")
        else:
            bound.add(len(specs) - 1)
            specs[-1] = ReportSpec(specs[-1].format, None if value == STDOUT else value)
    to_stdout = [s.format for s in specs if s.output is None]
    if len(to_stdout) > 1:
        raise UsageError(
            f"{len(to_stdout)} reports ({', '.join(to_stdout)}) would go to stdout; "
            "give all but one an --output"
        )
    files = [s.output for s in specs if s.output is not None]
    dupes = sorted({f for f in files if files.count(f) > 1})
    if dupes:
        raise UsageError(f"--output {dupes[0]} is given for more than one report")
    return specs


def render(report: CheckReport, fmt: str, *, strict: bool, color: bool, base: str) -> str:
    buffer = io.StringIO()
    write(report, fmt, buffer, strict=strict, color=color, base=base)
    return buffer.getvalue()


def write(report: CheckReport, fmt: str, out: IO[str], *, strict: bool, color: bool, base: str) -> None:
    """The report in ``fmt``, written to ``out`` as it is made: a large tree's report is never held whole."""
    if fmt == "json":
        from policyengine.reports import json as json_report

        json_report.write(report, out, strict=strict)
    elif fmt == "sarif":
        from policyengine.reports import sarif

        sarif.write(report, out, base=base, strict=strict)
    elif fmt == "junit":
        from policyengine.reports import junit

        junit.write(report, out, base=base)
    elif fmt == "github":
        from policyengine.reports import github

        github.write(report, out, base=base)
    else:
        from policyengine.reports import text

        text.write(report, out, color=color, strict=strict)


def write_problem_reports(
    problems: Sequence[Problem],
    specs: Sequence[ReportSpec],
    *,
    stdout: IO[str] | None = None,
    base: str | None = None,
) -> None:
    """For a run that stops at exit 2: each machine-readable report lists the problems (text is stderr's)."""
    from policyengine.reports import problems as problem_reports

    out = stdout or sys.stdout
    root = base or os.getcwd()
    for spec in specs:
        text = problem_reports.render(problems, spec.format, base=root)
        if text is None:
            continue
        if spec.output is None:
            out.write(text)
            continue
        try:
            with open(spec.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError:
            pass  # the problems still reach stderr; a report we cannot write adds nothing to them


def write_reports(
    report: CheckReport,
    specs: Sequence[ReportSpec],
    *,
    strict: bool,
    color: str,
    stdout: IO[str] | None = None,
    env: Mapping[str, str] | None = None,
    base: str | None = None,
) -> None:
    """Render every report and write it; then append the GitHub job summary when asked for and possible."""
    out = stdout or sys.stdout
    environ = os.environ if env is None else env
    root = base or os.getcwd()
    for spec in specs:
        to_tty = spec.output is None and out.isatty()
        use_color = color == "always" or (color == "auto" and to_tty and "NO_COLOR" not in environ)
        if spec.output is None:
            write(report, spec.format, out, strict=strict, color=use_color, base=root)
            continue
        try:
            with open(spec.output, "w", encoding="utf-8") as fh:
                write(report, spec.format, fh, strict=strict, color=use_color, base=root)
        except OSError as err:
            raise UsageError(f"cannot write --output {spec.output}: {err.strerror or err}") from None
    summary_path = environ.get(STEP_SUMMARY_ENV)
    if summary_path and any(s.format == "github" for s in specs):
        from policyengine.reports import github

        try:
            with open(summary_path, "a", encoding="utf-8") as fh:
                fh.write(github.summary(report, base=root, strict=strict))
        except OSError as err:
            raise UsageError(f"cannot append to ${STEP_SUMMARY_ENV} ({summary_path}): {err}") from None
