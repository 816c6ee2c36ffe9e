"""Manifest documents held packed until they are evaluated, so that reading a large tree holds under a
kilobyte per document rather than its parsed object and the position of every field (several kilobytes).

A parked document keeps what the gate reads of every document before it evaluates any (apiVersion, kind,
name and namespace: the namespaces the set uses, the request it makes and how the set is shared out),
and its object and field positions packed (``marshal``, then ``zlib`` at its fastest level: some tens of
microseconds each way, against the near millisecond parsing the YAML again would cost). Documents the
gate reads whole before evaluating anything (Namespaces, and the objects workloads look up by name) are
never parked, nor one holding a value ``marshal`` does not carry (a YAML timestamp).
"""

from __future__ import annotations

import marshal
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from policyengine.loader import Document


@dataclass(frozen=True, eq=False)
class ParkedDocument(Document):
    packed: bytes = field(default=b"", repr=False)  # the object and its field positions


def park(docs: list[Document], can_wait: Callable[[Document], bool]) -> list[Document]:
    """``docs`` with those that ``can_wait`` parked."""
    return [_parked(doc) if can_wait(doc) else doc for doc in docs]


def _parked(doc: Document) -> Document:
    try:
        packed = zlib.compress(marshal.dumps((doc.data, doc.positions)), 1)
    except ValueError:  # a value marshal does not carry: the document stays as it is
        return doc
    data = doc.data
    identity: dict[str, object] = {k: data[k] for k in ("apiVersion", "kind")}
    meta = data.get("metadata")
    if isinstance(meta, dict):
        identity["metadata"] = {k: meta[k] for k in ("name", "generateName", "namespace") if k in meta}
    elif "metadata" in data:
        identity["metadata"] = meta
    return ParkedDocument(identity, doc.file, doc.line, doc.index, {}, packed)


class Unparker:
    """The full document of a parked one (the last one asked for is kept: it is asked for twice)."""

    def __init__(self) -> None:
        self._last: tuple[Document, Document] | None = None

    def __call__(self, doc: Document) -> Document:
        if not isinstance(doc, ParkedDocument):
            return doc
        if self._last is not None and self._last[0] is doc:
            return self._last[1]
        data, positions = marshal.loads(zlib.decompress(doc.packed))
        full = Document(data, doc.file, doc.line, doc.index, positions)
        self._last = (doc, full)
        return full
