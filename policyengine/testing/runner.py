"""``policyengine test``: find test files, turn each into cases, run them and count what passed.

Three formats share this runner: Gatekeeper ``Suite`` files (``gatorsuite``), Kyverno CLI ``Test`` files
(``kyvernotest``) and the native ``PolicyTest`` (``policytest``); a case with no expectation fails. Policy sets are built lazily and shared
(``cases.Workspace``), so ``--run`` only loads what the selected cases need. The caller passes ``now``
and how to build an engine.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from policyengine.engine import Engine
from policyengine.errors import LoadError, Problem
from policyengine.loader import Document, collect_documents, discover, read_text
from policyengine.model import SourceRef
from policyengine.policyset import TEST_KINDS
from policyengine.testing import gatorsuite, kyvernotest, policytest
from policyengine.testing.cases import Case, CaseResult, EngineFactory, TestReport, Workspace, load_reason

# Test files are recognised by their text before they are parsed, so a sample object that is not valid
# YAML next to them is not a problem unless a test uses it.
_MARKERS = ("test.gatekeeper.sh/", "PolicyTest", "cli.kyverno.io/")


def find_test_files(paths: Sequence[str]) -> tuple[list[Document], list[Problem]]:
    """The Suite, PolicyTest and Kyverno Test documents under ``paths`` (directories recursively, and
    ``kyverno-test.yaml`` in hidden folders too, where Kyverno keeps them)."""
    files, problems = discover(paths)
    files = [*files, *(f for f in kyvernotest.hidden_test_files(paths) if f not in files)]
    found: list[Document] = []
    for file in files:
        try:
            text = read_text(file)
        except LoadError as err:
            problems.extend(err.problems)
            continue
        legacy = Path(file).name == kyvernotest.FILE_NAME
        if not legacy and not any(marker in text for marker in _MARKERS):
            continue
        docs, file_problems = collect_documents([file])
        problems.extend(file_problems)
        found.extend(
            d for d in docs if (d.api_version, d.kind) in TEST_KINDS or kyvernotest.is_kyverno_test(d)
        )
    return found, problems


def cases_of(doc: Document, workspace: Workspace) -> list[Case]:
    if doc.kind == "Suite":
        return gatorsuite.cases(doc, workspace)
    if kyvernotest.is_kyverno_test(doc):
        return kyvernotest.cases(doc, workspace)
    return policytest.cases(doc, workspace)


def run_case(case: Case) -> CaseResult:
    if case.skip:
        return CaseResult(case.name, case.ref, "skip")
    try:
        reason = case.check()
    except LoadError as err:
        reason = load_reason(err)
    return CaseResult(case.name, case.ref, "pass" if reason is None else "fail", reason or "")


def run_tests(
    paths: Sequence[str],
    *,
    now: datetime,
    select: re.Pattern[str] | None = None,
    engine_factory: EngineFactory = Engine,
) -> tuple[TestReport, list[Problem]]:
    """Run every case under ``paths`` that ``select`` finds (re.search on the case name). The problems
    returned are test files that could not be read; each also counts as a failure."""
    workspace = Workspace(now=now, engine_factory=engine_factory)
    docs, problems = find_test_files(paths)
    results = [
        CaseResult(p.file, SourceRef(p.file, p.line), "fail", f"cannot read: {p.code}: {p.message}")
        for p in problems
    ]
    for doc in docs:
        for case in cases_of(doc, workspace):
            if select is None or select.search(case.name):
                results.append(run_case(case))
    return TestReport(tuple(results)), problems
