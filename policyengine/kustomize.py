"""Kustomize folders for ``check``: the kustomization tree read with the bounded YAML reader (never outside
the repository root, loops and runaway trees refused), its rendering by ``kubectl kustomize`` (bounded in
time and in size), and the way back from each rendered object to the file and line of its source document.

A rendered object is traced by kind, namespace and name through the kustomization's ``resources``
(and the older ``bases``, and ``components``), files and folders, recursively, each level's ``namePrefix``,
``nameSuffix`` and ``namespace`` applied on the way up. An object the tree does not declare (a generated
ConfigMap, a remote resource, a name a patch changed) is pointed at the kustomization file, line 1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from policyengine import errors
from policyengine.discovery import KUSTOMIZATION_FILES
from policyengine.errors import LoadError, Problem
from policyengine.loader import DEFAULT_LIMITS, Document, InputLimits, expand_lists, parse_located, read_text

MAX_DEPTH = 16  # kustomizations nested through resources; real overlays go three or four deep
MAX_FILES = 1000  # files (kustomizations and resources) read for one tree, repeats counted: a diamond
# ladder of kustomizations, or one listing the same file many times, stays bounded
RENDER_TIMEOUT = 120.0  # seconds for one ``kubectl kustomize``
STDERR_TAIL = 2000  # characters of kubectl's stderr shown in an error

# Fields whose entries are kustomizations or resource files; the objects they declare are traced.
_RESOURCE_FIELDS = ("resources", "bases", "components")
# Fields naming further input files, consumed by the render and so not manifests of their own.
_FILE_FIELDS = ("patchesStrategicMerge", "crds", "configurations", "transformers", "generators", "validators")
_PATH_LIST_FIELDS = ("patches", "patchesJson6902")
_GENERATORS = ("configMapGenerator", "secretGenerator")

Key = tuple[str, str, str]  # kind, namespace, name


def kustomization_file(directory: str) -> str | None:
    """The kustomization file of ``directory``, or None when it is not a kustomization."""
    for name in KUSTOMIZATION_FILES:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def repository_root(directory: str) -> str:
    """The folder a kustomization may reach into: the nearest folder at or above it holding ``.git``;
    without one, the working directory when it holds the kustomization, else the kustomization itself."""
    real = os.path.realpath(directory)
    current = real
    while True:
        if os.path.exists(os.path.join(current, ".git")):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    cwd = os.path.realpath(os.getcwd())
    return cwd if _within(real, cwd) else real


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@dataclass
class Tree:
    """What tracing a kustomization found: its file, the source document of each object it declares,
    and the files and folders its render consumes (real paths)."""

    directory: str
    file: str
    origins: dict[Key, Document] = field(default_factory=dict)
    by_kind_name: dict[tuple[str, str], list[Document]] = field(default_factory=dict)
    folders: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)

    def source_of(self, doc: Document) -> Document | None:
        """The source document of a rendered object: kind, namespace and name; else kind and name when
        only one source has them (a namespace set by a transform the trace does not model)."""
        meta = doc.data.get("metadata") if isinstance(doc.data, dict) else None
        namespace = meta.get("namespace") if isinstance(meta, dict) else None
        found = self.origins.get((doc.kind, str(namespace or ""), doc.name))
        if found is not None:
            return found
        candidates = self.by_kind_name.get((doc.kind, doc.name), [])
        return candidates[0] if len(candidates) == 1 else None


@dataclass
class _Origin:
    key: Key
    doc: Document


@dataclass
class _Trace:
    root: str
    limits: InputLimits
    tree: Tree
    reads: int = 0

    def count(self, kustomization: str) -> None:
        self.reads += 1
        if self.reads > MAX_FILES:
            message = f"more than {MAX_FILES} files read for one kustomization tree"
            raise LoadError([Problem(kustomization, 1, errors.INVALID_VALUE, message)])


def trace(directory: str, limits: InputLimits = DEFAULT_LIMITS) -> Tree:
    """Read the kustomization tree under ``directory``. Raises LoadError naming the kustomization file
    and line of a path outside the repository root, a loop, a tree too deep or too large, or a
    kustomization that is not a mapping."""
    file = kustomization_file(directory)
    if file is None:
        raise LoadError(
            [Problem(directory, 1, errors.FILE_NOT_FOUND, "no kustomization file in this folder")]
        )
    state = _Trace(repository_root(directory), limits, Tree(directory, file))
    for origin in _level(directory, (), state):
        state.tree.origins.setdefault(origin.key, origin.doc)
        state.tree.by_kind_name.setdefault((origin.key[0], origin.key[2]), []).append(origin.doc)
    return state.tree


def _level(directory: str, chain: tuple[str, ...], state: _Trace) -> list[_Origin]:
    """The objects a kustomization declares, with its own transforms applied."""
    file = kustomization_file(directory)
    if file is None:  # a folder named as a resource without a kustomization: kubectl says so
        return []
    state.count(file)
    state.tree.folders.add(os.path.realpath(directory))
    state.tree.files.add(os.path.realpath(file))
    doc = _read(file, state.limits)
    data: dict[str, Any] = doc.data
    origins: list[_Origin] = []
    for key, index, entry in _entries(doc, _RESOURCE_FIELDS):
        target = _resolve(directory, entry, doc, (key, index), state.root)
        if target is None:
            continue
        if os.path.isdir(target):
            origins.extend(_nested(target, chain, doc, (key, index), state))
        elif os.path.isfile(target):
            state.count(file)
            state.tree.files.add(os.path.realpath(target))
            origins.extend(_declared(target, state.limits))
    for key, index, entry in _input_files(doc):
        target = _resolve(directory, entry, doc, (key, index), state.root)
        if target is not None:
            state.tree.files.add(os.path.realpath(target))
    return [_transformed(origin, data) for origin in origins]


def _nested(
    target: str, chain: tuple[str, ...], doc: Document, where: tuple[str, int], state: _Trace
) -> list[_Origin]:
    real = os.path.realpath(target)
    here = os.path.realpath(os.path.dirname(doc.file))
    if real in (*chain, here):
        names = " -> ".join([*chain, here, real])
        message = f"kustomization loop: {names}"
        raise LoadError([doc.problem(errors.INVALID_VALUE, message, where)])
    if len(chain) + 1 >= MAX_DEPTH:
        message = f"kustomizations nested more than {MAX_DEPTH} deep"
        raise LoadError([doc.problem(errors.INVALID_VALUE, message, where)])
    return _level(target, (*chain, here), state)


def _read(file: str, limits: InputLimits) -> Document:
    parsed, duplicated = parse_located(read_text(file, None, limits), file, limits)
    if duplicated:
        raise LoadError(duplicated)
    if len(parsed) != 1 or not isinstance(parsed[0].data, dict):
        raise LoadError([Problem(file, 1, errors.INVALID_VALUE, "a kustomization must be one YAML mapping")])
    return parsed[0]


def _entries(doc: Document, fields: tuple[str, ...]) -> Iterator[tuple[str, int, str]]:
    """(field, index, path) of each path listed under ``fields``; a field that is not a list of strings
    is an error naming its line."""
    for key in fields:
        value = doc.data.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise LoadError([doc.problem(errors.INVALID_VALUE, f"{key} must be a list of paths", (key,))])
        for index, entry in enumerate(value):
            yield key, index, entry


def _input_files(doc: Document) -> Iterator[tuple[str, int, str]]:
    """The files a kustomization's patches and generators read (inline ones have no path)."""
    for key in _FILE_FIELDS:
        value = doc.data.get(key)
        if isinstance(value, list):
            yield from ((key, i, v) for i, v in enumerate(value) if isinstance(v, str) and "\n" not in v)
    for key in _PATH_LIST_FIELDS:
        value = doc.data.get(key)
        if isinstance(value, list):
            yield from ((key, i, v["path"]) for i, v in enumerate(value) if _has_path(v))
    for key in _GENERATORS:
        value = doc.data.get(key)
        for i, generator in enumerate(value if isinstance(value, list) else []):
            if isinstance(generator, dict):
                for name in ("files", "envs"):
                    paths = generator.get(name)
                    for entry in paths if isinstance(paths, list) else []:
                        if isinstance(entry, str):
                            yield key, i, entry.split("=", 1)[-1]


