"""The one walk from the paths a user names to the manifest files under them, used by every reader of
the core and by the webhook's reload poll, so that what is watched is exactly what is read.

Directories are walked recursively in sorted order, hidden entries left out, links to files and to
directories followed. Nothing the walk meets is skipped in silence: a directory it cannot list, a
dangling link, a link loop or a manifest name that is not a regular file (a FIFO would block the
read) is a problem naming the path and the reason. A directory reached again through a link to one
of its ancestors is a loop, reported once; one reached again by another route is simply not walked
twice.

A walk may also leave things out on purpose, never silently: paths matching ``--exclude`` patterns
(relative to the directory named), and, when asked, the ``templates/`` folder of a Helm chart (a folder
holding ``Chart.yaml``), whose files are Go templates rather than YAML; each chart gets one notice. Of a
chart's other folders only ``crds/`` (applied as it is) and ``charts/`` (subcharts, walked by the same
rule) are read: the rest (``files/``, ``ci/``) is what templates read through ``.Files``, often templated
itself, and each such folder is listed as skipped. The folders holding a kustomization file are listed,
for a reader that renders them.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from policyengine import errors
from policyengine.errors import Problem
from policyengine.globs import Excludes

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"

_KINDS = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


HELM_CHART = "Chart.yaml"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
HELM_TEMPLATES = "templates"
HELM_APPLIED = ("crds", "charts")  # a chart's folders read as they are: its CRDs and its subcharts
CHART_FILES = "a Helm chart's files, read by its templates (.Files), not applied as they are"


def _is_manifest(name: str) -> bool:
    return name.lower().endswith(MANIFEST_SUFFIXES)


@dataclass(frozen=True)
class Skipped:
    """A path the walk or the reader left out on purpose, and why: a ``file`` that is not a manifest,
    or a Helm ``chart`` whose templates must be rendered to be checked."""

    path: str
    reason: str
    kind: str = "file"


def chart_notice(chart: str) -> str:
    return (
        f"Helm chart: its {HELM_TEMPLATES}/ are templates, not manifests, and were not read; "
        f"check the rendered chart with: helm template {chart} | policyengine check -"
    )


@dataclass
class Found:
    """What a walk found: the files to read, in order; for each file met inside a named directory, that
    directory; what it could not read; and what it left out on purpose."""

    files: list[str] = field(default_factory=list)
    roots: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    kustomizations: list[str] = field(default_factory=list)  # folders holding a kustomization file


@dataclass
class _Walk:
    skip_dirs: Collection[str]
    excludes: Excludes = field(default_factory=Excludes)
    charts: bool = False  # leave out Helm charts' templates/, with a notice
    kustomizations: list[str] = field(default_factory=list)  # folders met holding a kustomization file
    root: str = ""  # the named directory being walked
    files: list[str] = field(default_factory=list)
    roots: dict[str, str] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    seen_files: set[tuple[int, int]] = field(default_factory=set)  # a file named twice is read once
    walked: set[tuple[int, int]] = field(default_factory=set)  # directories already walked
    loops: set[frozenset[str]] = field(default_factory=set)  # link cycles already reported

    def problem(self, path: str, message: str, code: str = errors.READ_ERROR) -> None:
        self.problems.append(Problem(path, 1, code, message))

    def add_file(self, path: str, st: os.stat_result) -> None:
        if (st.st_dev, st.st_ino) not in self.seen_files:
            self.seen_files.add((st.st_dev, st.st_ino))
            self.files.append(path)
            if self.root:
                self.roots[path] = self.root

    def excluded(self, path: str, *, is_dir: bool) -> bool:
        if not self.excludes.patterns:
            return False
        return self.excludes.matches(os.path.relpath(path, self.root), is_dir=is_dir)

    def named(self, path: str) -> None:
        """A path the user gave: a file is read whatever its suffix, a directory walked, anything else
        is a problem."""
        try:
            st = os.stat(path)
        except OSError as err:
            self.unreachable(path, err, named=True)
            return
        if stat.S_ISDIR(st.st_mode):
            self.root = path
            self.directory(path, st)
            self.root = ""
        else:
            self.regular(path, st)

    def unreachable(self, path: str, err: OSError, *, named: bool) -> None:
        if err.errno == errno.ELOOP:
            cycle = _link_cycle(path)
            if cycle in self.loops:
                return
            self.loops.add(cycle)
            self.problem(path, "symbolic link loop: the link resolves back to itself")
        elif err.errno == errno.ENOENT and os.path.islink(path):
            self.problem(path, f"dangling symbolic link: its target {_target(path)!r} does not exist")
        elif err.errno == errno.ENOENT and named:
            self.problem(path, "no such file or directory", errors.FILE_NOT_FOUND)
        else:
            self.problem(path, f"cannot read: {err.strerror or err}")

    def directory(self, root: str, root_st: os.stat_result) -> None:
        # Iterative, depth first in sorted order: a deep tree must not exhaust the interpreter's stack.
        stack: list[tuple[str, os.stat_result, tuple[tuple[int, int], ...]]] = [(root, root_st, ())]
        while stack:
            path, st, ancestors = stack.pop()
            here = (st.st_dev, st.st_ino)
            if here in ancestors:
                self.problem(path, "symbolic link loop: the link leads back to a directory that holds it")
                continue
            if here in self.walked:
                continue  # reached again by another route: walked once
            self.walked.add(here)
            subdirs = self.entries(path)
            stack.extend((sub, sub_st, (*ancestors, here)) for sub, sub_st in reversed(subdirs))

    def entries(self, path: str) -> list[tuple[str, os.stat_result]]:
        """List ``path``'s files and problems; return its subdirectories to walk."""
        try:
            with os.scandir(path) as found:
                names = sorted(e.name for e in found if not e.name.startswith("."))
        except OSError as err:
            self.problem(path, f"cannot read directory: {err.strerror or err}")
            return []
        chart = self.charts and HELM_CHART in names
        if any(name in KUSTOMIZATION_FILES for name in names):
            self.kustomizations.append(path)
        subdirs: list[tuple[str, os.stat_result]] = []
        for name in names:
            child = os.path.join(path, name)
            try:
                st = os.stat(child)
            except OSError as err:
                if not self.excluded(child, is_dir=False):
                    self.unreachable(child, err, named=False)
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if self.excluded(child, is_dir=is_dir):
                continue
            if is_dir and chart and name == HELM_TEMPLATES:
                self.skipped.append(Skipped(child, chart_notice(path), "chart"))
            elif is_dir and chart and name not in HELM_APPLIED:
                self.skipped.append(Skipped(child, CHART_FILES))
            elif is_dir:
                if name not in self.skip_dirs:
                    subdirs.append((child, st))
            elif _is_manifest(name):
                self.regular(child, st)
        return subdirs

    def regular(self, path: str, st: os.stat_result) -> None:
        if stat.S_ISREG(st.st_mode):
            self.add_file(path, st)
        else:
            kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
            self.problem(path, f"not a regular file: {kind}; pipe its content to - (stdin) instead")


