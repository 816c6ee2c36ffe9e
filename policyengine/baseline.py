"""Baselines for ``check``: the findings a repository already has, recorded so the gate fails only on new
ones. Pure: findings -> the canonical JSON text of a baseline, baseline text -> entries (every problem
named with its line and field), and a report marked against a baseline. The CLI reads and writes files.

A finding is one failure or evaluation error of one policy validation on one resource. Its entry holds
the file (a POSIX path relative to the folder holding the baseline file, so the baseline means the same
from any working directory), the policy, the resource identity and a fingerprint: sha256 over the
policy, the resource's apiVersion, kind, namespace and name, the field path, the outcome (and error
code) and the validation whose message template it is (the rendered message when there is none). No
line number goes in, so moving a resource inside its file keeps its findings baselined. A finding
matches an entry when file and fingerprint are both the same.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from policyengine import errors
from policyengine.errors import LoadError, Problem
from policyengine.gate import Checked, CheckReport, resource_of
from policyengine.loader import DEFAULT_LIMITS, Document, InputLimits, parse_text
from policyengine.model import Outcome, Result

VERSION = 1
STDIN_FILE = "<stdin>"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_IDENTITY = ("apiVersion", "kind", "namespace", "name")


@dataclass(frozen=True, order=True)
class Entry:
    """One recorded finding. Field order is the sort order of the file: by file, then policy."""

    file: str
    policy: str
    api_version: str
    kind: str
    namespace: str
    name: str
    field_path: str
    fingerprint: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.file, self.fingerprint)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "policy": self.policy,
            "resource": dict(
                zip(_IDENTITY, (self.api_version, self.kind, self.namespace, self.name), strict=True)
            ),
        }
        if self.field_path:
            out["fieldPath"] = self.field_path
        out["fingerprint"] = self.fingerprint
        return out


@dataclass(frozen=True)
class Baseline:
    """A baseline file's entries and the folder its paths are relative to."""

    entries: tuple[Entry, ...]
    root: str  # absolute

    @property
    def keys(self) -> frozenset[tuple[str, str]]:
        return frozenset(e.key for e in self.entries)


def is_finding(result: Result) -> bool:
    """What a baseline records and forgives: failures and evaluation errors (excepted ones need neither)."""
    return result.outcome in (Outcome.FAIL, Outcome.ERROR)


def file_key(file: str, root: str) -> str:
    """``file`` as recorded: POSIX, relative to ``root`` (``..`` when outside it); stdin stays ``<stdin>``."""
    if file == STDIN_FILE:
        return file
    return posixpath.normpath(os.path.relpath(os.path.abspath(file), root).replace(os.sep, "/"))


