"""The runnable examples of the documentation: one extractor and one checker per kind of example.

A runnable example is a fenced block right after a marker comment on its own line:

- ``<!-- runnable: exit=N output="LINE" -->`` then a ```sh block: the script runs with ``sh -e`` from a
  directory laid out like the repository; its exit code must be N and its output (stdout and stderr)
  must hold LINE (``output`` is optional).
- ``<!-- runnable: yaml=policy -->`` then a ```yaml block: policy documents (Policy, PolicyVariables,
  PolicyException, ValidatingAdmissionPolicy and its binding, ...) that load with the engine's loader
  beside the bundled packs, with no problem.
- ``<!-- runnable: yaml=config -->`` then a ```yaml block: GovernanceConfig documents that validate
  against ``policyengine/schemas/governance-config.json`` and load (with the bundled packs, trust
  material included), as ``--config`` loads them. ``dir=FOLDER`` (a folder of the repository) reads
  the block as a file of that folder, so the relative paths it names (keys, CAs, attestations) resolve
  there; ``dir=`` is taken by ``yaml=policy`` too.
- ``<!-- runnable: yaml=manifest exit=N output="LINE" args="..." -->`` then a ```yaml block: manifests
  given to ``policyengine check FILE ARGS`` (run from the repository layout); exit N, output holding LINE.

A marker that does not parse, names an unknown kind or attribute, or is not followed by its block is an
error naming the document and line: an example must never go unrun because of a typo.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from policyengine import Engine, LoadError, load_policy_set
from policyengine.loader import collect_documents

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [
    ROOT / "README.md",
    ROOT / "deploy" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
YAML_KINDS = ("policy", "config", "manifest")
_MARKER_LINE = re.compile(r"^<!-- runnable:(?P<attrs>.*?)-->[ \t]*$", re.MULTILINE)
_ANY_MARKER = re.compile(r"^\s*<!--\s*runnable", re.MULTILINE)
_FENCE = re.compile(r"```(?P<lang>[a-z]+)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_ATTR = re.compile(r'\s*(?P<key>[a-z]+)=(?:"(?P<quoted>[^"]*)"|(?P<bare>[^\s"]+))')
_ALLOWED = {"sh": {"exit", "output"}, "policy": {"yaml", "dir"}, "config": {"yaml", "dir"}}
_ALLOWED["manifest"] = {"yaml", "exit", "output", "args"}
_HANG_GUARD = 120  # seconds; a hang guard only, never the thing measured


class MarkerError(AssertionError):
    """A runnable marker the extractor cannot act on."""


@dataclass(frozen=True)
class Example:
    document: str  # the document's name, relative to the repository when it is one of its files
    line: int  # of the marker
    kind: str  # sh | policy | config | manifest
    dir: str | None  # the repository folder a yaml block is read in
    exit: int | None
    output: str | None
    args: tuple[str, ...]
    body: str

    def __str__(self) -> str:
        return f"{self.document}:{self.line}"


def _attributes(text: str, where: str) -> dict[str, str]:
    found: dict[str, str] = {}
    pos = 0
    for m in _ATTR.finditer(text):
        if m.start() != pos:
            break
        if m["key"] in found:
            raise MarkerError(f"{where}: runnable marker repeats {m['key']}=")
        found[m["key"]] = m["quoted"] if m["quoted"] is not None else m["bare"]
        pos = m.end()
    if text[pos:].strip():
        raise MarkerError(f"{where}: runnable marker does not parse at {text[pos:].strip()!r}")
    return found


def _example(document: str, line: int, attrs: dict[str, str], lang: str, body: str) -> Example:
    where = f"{document}:{line}"
    kind = attrs.get("yaml", "sh")
    if kind not in _ALLOWED:
        raise MarkerError(f"{where}: yaml={kind} is not a kind of example ({', '.join(YAML_KINDS)})")
    if lang != ("sh" if kind == "sh" else "yaml"):
        raise MarkerError(
            f"{where}: a {kind} example is a ```{'sh' if kind == 'sh' else 'yaml'} block, not {lang}"
        )
    unknown = set(attrs) - _ALLOWED[kind]
    if unknown:
        raise MarkerError(f"{where}: a {kind} example takes no {', '.join(sorted(unknown))}=")
    if kind in ("sh", "manifest") and "exit" not in attrs:
        raise MarkerError(f"{where}: a {kind} example needs exit=N")
    if "exit" in attrs and not attrs["exit"].isdigit():
        raise MarkerError(f"{where}: exit={attrs['exit']} is not a number")
    return Example(
        document,
        line,
        kind,
        attrs.get("dir"),
        int(attrs["exit"]) if "exit" in attrs else None,
        attrs.get("output"),
        tuple(shlex.split(attrs.get("args", ""))),
        body,
    )


def extract(text: str, document: str) -> list[Example]:
    """Every runnable example of a Markdown text; MarkerError on any marker it cannot act on."""
    found: list[Example] = []
    for m in _MARKER_LINE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        attrs = _attributes(m["attrs"], f"{document}:{line}")
        fence = _FENCE.match(text, m.end() + 1)
        if fence is None:
            raise MarkerError(f"{document}:{line}: a runnable marker is not followed by a fenced block")
        found.append(_example(document, line, attrs, fence["lang"], fence["body"]))
    # A marker the line pattern misses (indented, misspelt closing) must fail, not go unrun.
    if len(found) != len(_ANY_MARKER.findall(text)):
        lines = [text.count("\n", 0, m.start()) + 1 for m in _ANY_MARKER.finditer(text)]
        seen = {e.line for e in found}
        raise MarkerError(f"{document}:{min(set(lines) - seen)}: a runnable marker does not parse")
    return found


def examples(document: Path) -> list[Example]:
    name = str(document.relative_to(ROOT)) if document.is_relative_to(ROOT) else str(document)
    return extract(document.read_text(encoding="utf-8"), name)


def layout(root: Path) -> Path:
    """The repository's entries linked into ``root``, with ``.venv/bin`` the running interpreter's, so
    ``.venv/bin/policyengine`` and ``policyengine`` are the installed command. Files an example writes
    land in ``root``, never in the repository."""
    for entry in ROOT.iterdir():
        if entry.name not in (".venv", ".git"):
            (root / entry.name).symlink_to(entry)
    (root / ".venv").mkdir()
    (root / ".venv" / "bin").symlink_to(Path(sys.executable).parent)
    return root


def _run(example: Example, argv: list[str], cwd: Path) -> None:
    path = f"{cwd / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env={**os.environ, "PATH": path},
            capture_output=True,
            text=True,
            timeout=_HANG_GUARD,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{example}: the example did not finish in {_HANG_GUARD} s") from None
    shown = proc.stdout + proc.stderr
    if proc.returncode != example.exit:
        raise AssertionError(f"{example}: exit {proc.returncode}, the text says {example.exit}\n{shown}")
    if example.output is not None and example.output not in shown:
        raise AssertionError(f"{example}: output lacks {example.output!r}\n{shown}")


def _load(example: Example, file: Path, *, as_config: bool) -> None:
    docs, problems = collect_documents([str(file)])
    if problems:
        raise AssertionError(f"{example}: the block does not read as YAML: {problems}")
    configs = [d for d in docs if d.kind == "GovernanceConfig"]
    if as_config and len(configs) != len(docs):
        raise AssertionError(f"{example}: yaml=config holds a document that is not a GovernanceConfig")
    if not as_config and (configs or not docs):
        raise AssertionError(f"{example}: yaml=policy holds no policy document, or a GovernanceConfig")
    try:
        if as_config:
            Engine(load_policy_set([], config_paths=[str(file)]))  # the Engine reads the trust material
        else:
            load_policy_set([str(file)])
    except LoadError as err:
        listed = "\n".join(f"  {p.render()}" for p in err.problems)
        raise AssertionError(f"{example}: the {example.kind} does not load:\n{listed}") from None


def check(example: Example, workdir: Path) -> None:
    """Run one example in ``workdir`` (an empty directory); AssertionError saying what differs."""
    (workdir / "repo").mkdir()
    root = layout(workdir / "repo")
    if example.kind == "sh":
        _run(example, ["sh", "-e", "-c", example.body], root)
        return
    folder = workdir / "block"
    folder.mkdir()
    if example.dir is not None:
        source = ROOT / example.dir
        if not source.is_dir() or not source.resolve().is_relative_to(ROOT):
            raise MarkerError(f"{example}: dir={example.dir} is not a folder of the repository")
        for entry in source.iterdir():  # linked, so the example never writes into the repository
            (folder / entry.name).symlink_to(entry)
    file = folder / "example.yaml"
    file.write_text(example.body, encoding="utf-8")
    if example.kind == "manifest":
        _run(example, [str(root / ".venv" / "bin" / "policyengine"), "check", str(file), *example.args], root)
    else:
        _load(example, file, as_config=example.kind == "config")
