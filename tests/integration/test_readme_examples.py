"""The examples of README.md, deploy/README.md and docs/*.md marked runnable run as written.

Markers (an HTML comment on the line before a fenced block; the full syntax is in tests/docexamples.py and
docs/testing.md):

- ``<!-- runnable: exit=N output="LINE" -->`` before a ```sh block: run with ``sh -e`` from a directory
  laid out like the repository (``.venv/bin/policyengine`` and ``policyengine`` are the installed command);
  exit N, and the output (stdout and stderr) holds LINE (``output`` is optional).
- ``<!-- runnable: yaml=policy -->`` before a ```yaml block: loads beside the bundled packs, no problem.
- ``<!-- runnable: yaml=config -->``: a GovernanceConfig that validates against its schema and loads.
- ``<!-- runnable: yaml=manifest exit=N output="LINE" args="..." -->``: ``policyengine check`` on the
  block (with ARGS) exits N, its output holding LINE.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docexamples import DOCUMENTS, ROOT, Example, check, examples

ALL = [e for d in DOCUMENTS for e in examples(d)]


def test_the_readme_marks_the_quick_start_and_other_examples_runnable() -> None:
    readme = [e for e in ALL if e.document == "README.md"]
    quick_start = ".venv/bin/policyengine check --config examples/governance.yaml examples/manifests"
    assert any(e.body.strip() == quick_start for e in readme)
    assert len(readme) >= 3


def test_the_docs_mark_yaml_examples_of_each_kind() -> None:
    kinds = {e.kind for e in ALL}
    assert {"sh", "policy", "config", "manifest"} <= kinds, kinds
    assert {e.document.split("/")[0] for e in ALL} >= {"README.md", "docs"}


@pytest.mark.parametrize("example", ALL, ids=str)
def test_a_runnable_example_runs_as_written(example: Example, tmp_path: Path) -> None:
    try:
        check(example, tmp_path)
    except AssertionError as err:
        pytest.fail(str(err), pytrace=False)


def test_the_readme_config_is_the_file_in_examples() -> None:
    (config,) = [e for e in ALL if e.kind == "config" and e.document == "README.md"]
    assert config.dir == "examples/config-reference"
    assert config.body == (ROOT / "examples" / "config-reference" / "governance.yaml").read_text(
        encoding="utf-8"
    )
