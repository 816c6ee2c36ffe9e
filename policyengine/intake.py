"""What ``check`` reads: the manifests under the paths it is given, and the files it leaves out and why.

A file named on the command line (or stdin) must be a manifest: every document a mapping with
apiVersion and kind, else an input error. A file met while walking a directory is judged as a whole:

- if it parses and none of its documents (Lists expanded) is a mapping with apiVersion and kind, it is
  not a manifest (a CI config, a JSON schema, Helm values) and is skipped, with the reason;
- if it fails to parse as YAML (or JSON), it is skipped only when no line of it looks like a manifest's
  top level (``apiVersion:`` or ``kind:`` at column 0, or a ``"apiVersion"``/``"kind"`` key in a .json
  file) and no document before the error is an object; otherwise the syntax error stands, listed with
  the problems of the documents before it;
- if it holds at least one such object, or an object with metadata (a ``name``) and only one of apiVersion
  and kind (which kube-apiserver refuses), it is a manifest and held to the rules of a named file: a
  repeated key, a document that is not an object, metadata of the wrong type are input errors.

A walked file whose objects are all kustomizations (``kustomize.config.k8s.io`` Kustomization or
Component) is a build input, not a manifest, and is skipped with that reason.

A named directory holding a kustomization file is rendered (see ``policyengine.kustomize``), not walked;
with ``kustomize`` set, so is every kustomization a walk meets, except those another one consumes (a
base is checked through its overlays), and the files a rendered tree consumes (every file in its
kustomization folders, and the files they name) are not read again on their own.

Files that cannot be read, are over the size or document limits, or are not UTF-8 are input errors
wherever they are found. Every problem of every file is collected before reading stops, and listed by
file then line, so that one run shows them all. A named directory in which nothing is a manifest is an input error too: a
gate that checked nothing must not pass.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

from policyengine import errors, parking, readahead
from policyengine.discovery import STDIN, Found, Skipped, find
from policyengine.errors import LoadError, Problem
from policyengine.globs import Excludes
from policyengine.kustomize import Tree, kustomization_file, render, trace
from policyengine.loader import DEFAULT_LIMITS, Document, InputLimits, expand_lists, parse_prefix, read_text
from policyengine.objects import can_wait, is_object, object_meta_problems

_YAML_TOP_LEVEL = re.compile(r"""^["']?(?:apiVersion|kind)["']?[ \t]*:""", re.MULTILINE)
_JSON_KEY = re.compile(r'"(?:apiVersion|kind)"\s*:')
_NOT_AN_OBJECT = "a manifest must be a mapping with apiVersion and kind"
_KUSTOMIZE_GROUP = "kustomize.config.k8s.io/"
_KUSTOMIZATION_SKIP = (
    "a kustomization (build input, not a manifest; check its folder, or walk with --kustomize)"
)


@dataclass
class Manifests:
    """The manifest documents to check, and the files left out with the reason (charts included)."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    kustomizations: list[str] = field(default_factory=list)  # the kustomization folders rendered
    park: bool = False  # hold objects packed until evaluated (policyengine.parking)

    def add(self, docs: list[Document]) -> None:
        """A file's documents, parked when asked for."""
        self.documents.extend(parking.park(docs, can_wait) if self.park else docs)


def looks_like_manifest(text: str, file: str) -> bool:
    """Whether text that does not parse still shows a manifest's top-level key (the rule above)."""
    if _YAML_TOP_LEVEL.search(text) is not None:
        return True
    return file.lower().endswith(".json") and _JSON_KEY.search(text) is not None


def missing_half(data: object) -> str:
    """For a mapping with Kubernetes object metadata (a name) and only one of apiVersion and kind, the one
    it lacks: an object the API server would refuse, never a CI config or Helm's Chart.yaml (apiVersion
    and no metadata). "" for anything else."""
    if not isinstance(data, dict) or bool(data.get("apiVersion")) == bool(data.get("kind")):
        return ""
    meta = data.get("metadata")
    if not isinstance(meta, dict) or not (meta.get("name") or meta.get("generateName")):
        return ""
    return "kind" if data.get("apiVersion") else "apiVersion"


def _not_an_object(data: object) -> str:
    missing = missing_half(data)
    return f"{_NOT_AN_OBJECT}: this object has metadata but no {missing}" if missing else _NOT_AN_OBJECT


def _strict(docs: list[Document]) -> list[Problem]:
    """The problems of documents held to a manifest's rules."""
    out = [d.problem(errors.NOT_AN_OBJECT, _not_an_object(d.data)) for d in docs if not is_object(d.data)]
    out.extend(p for d in docs if is_object(d.data) for p in object_meta_problems(d))
    return out


def _read_walked(file: str, limits: InputLimits, into: Manifests) -> list[Problem]:
    """Read a file found by a walk: its documents when it is a manifest, else a skip with the reason."""
    text = read_text(file, None, limits)
    parsed, duplicated, broken = parse_prefix(text, file, limits)
    docs = list(expand_lists(parsed))
    manifest_like = any(is_object(d.data) or missing_half(d.data) for d in docs)
    if broken is not None and not manifest_like and not looks_like_manifest(text, file):
        reason = (
            f"not YAML or JSON (line {broken.line}: {broken.message}) and no apiVersion/kind at top level"
        )
        into.skipped.append(Skipped(file, reason))
        return []
    if broken is None and not manifest_like:
        reason = "empty" if not docs else "no document is a mapping with apiVersion and kind"
        into.skipped.append(Skipped(file, reason))
        return []
    objects = [d for d in docs if is_object(d.data)]
    if broken is None and objects and all(_is_kustomization(d) for d in objects):
        into.skipped.append(Skipped(file, _KUSTOMIZATION_SKIP))
        return []
    into.add(docs)
    return [*duplicated, *_strict(docs), *([broken] if broken else [])]


def _is_kustomization(doc: Document) -> bool:
    return doc.api_version.startswith(_KUSTOMIZE_GROUP) and doc.kind in ("Kustomization", "Component")


def _read_named(file: str, stdin: IO[str] | None, limits: InputLimits, into: Manifests) -> list[Problem]:
    text = read_text(file, stdin, limits)
    parsed, duplicated, broken = parse_prefix(text, "<stdin>" if file == STDIN else file, limits)
    docs = list(expand_lists(parsed))
    into.add(docs)
    return [*duplicated, *_strict(docs), *([broken] if broken else [])]


def _empty_roots(
    paths: Sequence[str], found: Found, manifests: Manifests, rendered: set[str], problems: Sequence[Problem]
) -> list[Problem]:
    """A problem for each named directory under which no manifest was found (or rendered), unless a
    file under it has a problem of its own already (it is a manifest file that could not be read: that
    problem says what is wrong, "no manifests here" would send the reader looking elsewhere)."""
    with_manifests = {found.roots.get(d.file) for d in manifests.documents} | rendered
    roots = dict.fromkeys(raw for raw in paths if raw != STDIN and os.path.isdir(raw))
    out: list[Problem] = []
    for root in roots:
        if root in with_manifests or any(_under(d.file, root) for d in manifests.documents):
            continue
        if any(_under(p.file, root) for p in problems):
            continue
        skipped = sum(1 for s in manifests.skipped if s.kind == "file" and _under(s.path, root))
        charts = sum(1 for s in manifests.skipped if s.kind == "chart" and _under(s.path, root))
        if skipped or charts:
            message = (
                f"no Kubernetes manifests in this directory: {skipped} file(s) skipped as not manifests, "
                f"{charts} Helm chart(s) not rendered"
            )
        else:
            message = "no .yaml, .yml or .json manifests in this directory"
        out.append(Problem(root, 1, errors.FILE_NOT_FOUND, message))
    return out


def _under(path: str, root: str) -> bool:
    return path.startswith(root.rstrip("/") + "/")


@dataclass
class ManifestReading:
    """Manifests being read (``start_reading``): ``result`` gives them, or raises their LoadError."""

    paths: Sequence[str]
    found: Found
    manifests: Manifests
    problems: list[Problem]
    rendered: list[str]
    files: readahead.Reading[_FileRead]

    def result(self) -> Manifests:
        manifests, problems = self.manifests, self.problems
        for docs, skipped, file_problems in self.files.result():
            manifests.documents.extend(docs)
            manifests.skipped.extend(skipped)
            problems.extend(file_problems)
        problems[:0] = _empty_roots(
            self.paths, self.found, manifests, {r for r in self.paths if _holds(r, self.rendered)}, problems
        )
        if problems:
            raise LoadError(in_order(problems))
        return manifests

    def close(self) -> None:
        """Stop reading (the caller gave up on the result)."""
        self.files.close()


def start_reading(
    paths: Sequence[str],
    stdin: IO[str] | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
    *,
    excludes: Excludes | None = None,
    kustomize: bool = False,
    park: bool = False,
    jobs: int = 1,
) -> ManifestReading:
    """The manifests under ``paths`` by the rules above, being read while the caller does something else
    until it asks for ``result`` (which collects every problem, then raises LoadError). ``park``: objects
    are held packed until evaluated (``policyengine.parking``); ``jobs`` > 1 reads a large tree in
    ``jobs - 1`` worker processes too, with the same result."""
    if list(paths).count(STDIN) > 1:
        raise LoadError([Problem(STDIN, 1, errors.READ_ERROR, "stdin (-) can be given only once")])
    named = [p for p in paths if p != STDIN and os.path.isdir(p) and kustomization_file(p) is not None]
    found = find([p for p in paths if p not in named], stdin_ok=True, excludes=excludes, charts=True)
    manifests = Manifests(skipped=list(found.skipped), park=park)
    problems = list(found.problems)
    walked = found.kustomizations if kustomize else []
    trees, consumed = _trace_all([*named, *walked], limits, problems)
    rendered = _render_all(trees, set(named), limits, manifests, problems)
    # Read through the kustomization that renders it, a consumed file is not read on its own.
    todo = [f for f in found.files if f == STDIN or not _consumed(f, consumed)]
    items = [_FileToRead(f, f in found.roots, limits, park) for f in todo]
    if STDIN in todo:
        files = readahead.Reading([_read_file(item, stdin) for item in items])
    else:
        files = readahead.start(_read_file, items, jobs)
    return ManifestReading(paths, found, manifests, problems, rendered, files)


@dataclass(frozen=True)
class _FileToRead:
    file: str
    walked: bool  # found by walking a directory (else named)
    limits: InputLimits
    park: bool


# What reading one file makes: its documents, the skip (when it is not a manifest), its problems.
_FileRead = tuple[list[Document], list[Skipped], list[Problem]]


def _read_file(item: _FileToRead, stdin: IO[str] | None = None) -> _FileRead:
    into = Manifests(park=item.park)
    try:
        if item.walked:
            problems = _read_walked(item.file, item.limits, into)
        else:
            problems = _read_named(item.file, stdin, item.limits, into)
    except LoadError as err:
        problems = list(err.problems)
    return into.documents, into.skipped, problems


def in_order(problems: Sequence[Problem]) -> list[Problem]:
    """Every problem once (one loop met from two kustomizations is one problem), by file then line; the
    order found is kept within a line."""
    return sorted(dict.fromkeys(problems), key=lambda p: (p.file, p.line))


def _trace_all(
    folders: list[str], limits: InputLimits, problems: list[Problem]
) -> tuple[list[Tree], tuple[set[str], set[str]]]:
    """The kustomization trees of ``folders``; and the real paths of the files and folders they consume
    (a folder that failed to trace included, so that its inputs are not read raw)."""
    trees: list[Tree] = []
    files: set[str] = set()
    folders_used: set[str] = set()
    for folder in dict.fromkeys(folders):
        try:
            tree = trace(folder, limits)
        except LoadError as err:
            problems.extend(err.problems)
            folders_used.add(os.path.realpath(folder))
            continue
        trees.append(tree)
        files |= tree.files
        folders_used |= tree.folders
    return trees, (files, folders_used)


def _render_all(
    trees: list[Tree], named: set[str], limits: InputLimits, into: Manifests, problems: list[Problem]
) -> list[str]:
    """Render each named tree, and each walked one no other tree consumes; the folders rendered."""
    out: list[str] = []
    for tree in trees:
        real = os.path.realpath(tree.directory)
        if tree.directory not in named and any(real in t.folders for t in trees if t is not tree):
            continue  # a base: checked through the overlays that use it
        try:
            docs = render(tree, limits)
        except LoadError as err:
            problems.extend(err.problems)
            continue
        if not docs:
            problems.append(
                Problem(tree.file, 1, errors.FILE_NOT_FOUND, "the kustomization renders no objects")
            )
        into.add(docs)
        problems.extend(_strict(docs))
        into.kustomizations.append(tree.directory)
        out.append(tree.directory)
    return out


def _consumed(file: str, consumed: tuple[set[str], set[str]]) -> bool:
    if not consumed[0] and not consumed[1]:
        return False  # no kustomization rendered: nothing to resolve the path against
    real = os.path.realpath(file)
    return real in consumed[0] or os.path.dirname(real) in consumed[1]


def _holds(root: str, rendered: list[str]) -> bool:
    return any(r == root or _under(r, root) for r in rendered)
