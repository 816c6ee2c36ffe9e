"""What the CI renderers (SARIF, JUnit, GitHub) say about each result: where it is and what it concerns.

A ``Finding`` is one result located in its file (relative to the base folder the caller passes, so reports
name the same path on every machine) at the line and column of the field it concerns.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath
from urllib.parse import quote_from_bytes

from policyengine.gate import Checked, CheckReport
from policyengine.model import Action, Outcome, Result

STDIN_FILE = "<stdin>"


def relative_path(file: str, base: str) -> str | None:
    """``file`` as a POSIX path relative to ``base`` (an absolute folder), or None when it lies outside it.

    Pure: relative files are taken as relative to ``base``; nothing is read from the file system.
    """
    if file == STDIN_FILE:
        return None
    root = PurePosixPath(PurePath(base).as_posix()).as_posix()
    full = absolute_path(file, base)
    if _PLAIN and not full.startswith("//") and not root.startswith("//"):
        # The strings pathlib would compare part by part; without a path object per finding (pathlib
        # interns every part: a report of ten thousand files would grow the interned table by as many).
        if full == root:
            return "."
        prefix = root if root.endswith("/") else root + "/"
        return full[len(prefix) :] if full.startswith(prefix) else None
    try:
        return PurePosixPath(full).relative_to(PurePosixPath(root)).as_posix()
    except ValueError:
        return None


def absolute_path(file: str, base: str) -> str:
    """``file`` as an absolute, normalised POSIX path (relative files are taken as relative to ``base``)."""
    root = PurePosixPath(PurePath(base).as_posix())
    if _PLAIN:  # a POSIX path is already in POSIX form: join and normalise, as pathlib then normpath do
        return posixpath.normpath(posixpath.join(root.as_posix(), file))
    return posixpath.normpath((root / PurePath(file).as_posix()).as_posix())


_PLAIN = PurePath is PurePosixPath or os.name == "posix"


def file_uri(file: str, base: str) -> str:
    """The ``file://`` URI of ``file`` (relative files are taken as relative to ``base``), as
    ``PurePosixPath(absolute_path(file, base)).as_uri()`` writes it, without a path object per file."""
    full = absolute_path(file, base)
    if _PLAIN and not full.startswith("//"):
        # What pathlib makes of a normalised absolute POSIX path: its bytes, percent-quoted.
        return "file://" + quote_from_bytes(os.fsencode(full))
    return PurePosixPath(full).as_uri()


def resource_id(checked: Checked) -> str:
    """``Kind/namespace/name``, or ``Kind/name`` for cluster-scoped resources."""
    req = checked.decision.request
    parts = [req.kind.kind, req.namespace, req.name] if req.namespace else [req.kind.kind, req.name]
    return "/".join(parts)


@dataclass(frozen=True)
class Finding:
    """One result on one manifest document, located at the field it concerns."""

    checked: Checked
    result: Result
    file: str  # as the document was read (what a person typed)
    path: str | None  # relative to the base folder, POSIX; None outside it (or stdin)
    line: int
    column: int | None

    @property
    def display_path(self) -> str:
        return self.path if self.path is not None else self.file

    @property
    def resource(self) -> str:
        return resource_id(self.checked)

    @property
    def is_error(self) -> bool:
        return self.result.outcome is Outcome.ERROR

    @property
    def is_baselined(self) -> bool:
        return self.checked.is_baselined(self.result)

    @property
    def is_excepted(self) -> bool:
        return self.result.outcome is Outcome.EXCEPTED

    @property
    def text(self) -> str:
        """The message, saying so when the rule could not be evaluated."""
        r = self.result
        if r.outcome is Outcome.ERROR:
            code = f" ({r.code})" if r.code else ""
            return f"evaluation error{code}: {r.message}"
        return r.message


def locate(checked: Checked, result: Result, base: str) -> Finding:
    file = checked.document.file
    return Finding(
        checked=checked,
        result=result,
        file=file,
        path=relative_path(file, base),
        line=checked.line_of(result),
        column=checked.column_of(result),
    )


def findings(report: CheckReport, base: str) -> Iterator[Finding]:
    """Every result that reaches a user (failures, errors, excepted failures), in manifest order."""
    for checked in report.checked:
        for result in checked.decision.violations:
            yield locate(checked, result, base)


def severity_word(action: Action) -> str:
    """deny -> error, warn -> warning, audit -> note: the SARIF level, also GitHub's command names."""
    return {Action.DENY: "error", Action.WARN: "warning", Action.AUDIT: "note"}[action]
