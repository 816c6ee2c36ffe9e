"""The shell examples of README.md and docs/ marked runnable run as written.

A runnable example is a ```sh block right after a ``<!-- runnable: exit=N output="LINE" -->`` comment
(``output`` is optional). Each runs with ``sh`` in a directory laid out like the repository (its entries
linked, read-only use only) whose ``.venv/bin`` is the running interpreter's, so ``.venv/bin/policyengine``
and ``policyengine`` are the installed command; the test asserts the exit code and that the output
(stdout and stderr) holds LINE.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_MARKED = re.compile(
    r'^<!-- runnable: exit=(?P<exit>\d+)(?: output="(?P<output>[^"]*)")? -->\n```sh\n(?P<script>.*?)^```$',
    re.MULTILINE | re.DOTALL,
)
_MARKER = re.compile(r"^<!-- runnable:", re.MULTILINE)


@dataclass(frozen=True)
class Example:
    document: Path
    line: int
    exit: int
    output: str | None
    script: str

    def __str__(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def examples(document: Path) -> list[Example]:
    text = document.read_text(encoding="utf-8")
    found = [
        Example(
            document,
            text.count("\n", 0, m.start()) + 1,
            int(m["exit"]),
            m["output"],
            m["script"],
        )
        for m in _MARKED.finditer(text)
    ]
    # A marker that does not parse (a typo, no ```sh block under it) must fail, not go unrun.
    assert len(found) == len(_MARKER.findall(text)), f"{document}: a runnable marker is not followed by ```sh"
    return found


ALL = [e for d in DOCUMENTS for e in examples(d)]


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's entries linked into a fresh directory, with ``.venv/bin`` the running one."""
    root = tmp_path_factory.mktemp("repo")
    for entry in ROOT.iterdir():
        if entry.name not in (".venv", ".git"):
            (root / entry.name).symlink_to(entry)
    (root / ".venv").mkdir()
    (root / ".venv" / "bin").symlink_to(Path(sys.executable).parent)
    return root


def test_the_readme_marks_the_quick_start_and_other_examples_runnable() -> None:
    readme = [e for e in ALL if e.document.name == "README.md"]
    quick_start = ".venv/bin/policyengine check --config examples/governance.yaml examples/manifests"
    assert any(e.script.strip() == quick_start for e in readme)
    assert len(readme) >= 3


@pytest.mark.parametrize("example", ALL, ids=str)
def test_a_runnable_example_runs_as_written(example: Example, layout: Path) -> None:
    env = {**os.environ, "PATH": f"{layout / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    try:
        proc = subprocess.run(
            ["sh", "-e", "-c", example.script],
            cwd=layout,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,  # a hang guard only
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{example}: the example did not finish in 120 s")
    shown = proc.stdout + proc.stderr
    assert proc.returncode == example.exit, (
        f"{example}: exit {proc.returncode}, README says {example.exit}\n{shown}"
    )
    if example.output is not None:
        assert example.output in shown, f"{example}: output lacks {example.output!r}\n{shown}"
