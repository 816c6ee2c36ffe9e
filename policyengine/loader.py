"""The core's only file reader: paths -> located documents.

A ``Document`` is one YAML/JSON document with the file it came from, the line it starts at, and the line
and column of every field inside it, so that any problem or finding can point at the offending line.
Reading collects every problem it meets and raises one LoadError at the end; it never stops at the first.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from policyengine import errors
from policyengine.errors import LoadError, Problem

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"

try:  # libyaml is several times faster; fall back to the pure-Python parser where it is missing
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

PathKey = tuple[str | int, ...]


def render_path(path: Iterable[str | int]) -> str:
    """("spec", "validations", 2, "expression") -> "spec.validations[2].expression"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


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


def _record_positions(node: yaml.Node, path: PathKey, out: dict[PathKey, tuple[int, int]]) -> None:
    # Keys point at the key's own line (where a reader looks for "spec.replicas: 40").
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            sub = (*path, key)
            out[sub] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _record_positions(value_node, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = (*path, i)
            out[sub] = (item.start_mark.line + 1, item.start_mark.column + 1)
            _record_positions(item, sub, out)


def _duplicate_keys(file: str, root: yaml.Node) -> list[Problem]:
    """kubectl and kube-apiserver reject a mapping that repeats a key, while YAML readers silently keep
    the last one, so a policy would judge an object the cluster never accepts: each repeat is a problem.
    Run on the composed node, before construction flattens ``<<`` merges (an override is no repeat)."""
    problems: list[Problem] = []
    seen: set[int] = set()  # aliased nodes are checked once
    stack: list[tuple[yaml.Node, PathKey]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
                line = key_node.start_mark.line + 1
                if key in first and key != "<<":
                    message = f"mapping key {key!r} is already defined at line {first[key]}"
                    problems.append(
                        Problem(file, line, errors.YAML_SYNTAX, message, render_path((*path, key)))
                    )
                first.setdefault(key, line)
                stack.append((value_node, (*path, key)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in enumerate(node.value))
    return sorted(problems, key=lambda p: p.line)


def parse_text(text: str, file: str) -> list[Document]:
    """Every document in ``text`` (YAML, or JSON, which YAML reads too). Raises LoadError."""
    docs: list[Document] = []
    duplicated: list[Problem] = []
    loader = _Loader(text)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            duplicated.extend(_duplicate_keys(file, node))
            data = loader.construct_document(node)
            positions: dict[PathKey, tuple[int, int]] = {}
            _record_positions(node, (), positions)
            if data is not None:
                docs.append(Document(data, file, node.start_mark.line + 1, index, positions))
            index += 1
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = err.problem or err.context or "invalid YAML"
        raise LoadError([Problem(file, line, errors.YAML_SYNTAX, str(what))]) from None
    except yaml.YAMLError as err:
        raise LoadError([Problem(file, 1, errors.YAML_SYNTAX, str(err).splitlines()[0])]) from None
    except (ValueError, TypeError, RecursionError) as err:  # e.g. bad timestamps, unhashable keys
        raise LoadError([Problem(file, 1, errors.YAML_SYNTAX, str(err).splitlines()[0])]) from None
    finally:
        loader.dispose()
    if duplicated:
        raise LoadError(duplicated)
    if file.endswith(".json") and not docs:
        # A JSON file YAML could not see (rare escapes): read it as JSON, located at line 1.
        try:
            docs.append(Document(json.loads(text), file, 1))
        except json.JSONDecodeError as err:
            raise LoadError([Problem(file, err.lineno, errors.YAML_SYNTAX, err.msg)]) from None
    return docs


def expand_lists(docs: Iterable[Document]) -> Iterator[Document]:
    """Kubernetes ``List`` documents (kind: List, or any *List with items) become their items."""
    for doc in docs:
        data = doc.data
        if (
            isinstance(data, dict)
            and isinstance(data.get("items"), list)
            and str(data.get("kind", "")).endswith("List")
        ):
            for i, item in enumerate(data["items"]):
                base = ("items", i)
                positions = {
                    key[2:]: pos for key, pos in doc.positions.items() if key[:2] == base and len(key) > 2
                }
                yield Document(item, doc.file, doc.line_of(base), doc.index, positions)
        else:
            yield doc


def discover(paths: Sequence[str], *, stdin_ok: bool = False) -> tuple[list[str], list[Problem]]:
    """Expand directories into their YAML/JSON files (sorted, recursively). Missing paths are problems."""
    files: list[str] = []
    problems: list[Problem] = []
    seen: set[Path] = set()  # a file named twice (a pack given again with --policies) is read once

    def add(path: Path) -> None:
        real = path.resolve()
        if real not in seen:
            seen.add(real)
            files.append(str(path))

    for raw in paths:
        if raw == STDIN and stdin_ok:
            files.append(STDIN)
            continue
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in MANIFEST_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            for p in found:
                add(p)
        elif path.is_file():
            add(path)
        else:
            problems.append(Problem(raw, 1, errors.FILE_NOT_FOUND, "no such file or directory"))
    return files, problems


def read_text(file: str, stdin: IO[str] | None = None) -> str:
    if file == STDIN:
        return _read_stdin(stdin or sys.stdin)
    try:
        return _decode(file, Path(file).read_bytes())
    except OSError as err:
        raise LoadError([Problem(file, 1, errors.READ_ERROR, err.strerror or str(err))]) from None


def _read_stdin(stream: IO[str]) -> str:
    # Decode stdin's bytes ourselves: the text layer may be lenient (surrogateescape under a C locale)
    # or strict, and either way a bad byte must be an input error with its line, not a crash.
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        return _decode("<stdin>", buffer.read())
    text = stream.read()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _decode("<stdin>", text.encode("utf-8", "surrogateescape"))
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
    paths: Sequence[str], *, stdin: IO[str] | None = None, stdin_ok: bool = False
) -> tuple[list[Document], list[Problem]]:
    """The documents of every file that reads, and the problems of those that do not."""
    files, problems = discover(paths, stdin_ok=stdin_ok)
    docs: list[Document] = []
    for file in files:
        try:
            text = read_text(file, stdin)
            docs.extend(expand_lists(parse_text(text, "<stdin>" if file == STDIN else file)))
        except LoadError as err:
            problems.extend(err.problems)
    return docs, problems


def read_documents(
    paths: Sequence[str], *, stdin: IO[str] | None = None, stdin_ok: bool = False
) -> list[Document]:
    """All documents under ``paths``, Lists expanded. Collects every problem, then raises LoadError."""
    docs, problems = collect_documents(paths, stdin=stdin, stdin_ok=stdin_ok)
    if problems:
        raise LoadError(problems)
    return docs
