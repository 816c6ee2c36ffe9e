"""The core's only file reader: paths -> located documents.

A ``Document`` is one YAML/JSON document with the file it came from, the line it starts at, and the line
and column of every field inside it, so that any problem or finding can point at the offending line.
Reading collects every problem it meets and raises one LoadError at the end; it never stops at the first.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

import yaml

from policyengine import errors
from policyengine.discovery import MANIFEST_SUFFIXES, STDIN, discover
from policyengine.errors import LoadError, Problem
from policyengine.yamlbuild import build
from policyengine.yamlnodes import (
    Expansion,
    PathKey,
    check_expansion,
    duplicate_keys,
    record_positions,
    render_path,
)
from policyengine.yamlreader import BoundedLoader, LibyamlLoader, composes

__all__ = [
    "DEFAULT_LIMITS",
    "MANIFEST_SUFFIXES",
    "STDIN",
    "Document",
    "InputLimits",
    "PathKey",
    "collect_documents",
    "discover",
    "expand_lists",
    "format_size",
    "parse_located",
    "parse_prefix",
    "parse_text",
    "read_documents",
    "read_text",
    "render_path",
]

MiB = 1024 * 1024
BYTES_PER_NODE = 16


@dataclass(frozen=True)
class InputLimits:
    """How much one input (a file, or stdin) may hold. Every byte and document costs memory many times
    over once parsed, so a file past either bound is refused, named, before it is parsed."""

    max_bytes: int = 32 * MiB
    max_documents: int = 10_000

    @property
    def max_nodes(self) -> int:
        """YAML nodes one file may hold: one per 16 bytes of the size limit. Real manifests spend 10
        to 50 bytes a node, and each node costs some 700 bytes of memory while it is read."""
        return max(self.max_bytes // BYTES_PER_NODE, 1000)


DEFAULT_LIMITS = InputLimits()
_Read = TypeVar("_Read", bytes, str)


@dataclass(frozen=True)
class Document:
    data: Any
    file: str
    line: int  # 1-based line of the document's first content line
    index: int = 0  # position of the document in its file
    positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict, compare=False, repr=False)

    def line_of(self, path: Sequence[str | int]) -> int:
        """The line of the field at ``path``, or of its nearest ancestor that exists."""
        key = tuple(path)
        while key:
            pos = self.positions.get(key)
            if pos is not None:
                return pos[0]
            key = key[:-1]
        return self.line

    def column_of(self, path: Sequence[str | int]) -> int | None:
        pos = self.positions.get(tuple(path))
        return pos[1] if pos is not None else None

    def problem(self, code: str, message: str, path: Sequence[str | int] = ()) -> Problem:
        return Problem(self.file, self.line_of(path), code, message, render_path(path))

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", "")) if isinstance(self.data, dict) else ""

    @property
    def api_version(self) -> str:
        return str(self.data.get("apiVersion", "")) if isinstance(self.data, dict) else ""

    @property
    def name(self) -> str:
        meta = self.data.get("metadata") if isinstance(self.data, dict) else None
        return str(meta.get("name", "")) if isinstance(meta, dict) else ""


def parse_text(text: str, file: str, limits: InputLimits = DEFAULT_LIMITS) -> list[Document]:
    """Every document in ``text`` (YAML, or JSON, which YAML reads too). Raises LoadError."""
    docs, duplicated = parse_located(text, file, limits)
    if duplicated:
        raise LoadError(duplicated)
    return docs


def parse_located(
    text: str, file: str, limits: InputLimits = DEFAULT_LIMITS
) -> tuple[list[Document], list[Problem]]:
    """``parse_text``'s documents, with its repeated keys as problems instead of raised: a caller may
    first look at what the file holds. Raises LoadError on anything else."""
    docs, duplicated, broken = parse_prefix(text, file, limits)
    if broken is not None:
        raise LoadError([broken])
    return docs, duplicated


def parse_prefix(
    text: str, file: str, limits: InputLimits = DEFAULT_LIMITS
) -> tuple[list[Document], list[Problem], Problem | None]:
    """``parse_located``'s documents and repeated keys up to the first syntax error, and that error (None
    if the whole text parses): the documents before a broken one still get their problems listed in the
    same run. A bound passed (documents, alias expansion) still raises LoadError."""
    if composes(text, limits.max_nodes):
        found = _parse(LibyamlLoader, text, file, limits)
        if found[2] is None:
            return found
        # A broken text is read again by PyYAML's composer, whose messages say more (which alias is
        # undefined): a file's problems never depend on which composer read it.
    return _parse(lambda t: BoundedLoader(t, limits.max_nodes), text, file, limits)


def _parse(
    make: Callable[[str], BoundedLoader | LibyamlLoader], text: str, file: str, limits: InputLimits
) -> tuple[list[Document], list[Problem], Problem | None]:
    try:
        loader = make(text)
    except ValueError as err:  # lone surrogates: a str that is no text libyaml can read
        raise LoadError([Problem(file, 1, errors.READ_ERROR, _first_line(err))]) from None
    docs: list[Document] = []
    duplicated: list[Problem] = []
    try:
        _documents(loader, file, limits, docs, duplicated, aliases="*" in text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = err.problem or err.context or "invalid YAML"
        return docs, duplicated, Problem(file, line, errors.YAML_SYNTAX, _short(str(what)))
    except yaml.YAMLError as err:
        return docs, duplicated, Problem(file, 1, errors.YAML_SYNTAX, _first_line(err))
    except (ValueError, TypeError, ArithmeticError, RecursionError) as err:  # e.g. a text decoding error
        return docs, duplicated, Problem(file, 1, errors.YAML_SYNTAX, _first_line(err))
    finally:
        loader.dispose()
    if file.endswith(".json") and not docs and not duplicated:
        docs.append(_json_document(text, file))
    return docs, duplicated, None


def _documents(
    loader: BoundedLoader | LibyamlLoader,
    file: str,
    limits: InputLimits,
    docs: list[Document],
    duplicated: list[Problem],
    *,
    aliases: bool = True,
) -> None:
    """Append each document of the file to ``docs`` (and its repeated keys to ``duplicated``) as it is
    read, so that those before a syntax error are kept. A text without ``*`` (``aliases`` false) holds no
    alias: its tree is the one written, whose nesting both composers bound, so it is not walked again
    for the expansion bounds."""
    expansion = Expansion()  # counted over the whole file: many small bombs are one big one
    refuse_depth = loader.refuse_depth
    index = 0
    while loader.check_node():
        node = loader.get_node()
        if node is None:
            break
        if index >= limits.max_documents:
            refuse_depth(node)
            raise LoadError([_too_many_documents(file, node.start_mark.line + 1, limits)])
        built = None if aliases else build(loader, file, node, refuse_depth)
        if built is None:
            data, positions = _generic(loader, file, node, expansion, duplicated, aliases=aliases)
        else:
            data, positions, repeated = built
            duplicated.extend(repeated)
        if data is not None:
            docs.append(Document(data, file, node.start_mark.line + 1, index, positions))
        index += 1


def _generic(
    loader: BoundedLoader | LibyamlLoader,
    file: str,
    node: yaml.Node,
    expansion: Expansion,
    duplicated: list[Problem],
    *,
    aliases: bool,
) -> tuple[Any, dict[PathKey, tuple[int, int]]]:
    """A document through the separate walks and PyYAML's own constructor: any document, aliases and
    merges included."""
    refuse_depth = loader.refuse_depth
    refuse_depth(node)
    bounded = check_expansion(file, node, expansion) if aliases else None
    if bounded is not None:
        raise LoadError([bounded])
    duplicated.extend(duplicate_keys(file, node))
    data = _construct(loader, node)
    return data, record_positions(node)  # after construction: ``<<`` merges flattened


def _construct(loader: BoundedLoader | LibyamlLoader, node: yaml.Node) -> Any:
    try:
        return loader.construct_document(node)
    except yaml.YAMLError:
        raise
    except (
        Exception
    ) as err:  # PyYAML's constructors meet odd tagged scalars with IndexError, AttributeError...
        raise yaml.constructor.ConstructorError(None, None, _first_line(err), node.start_mark) from None


def _first_line(err: Exception) -> str:
    return _short((str(err).splitlines() or [type(err).__name__])[0])


def _short(message: str, limit: int = 200) -> str:
    # Parser messages may quote the offending scalar, which an attacker makes as long as the file.
    return message if len(message) <= limit else message[:limit] + "..."


def _too_many_documents(file: str, line: int, limits: InputLimits) -> Problem:
    message = f"more than {limits.max_documents} documents in one file (raise the limit with --max-documents)"
    return Problem(file, line, errors.READ_ERROR, message)


def _json_document(text: str, file: str) -> Document:
    # A JSON file YAML could not see (rare escapes): read it as JSON, located at line 1.
    try:
        return Document(json.loads(text), file, 1)
    except json.JSONDecodeError as err:
        raise LoadError([Problem(file, err.lineno, errors.YAML_SYNTAX, err.msg)]) from None
    except (ValueError, RecursionError) as err:  # integers past Python's digit limit; deep nesting
        raise LoadError([Problem(file, 1, errors.YAML_SYNTAX, _first_line(err))]) from None


def expand_lists(docs: Iterable[Document]) -> Iterator[Document]:
    """Kubernetes ``List`` documents (kind: List, or any *List with items) become their items."""
    for doc in docs:
        data = doc.data
        if (
            isinstance(data, dict)
            and isinstance(data.get("items"), list)
            and str(data.get("kind", "")).endswith("List")
        ):
            # One pass over the positions, not one per item: a List of many items stays linear.
            per_item: dict[Any, dict[PathKey, tuple[int, int]]] = {}
            for key, pos in doc.positions.items():
                if len(key) > 2 and key[0] == "items":
                    per_item.setdefault(key[1], {})[key[2:]] = pos
            for i, item in enumerate(data["items"]):
                yield Document(item, doc.file, doc.line_of(("items", i)), doc.index, per_item.get(i, {}))
        else:
            yield doc


def read_text(file: str, stdin: IO[str] | None = None, limits: InputLimits = DEFAULT_LIMITS) -> str:
    """The text of ``file`` (or of stdin for ``-``), refused past ``limits.max_bytes``."""
    if file == STDIN:
        return _read_stdin(stdin or sys.stdin, limits)
    try:
        with open(file, "rb") as handle:
            data = _read_bounded(handle, limits.max_bytes + 1)
    except OSError as err:
        raise LoadError([Problem(file, 1, errors.READ_ERROR, err.strerror or str(err))]) from None
    return _decode(file, _within(file, data, limits))


def _read_bounded(handle: IO[bytes], most: int) -> bytes:
    """At most ``most`` bytes of ``handle``. A first read of the size the file says it has (plus one, to
    see its end) spares every small file a buffer of the whole limit; a file that grew, or a pipe
    (size 0), is read on up to ``most``."""
    size = os.fstat(handle.fileno()).st_size
    data = handle.read(min(size + 1, most))
    if len(data) == most or len(data) <= size:
        return data  # at the bound, or the end came where the size said
    return data + handle.read(most - len(data))


def _within(file: str, data: _Read, limits: InputLimits) -> _Read:
    if len(data) > limits.max_bytes:
        message = (
            f"larger than the input size limit of {format_size(limits.max_bytes)} "
            "(raise it with --max-input-size)"
        )
        raise LoadError([Problem(file, 1, errors.READ_ERROR, message)])
    return data


def format_size(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def _read_stdin(stream: IO[str], limits: InputLimits) -> str:
    # Decode stdin's bytes ourselves: the text layer may be lenient (surrogateescape under a C locale)
    # or strict, and either way a bad byte must be an input error with its line, not a crash.
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        return _decode("<stdin>", _within("<stdin>", buffer.read(limits.max_bytes + 1), limits))
    text = stream.read(limits.max_bytes + 1)
    _within("<stdin>", text, limits)  # a text stream shows characters: each is at least one byte
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return _decode("<stdin>", text.encode("utf-8", "surrogateescape"))
        except UnicodeEncodeError:  # a surrogate the stream did not escape: still not UTF-8
            return _decode("<stdin>", text.encode("utf-8", "surrogatepass"))
    return text


def _decode(file: str, data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        message = f"not UTF-8 text: {err.reason} (byte {err.start})"
        raise LoadError([Problem(file, line, errors.READ_ERROR, message)]) from None
    # As Path.read_text would: universal newlines, so lines count the same on every platform.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def collect_documents(
    paths: Sequence[str],
    *,
    stdin: IO[str] | None = None,
    stdin_ok: bool = False,
    limits: InputLimits = DEFAULT_LIMITS,
) -> tuple[list[Document], list[Problem]]:
    """The documents of every file that reads, and the problems of those that do not."""
    files, problems = discover(paths, stdin_ok=stdin_ok)
    docs: list[Document] = []
    for file in files:
        try:
            text = read_text(file, stdin, limits)
            docs.extend(expand_lists(parse_text(text, "<stdin>" if file == STDIN else file, limits)))
        except LoadError as err:
            problems.extend(err.problems)
    return docs, problems


def read_documents(
    paths: Sequence[str],
    *,
    stdin: IO[str] | None = None,
    stdin_ok: bool = False,
    limits: InputLimits = DEFAULT_LIMITS,
) -> list[Document]:
    """All documents under ``paths``, Lists expanded. Collects every problem, then raises LoadError."""
    docs, problems = collect_documents(paths, stdin=stdin, stdin_ok=stdin_ok, limits=limits)
    if problems:
        raise LoadError(problems)
    return docs
