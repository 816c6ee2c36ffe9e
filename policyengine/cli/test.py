"""``policyengine test``: run Gatekeeper Suite, Kyverno Test and native PolicyTest files (docs/testing.md)."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime
from typing import Any

from policyengine.testing.cases import EXIT_ERROR
from policyengine.testing.runner import run_tests


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "test",
        help="run policy tests: Gatekeeper Suite, Kyverno Test and PolicyTest files",
        description="Find Gatekeeper Suite (test.gatekeeper.sh/v1alpha1), Kyverno Test (kyverno-test.yaml, "
        "also in .kyverno-test/) and PolicyTest (policyengine.io/v1) files under each PATH and run their "
        "cases. Prints one line per failing case and a summary. "
        "Exit 0: nothing failed; 1: a case failed; 2: no test files found or bad usage.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="test files or directories (recursive)")
    p.add_argument("--run", metavar="REGEX", help="only cases whose name (<file test>/<test>/<case>) matches")
    p.add_argument("-v", "--verbose", action="store_true", help="also print a line for each passing case")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        select = re.compile(args.run) if args.run else None
    except re.error as err:
        print(f"policyengine test: --run: bad regular expression: {err}", file=sys.stderr)
        return EXIT_ERROR
    report, problems = run_tests(args.paths, now=datetime.now(UTC), select=select)
    if not report.results and not problems:
        where = " ".join(args.paths)
        if select is None:
            print(f"policyengine test: no test cases found under {where}", file=sys.stderr)
            return EXIT_ERROR
        print(f"policyengine test: no test cases matching --run under {where}", file=sys.stderr)
    if args.verbose:
        for r in report.results:
            if r.status != "fail":
                print(f"{r.status.upper()} {r.name}")
    for line in report.lines():
        print(line)
    return report.exit_code
