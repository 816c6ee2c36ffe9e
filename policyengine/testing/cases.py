"""What both test formats are made of: a ``Case`` whose ``check`` returns None when it holds and the reason
when it does not, its ``CaseResult``, the run's ``TestReport``, and the ``Workspace`` that builds and
shares the policy sets the cases name. Files are read through the loader only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from policyengine import errors
from policyengine.engine import Engine
from policyengine.errors import LoadError, Problem
from policyengine.expressions import Compiler
from policyengine.loader import Document, collect_documents
from policyengine.model import SourceRef
from policyengine.policyset import PolicySet, build_policy_set, policy_files

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
EngineFactory = Callable[[PolicySet], Engine]


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