def fingerprint(result: Result, resource: Mapping[str, str]) -> str:
    template = f"validation:{result.validation}" if result.validation is not None else result.message
    parts = [
        result.policy,
        *(resource.get(k, "") for k in _IDENTITY),
        result.field_path or "",
        f"{result.outcome}:{result.code or ''}",
        template,
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def entry_of(checked: Checked, result: Result, root: str) -> Entry:
    resource = resource_of(checked.document.data, checked.decision.request)
    return Entry(
        file=file_key(checked.document.file, root),
        policy=result.policy,
        api_version=resource["apiVersion"],
        kind=resource["kind"],
        namespace=resource["namespace"],
        name=resource["name"],
        field_path=result.field_path or "",
        fingerprint=fingerprint(result, resource),
    )


def _findings(report: CheckReport) -> Iterator[tuple[Checked, Result]]:
    for checked in report.checked:
        for result in checked.decision.results:
            if is_finding(result):
                yield checked, result


def entries_of(report: CheckReport, root: str) -> tuple[Entry, ...]:
    """Every finding of ``report`` as a baseline entry, sorted, without repeats."""
    return tuple(sorted({entry_of(c, r, root) for c, r in _findings(report)}))


def render(entries: Iterable[Entry], generated_by: str) -> str:
    """The baseline file: sorted, two-space indented, one key order, a final newline (diff-friendly)."""
    body = {
        "version": VERSION,
        "generatedBy": generated_by,
        "findings": [e.as_dict() for e in sorted(set(entries))],
    }
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def parse(text: str, file: str, limits: InputLimits = DEFAULT_LIMITS) -> Baseline:
    """A baseline file's text -> its entries. Raises LoadError naming the file, line and field."""
    _strict_json(text, file)
    docs = parse_text(text, file, limits)  # bounded: nodes, repeated keys; and it locates every field
    if len(docs) != 1 or not isinstance(docs[0].data, dict):
        line = docs[1].line if len(docs) > 1 else 1
        message = "a baseline is one JSON object with version, generatedBy and findings"
        raise LoadError([Problem(file, line, errors.SCHEMA_INVALID, message)])
    doc = docs[0]
    version = doc.data.get("version")
    if version != VERSION or isinstance(version, bool):
        message = f"unknown baseline version {version!r}; this policyengine reads version {VERSION}"
        raise LoadError([doc.problem(errors.INVALID_VALUE, message, ("version",))])
    findings = doc.data.get("findings")
    if not isinstance(findings, list):
        raise LoadError([doc.problem(errors.SCHEMA_INVALID, "findings must be a list", ("findings",))])
    problems: list[Problem] = []
    entries = [_entry(doc, i, item, problems) for i, item in enumerate(findings)]
    if problems:
        raise LoadError(problems)
    root = os.path.dirname(os.path.abspath(file))
    return Baseline(tuple(e for e in entries if e is not None), root)


def _strict_json(text: str, file: str) -> None:
    """A baseline is written as JSON; YAML's leniencies (``{"file": }`` is a null) are refused here."""
    try:
        json.loads(text)
    except json.JSONDecodeError as err:
        raise LoadError([Problem(file, err.lineno, errors.YAML_SYNTAX, f"not JSON: {err.msg}")]) from None
    except (ValueError, RecursionError) as err:  # integers past Python's digit limit; deep nesting
        message = f"not JSON: {type(err).__name__}"
        raise LoadError([Problem(file, 1, errors.YAML_SYNTAX, message)]) from None


def _entry(doc: Document, index: int, item: Any, problems: list[Problem]) -> Entry | None:
    here: tuple[str | int, ...] = ("findings", index)
    if not isinstance(item, dict):
        problems.append(doc.problem(errors.SCHEMA_INVALID, "a finding must be an object", here))
        return None
    resource = item.get("resource")
    if not isinstance(resource, dict):
        problems.append(doc.problem(errors.SCHEMA_INVALID, "resource must be an object", (*here, "resource")))
        resource = dict.fromkeys(_IDENTITY, "")  # so the other fields are still checked
    values: dict[tuple[str | int, ...], Any] = {
        (*here, "file"): item.get("file"),
        (*here, "policy"): item.get("policy"),
        **{(*here, "resource", k): resource.get(k) for k in _IDENTITY},
        (*here, "fieldPath"): item.get("fieldPath", ""),
        (*here, "fingerprint"): item.get("fingerprint"),
    }
    bad = [path for path, value in values.items() if not isinstance(value, str)]
    for path in bad:
        problems.append(doc.problem(errors.SCHEMA_INVALID, f"{path[-1]} must be a string", path))
    fp = values[(*here, "fingerprint")]
    if not bad and not _HEX64.fullmatch(fp):
        message = "fingerprint must be 64 lowercase hex digits (sha256)"
        problems.append(doc.problem(errors.INVALID_VALUE, message, (*here, "fingerprint")))
        return None
    return None if bad else Entry(*values.values())


def apply(report: CheckReport, baseline: Baseline) -> CheckReport:
    """``report`` with the findings ``baseline`` records marked baselined, and the count of its entries
    that no longer occur in the files this run read (entries of files it did not read are left alone,
    so a run on a few changed files does not call the rest of the baseline fixed)."""
    keys = baseline.keys
    seen: set[tuple[str, str]] = set()
    checked: list[Checked] = []
    for c in report.checked:
        marked = []
        for r in c.decision.results:
            if not is_finding(r):
                continue
            key = entry_of(c, r, baseline.root).key
            if key in keys:
                seen.add(key)
                marked.append(r)
        checked.append(dataclasses.replace(c, baselined=tuple(marked)))
    read = {file_key(c.document.file, baseline.root) for c in report.checked}
    read |= {file_key(d.file, baseline.root) for d in report.skipped}
    fixed = sum(1 for e in baseline.entries if e.file in read and e.key not in seen)
    return dataclasses.replace(report, checked=tuple(checked), baseline_fixed=fixed)