def _has_path(value: object) -> bool:
    return isinstance(value, dict) and isinstance(value.get("path"), str)


def _resolve(directory: str, entry: str, doc: Document, where: tuple[str, int], root: str) -> str | None:
    """The local path ``entry`` names, None for a remote one; an error when it leaves the root."""
    if "://" in entry or entry.startswith(("github.com/", "gitlab.com/", "bitbucket.org/", "git@")):
        return None  # remote: kubectl fetches it (or fails offline); its objects are not traced
    target = os.path.normpath(os.path.join(directory, entry))
    real = os.path.realpath(target)
    if not _within(real, root):
        message = (
            f"{entry!r} resolves to {real}, outside the repository root {root} (the nearest folder above "
            "holding .git, else the working directory); kustomizations are followed only inside it"
        )
        raise LoadError([doc.problem(errors.INVALID_VALUE, message, where)])
    return target


def _declared(file: str, limits: InputLimits) -> list[_Origin]:
    parsed, _ = parse_located(read_text(file, None, limits), file, limits)
    return [_Origin(_key(d), d) for d in expand_lists(parsed) if isinstance(d.data, dict)]


def _key(doc: Document) -> Key:
    meta = doc.data.get("metadata")
    namespace = meta.get("namespace") if isinstance(meta, dict) else None
    return doc.kind, str(namespace or ""), doc.name


