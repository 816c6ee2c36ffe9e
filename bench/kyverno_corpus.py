"""Run every Kyverno CLI test file of a kyverno/policies checkout with ``policyengine test`` and count,
per expected result: matches (our verdict is Kyverno's), mismatches (it is not) and refused (the policy
or test uses something the engine does not run), the refusals grouped by reason.

    python bench/kyverno_corpus.py PATH/TO/kyverno/policies… [--show-mismatches]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from datetime import UTC, datetime

from policyengine.testing.kyvernotest import REFUSED
from policyengine.testing.runner import run_tests

_POLICY = re.compile(r"^refused: [^:]+: ")
_OPTIONAL = re.compile(r"\.\?|\[\?|orValue|optional\.|hasValue\(")


def reason_class(reason: str) -> str:
    """A refusal's reason without the names and positions that make each one different."""
    text = _POLICY.sub("", reason) if not reason.startswith(REFUSED + "the test") else reason[len(REFUSED) :]
    if text.startswith("cannot load:"):
        problem = text.split(": ", 3)
        code = problem[2] if len(problem) > 2 else "load"
        detail = problem[3] if len(problem) > 3 else ""
        if code.startswith("cel_compile") and _OPTIONAL.search(detail):
            return "cannot load: CEL optional syntax (.? [?] orValue optional.*)"
        if code.startswith("cel_compile"):
            return "cannot load: " + re.sub(r" at line \d+.*", "", detail)[:70]
        return f"cannot load: {code}: " + re.sub(r"'[^']*'|\"[^\"]*\"", "…", detail)[:70]
    return re.sub(r"'[^']*'", "…", text)[:90]


def tally(paths: list[str]) -> tuple[int, int, Counter[str], list[str]]:
    report, _ = run_tests(paths, now=datetime.now(UTC))
    matches = mismatches = 0
    refused: Counter[str] = Counter()
    wrong: list[str] = []
    for r in report.results:
        if r.status == "pass":
            matches += 1
        elif r.reason.startswith(REFUSED):
            refused[reason_class(r.reason)] += 1
        elif r.status == "fail":
            mismatches += 1
            wrong.append(r.render())
    return matches, mismatches, refused, wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "paths", nargs="+", help="a checkout of github.com/kyverno/policies, or folders of it"
    )
    parser.add_argument("--show-mismatches", action="store_true", help="print each mismatching case")
    args = parser.parse_args(argv)
    matches, mismatches, refused, wrong = tally(args.paths)
    total = matches + mismatches + sum(refused.values())
    print(f"expected results: {total}")
    print(f"matches: {matches}  mismatches: {mismatches}  refused: {sum(refused.values())}")
    for reason, n in refused.most_common():
        print(f"  {n:6d}  {reason}")
    if args.show_mismatches:
        print(*wrong, sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
