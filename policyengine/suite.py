"""``policyengine test``: find test files, run their cases, count what passed.

Two formats share this runner: Gatekeeper ``Suite`` files (``gatorsuite``) and the native ``PolicyTest``
(``policytest``). Each becomes a list of ``Case`` values whose ``check`` returns None when the case holds
and the reason when it does not; a case with no expectation fails. Policy sets are built lazily and
shared (``Workspace``), so ``--run`` only loads what the selected cases need. Files are read through the
loader only; the caller passes ``now`` and how to build an engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from policyengine import errors
from policyengine.engine import Engine
from policyengine.errors import LoadError, Problem
from policyengine.loader import Document, collect_documents, discover, read_text
from policyengine.match import gvk_of, gvr_of
from policyengine.model import GroupVersionKind, GroupVersionResource, Request, SourceRef, UserInfo
from policyengine.policyset import TEST_KINDS, Compiler, PolicySet, build_policy_set, policy_files

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
EngineFactory = Callable[[PolicySet], Engine]
# Test files are recognised by their text before they are parsed, so a sample object that is not valid
# YAML next to them is not a problem unless a test uses it.
_MARKERS = ("test.gatekeeper.sh/", "PolicyTest")


@dataclass(frozen=True)
class Case:
    name: str  # <file's test name>/<test>/<case>: what --run matches
    ref: SourceRef
    check: Callable[[], str | None]
    skip: bool = False


@dataclass(frozen=True)
class CaseResult:
    name: str
    ref: SourceRef
    status: str  # pass | fail | skip
    reason: str = ""

    def render(self) -> str:
        return f"FAIL {self.name} ({self.ref.file}:{self.ref.line}): {self.reason}"


@dataclass(frozen=True)
class TestReport:
    results: tuple[CaseResult, ...]

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.count("fail") else EXIT_OK

    def summary(self) -> str:
        line = f"{self.count('pass')} passed, {self.count('fail')} failed"
        skipped = self.count("skip")
        return f"{line}, {skipped} skipped" if skipped else line

    def lines(self) -> list[str]:
        """One line per failing case, then the summary line."""
        return [*(r.render() for r in self.results if r.status == "fail"), self.summary()]


@dataclass
class Workspace:
    """Shared state of one run: compiled CEL, the policy sets built so far, the clock and engine maker."""

    now: datetime
    engine_factory: EngineFactory = Engine
    compiler: Compiler = field(default_factory=Compiler)
    _engines: dict[tuple[Any, ...], Engine] = field(default_factory=dict)

    def engine(self, policy_paths: Sequence[str], config_paths: Sequence[str] = ()) -> Engine:
        """The engine for these policy and config files, built once. Raises LoadError."""
        key = (tuple(policy_paths), tuple(config_paths))
        engine = self._engines.get(key)
        if engine is None:
            files, problems = policy_files(policy_paths)
            docs, read_problems = collect_documents(files)
            problems.extend(read_problems)
            config_docs, config_problems = collect_documents(list(config_paths))
            if problems or config_problems:
                raise LoadError([*problems, *config_problems])
            policy_set = build_policy_set(docs, config_docs=config_docs, compiler=self.compiler)
            engine = self._engines[key] = self.engine_factory(policy_set)
        return engine


def one_document(path: str) -> Document:
    """The single document of a test fixture file. Raises LoadError."""
    docs, problems = collect_documents([path])
    if problems:
        raise LoadError(problems)
    if len(docs) != 1:
        raise LoadError(
            [Problem(path, 1, errors.INVALID_VALUE, f"expected exactly one document, found {len(docs)}")]
        )
    return docs[0]


def documents(paths: Iterable[str]) -> list[Document]:
    """Every document of these files. Raises LoadError."""
    docs, problems = collect_documents(list(paths))
    if problems:
        raise LoadError(problems)
    return docs


def load_reason(err: LoadError) -> str:
    first = err.problems[0].render() if err.problems else "load error"
    more = len(err.problems) - 1
    return f"cannot load: {first}" + (f" (and {more} more problems)" if more > 0 else "")


def relative(base: str, path: Any) -> str:
    """``path`` as written in a test file, resolved against the test file's folder."""
    return str(Path(base).parent / str(path))


# -- requests --------------------------------------------------------------------------------------------


def _meta(obj: Any) -> Mapping[str, Any]:
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    return meta if isinstance(meta, Mapping) else {}


def is_admission_review(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and obj.get("kind") == "AdmissionReview"
        and str(obj.get("apiVersion", "")).startswith("admission.k8s.io/")
    )


def request_from(raw: Mapping[str, Any], *, uid: str, source: SourceRef | None = None) -> Request:
    """An AdmissionRequest-shaped map (``AdmissionReview.request``) as a Request. Missing kind and
    resource come from the object itself, and name and namespace from its metadata."""
    obj, old = raw.get("object"), raw.get("oldObject")
    subject = obj if isinstance(obj, Mapping) else old if isinstance(old, Mapping) else {}
    kind = raw.get("kind")
    gvk = (
        GroupVersionKind(str(kind.get("group", "")), str(kind.get("version", "")), str(kind.get("kind", "")))
        if isinstance(kind, Mapping)
        else gvk_of(subject)
    )
    res = raw.get("resource")
    gvr = (
        GroupVersionResource(
            str(res.get("group", "")), str(res.get("version", "")), str(res.get("resource", ""))
        )
        if isinstance(res, Mapping)
        else gvr_of(gvk)
    )
    user = raw.get("userInfo") if isinstance(raw.get("userInfo"), Mapping) else {}
    assert isinstance(user, Mapping)
    return Request(
        uid=str(raw.get("uid") or uid),
        kind=gvk,
        resource=gvr,
        operation=str(raw.get("operation") or ""),
        name=str(raw.get("name") or _meta(subject).get("name") or ""),
        namespace=str(raw.get("namespace") or _meta(subject).get("namespace") or ""),
        object=obj,
        old_object=old,
        sub_resource=str(raw.get("subResource") or ""),
        user_info=UserInfo(
            username=str(user.get("username", "")),
            uid=str(user.get("uid", "")),
            groups=tuple(str(g) for g in user.get("groups") or ()),
        ),
        dry_run=bool(raw.get("dryRun", False)),
        options=raw.get("options"),
        source=source,
    )


# -- discovery and running -------------------------------------------------------------------------------


def find_test_files(paths: Sequence[str]) -> tuple[list[Document], list[Problem]]:
    """The Suite and PolicyTest documents under ``paths`` (directories recursively)."""
    files, problems = discover(paths)
    found: list[Document] = []
    for file in files:
        try:
            text = read_text(file)
        except LoadError as err:
            problems.extend(err.problems)
            continue
        if not any(marker in text for marker in _MARKERS):
            continue
        docs, file_problems = collect_documents([file])
        problems.extend(file_problems)
        found.extend(d for d in docs if (d.api_version, d.kind) in TEST_KINDS)
    return found, problems


def cases_of(doc: Document, workspace: Workspace) -> list[Case]:
    from policyengine import gatorsuite, policytest

    if doc.kind == "Suite":
        return gatorsuite.cases(doc, workspace)
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