def _transformed(origin: _Origin, kustomization: dict[str, Any]) -> _Origin:
    kind, namespace, name = origin.key
    prefix, suffix = kustomization.get("namePrefix"), kustomization.get("nameSuffix")
    new_namespace = kustomization.get("namespace")
    name = f"{prefix if isinstance(prefix, str) else ''}{name}{suffix if isinstance(suffix, str) else ''}"
    if isinstance(new_namespace, str) and new_namespace and kind not in _CLUSTER_KINDS:
        namespace = new_namespace  # kustomize sets (and overrides) the namespace of namespaced objects
    return _Origin((kind, namespace, name), origin.doc)


# Kinds kustomize's namespace transform leaves without a namespace (the common cluster-scoped ones).
_CLUSTER_KINDS = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
)


def render(
    tree: Tree, limits: InputLimits = DEFAULT_LIMITS, timeout: float = RENDER_TIMEOUT
) -> list[Document]:
    """Render the kustomization with ``kubectl kustomize`` and return its objects, each placed at its
    source document (or at the kustomization file, line 1). Raises LoadError naming the folder when
    kubectl is missing, fails, runs over ``timeout`` or writes more than ``--max-input-size``."""
    text = _run_kubectl(tree, limits, timeout)
    try:
        parsed, duplicated = parse_located(text, tree.file, limits)
    except LoadError as err:
        problems = [Problem(tree.file, 1, p.code, f"rendered output: {p.message}") for p in err.problems]
        raise LoadError(problems) from None
    out: list[Document] = []
    for index, doc in enumerate(expand_lists(parsed)):
        source = tree.source_of(doc)
        if source is None:
            out.append(Document(doc.data, tree.file, 1, index))
        else:
            # The source's line, not its field positions: a patch may have moved what a field path meets.
            out.append(Document(doc.data, source.file, source.line, source.index))
    del duplicated  # kustomize writes each key once; a repeated key in a source fails its render
    return out


def _run_kubectl(tree: Tree, limits: InputLimits, timeout: float) -> str:
    exe = shutil.which("kubectl")
    if exe is None:
        message = (
            f"{tree.directory} is a kustomization and kubectl is not on PATH: install kubectl to render it, "
            f"or render it yourself: kustomize build {tree.directory} | policyengine check -"
        )
        raise LoadError([Problem(tree.file, 1, errors.READ_ERROR, message)])
    # An absolute path: a folder named like an option ("-x") stays a path.
    argv = [exe, "kustomize", os.path.abspath(tree.directory)]
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            proc.kill()

        timer = threading.Timer(timeout, expire)
        timer.start()
        try:
            assert proc.stdout is not None
            # One byte past the limit says it is over; the rest is never read (the child is killed).
            data = proc.stdout.read(limits.max_bytes + 1)
            if len(data) > limits.max_bytes:
                proc.kill()
        finally:
            timer.cancel()
            if proc.stdout is not None:
                proc.stdout.close()
            code = proc.wait()
        tail = _tail(stderr)
    return _rendered(tree, data, code, tail, expired.is_set(), limits, timeout)


def _tail(stream: IO[bytes]) -> str:
    """The end of kubectl's stderr on one line, control characters left out: the message of a problem."""
    size = stream.seek(0, os.SEEK_END)
    stream.seek(max(0, size - STDERR_TAIL))
    text = stream.read().decode("utf-8", "replace")
    lines = ("".join(c for c in line if c.isprintable()).strip() for line in text.splitlines())
    return "; ".join(line for line in lines if line)[-STDERR_TAIL:].lstrip("; ")


def _rendered(
    tree: Tree, data: bytes, code: int, stderr: str, expired: bool, limits: InputLimits, timeout: float
) -> str:
    def fail(message: str) -> LoadError:
        return LoadError([Problem(tree.file, 1, errors.READ_ERROR, message)])

    if len(data) > limits.max_bytes:
        raise fail(
            f"kubectl kustomize {tree.directory} wrote more than --max-input-size ({limits.max_bytes} bytes)"
        )
    if expired:
        raise fail(f"kubectl kustomize {tree.directory} did not finish within {timeout:g} s")
    if code != 0:
        raise fail(f"kubectl kustomize {tree.directory} failed (exit {code}): {stderr or 'no message'}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise fail(f"kubectl kustomize {tree.directory} wrote output that is not UTF-8: {err}") from None