def _target(link: str) -> str:
    try:
        return os.readlink(link)
    except OSError:  # replaced since it was seen
        return "?"


def _link_cycle(path: str) -> frozenset[str]:
    """The links of the cycle ``path`` runs into, so that a cycle met through any of its links is
    reported once."""
    chain: list[str] = []
    current = os.path.abspath(path)
    while current not in chain and len(chain) < 64 and os.path.islink(current):
        chain.append(current)
        try:
            target = os.readlink(current)
        except OSError:
            break
        current = os.path.normpath(os.path.join(os.path.dirname(current), target))
    return frozenset(chain[chain.index(current) :] if current in chain else chain)


def find(
    paths: Sequence[str],
    *,
    stdin_ok: bool = False,
    skip_dirs: Collection[str] = (),
    excludes: Excludes | None = None,
    charts: bool = False,
) -> Found:
    """The manifest files under ``paths`` (directories walked recursively, files in sorted order),
    a problem for every path the walk cannot read, and what it left out on purpose. Directories named
    in ``skip_dirs`` are not entered below a given path; ``excludes`` apply below a named directory,
    never to a path named itself; ``charts`` leaves out Helm charts' templates."""
    walk = _Walk(skip_dirs, excludes or Excludes(), charts)
    for raw in paths:
        if raw == STDIN and stdin_ok:
            walk.files.append(STDIN)
        else:
            walk.named(raw)
    return Found(walk.files, walk.roots, walk.problems, walk.skipped, walk.kustomizations)


def discover(
    paths: Sequence[str], *, stdin_ok: bool = False, skip_dirs: Collection[str] = ()
) -> tuple[list[str], list[Problem]]:
    """``find``'s files and problems, for readers that leave nothing out."""
    found = find(paths, stdin_ok=stdin_ok, skip_dirs=skip_dirs)
    return found.files, found.problems
