"""What ``check`` keeps of each decided manifest for its reports, so a large tree's memory follows its
findings rather than its manifests.

A report needs of a decided document its file and line, the lines and columns of the fields its findings
name, the apiVersion, kind, namespace and name it is reported under, and every result (JUnit lists the
passing ones too). It needs neither the parsed object, nor the line of every other field, nor a fresh
copy of a passing result that a thousand other resources share word for word.
"""

from __future__ import annotations

from dataclasses import replace

from policyengine.loader import Document, PathKey
from policyengine.model import Decision, Result


class Results:
    """One copy of each distinct result: equal results of different resources are the same object."""

    def __init__(self) -> None:
        self._seen: dict[Result, Result] = {}

    def __call__(self, results: tuple[Result, ...]) -> tuple[Result, ...]:
        seen = self._seen
        return tuple(seen.setdefault(r, r) for r in results)


def decision(made: Decision, shared: Results) -> Decision:
    """``made`` without the objects of its request, its results shared with equal ones."""
    request = replace(made.request, object=None, old_object=None)
    annotations = made.audit_annotations or _NO_ANNOTATIONS
    return replace(made, request=request, results=shared(made.results), audit_annotations=annotations)


_NO_ANNOTATIONS: dict[str, str] = {}  # shared by every kept decision without any (none changes it)


def document(doc: Document, fields: list[PathKey]) -> Document:
    """``doc`` with what reports read of it: the identity fields of its object, and the position of each
    of ``fields`` or, where it has none, of its nearest ancestor that has one (what a lookup finds)."""
    return located(doc, positions(doc, fields))


def positions(doc: Document, fields: list[PathKey]) -> dict[PathKey, tuple[int, int]]:
    """The positions ``document`` keeps: of each of ``fields``, or of its nearest located ancestor."""
    out = {}
    for path in fields:
        for end in range(len(path), 0, -1):
            pos = doc.positions.get(path[:end])
            if pos is not None:
                out[path[:end]] = pos
                break
    return out


def located(doc: Document, kept_positions: dict[PathKey, tuple[int, int]]) -> Document:
    """``doc``'s identity fields (those of a parked document are enough) with ``kept_positions``."""
    data = doc.data
    kept: dict[str, object] = {}
    if isinstance(data, dict):
        kept = {k: data[k] for k in ("apiVersion", "kind") if k in data}
        meta = data.get("metadata")
        if isinstance(meta, dict):
            kept["metadata"] = {k: meta[k] for k in ("name", "namespace") if k in meta}
        if kept == data:  # a parked document's identity fields are often just these: no copy of them
            kept = data
    return Document(kept, doc.file, doc.line, doc.index, kept_positions)
