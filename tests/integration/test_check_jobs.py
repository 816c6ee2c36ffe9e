"""`policyengine check --jobs N`: a large set decided in worker processes gives, byte for byte, the output
and exit code of one process, in every format, including GPU quota reservations that depend on order."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from policyengine.cel import get_backend
from policyengine.cli import main
from policyengine.fanout import MIN_PARALLEL
from tests.helpers import write

ROOT = Path(__file__).resolve().parents[2]
COUNT = MIN_PARALLEL + 60  # past the in-process threshold

CONFIG = """\
apiVersion: policyengine.io/v1
kind: GovernanceConfig
metadata: {name: org}
spec:
  gpu:
    teams:
      default: {quota: 6}
      vision: {quota: 40}
"""


def _job(i: int, namespace: str, gpus: int) -> str:
    return f"""\
apiVersion: batch/v1
kind: Job
metadata: {{name: train-{i}, namespace: {namespace}, labels: {{owner: vision}}}}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: t
          image: registry.example.com/train@sha256:{i:064x}
          resources: {{limits: {{nvidia.com/gpu: {gpus}}}}}
"""


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two namespaces of one labelled team (dealt to one worker together) and three unlabelled ones
    sharing the default pool (dealt to different workers): reservations succeed until each pool is
    full, in file order, so the spread pool must be decided again in order."""
    root = tmp_path_factory.mktemp("tree")
    namespaces = "".join(
        f"---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {{policyengine.io/team: vision}}}}\n"
        for ns in ("cv-a", "cv-b", "cv-c")
    )
    write(root / "namespaces.yaml", namespaces)
    for i in range(COUNT):
        namespace = ("cv-a", "misc-x", "cv-b", "misc-y", "misc-z")[i % 5]
        write(root / namespace / f"job-{i:04d}.yaml", _job(i, namespace, 1 + i % 3))
    write(root.parent / f"{root.name}-config.yaml", CONFIG)
    return root


def _check(tree: Path, fmt: str, jobs: int, out: Path) -> tuple[int, bytes, bytes]:
    config = tree.parent / f"{tree.name}-config.yaml"
    argv = [sys.executable, "-m", "policyengine", "check", str(tree), "--config", str(config)]
    argv += ["--format", fmt, "--output", str(out), "--jobs", str(jobs), "--no-config-file"]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, timeout=300, check=False)  # hang guard
    return proc.returncode, out.read_bytes(), proc.stderr


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "junit", "github"])
def test_jobs_output_and_exit_code_are_those_of_one_process(tree: Path, tmp_path: Path, fmt: str) -> None:
    one = _check(tree, fmt, 1, tmp_path / "one")
    two = _check(tree, fmt, 2, tmp_path / "two")
    assert one[0] == 1  # some deny: the quotas fill up
    assert one == two


def test_the_tree_fills_quota_pools_in_order(tree: Path, tmp_path: Path) -> None:
    """The case the workers must get right: reservations succeed, then the pool is full."""
    _, report, _ = _check(tree, "json", 2, tmp_path / "r.json")
    results = json.loads(report)["results"]
    quota = [r for r in results if r["policy"] == "gpu-team-quota"]
    failed = [r for r in quota if r["outcome"] == "fail"]
    assert 0 < len(failed) < COUNT  # the first requests of each pool were admitted and reserved
    assert any("reserv" in r["message"] for r in failed), failed[:2]  # later ones counted them


def _compiles_for(files: int, root: Path, monkeypatch: pytest.MonkeyPatch, jobs: int) -> int:
    """How many CEL compilations a check of ``files`` manifests makes, in this process or its workers
    (each compilation appends a line to a file, which forked workers share)."""
    log = root / f"compiles-{files}-{jobs}.log"
    backend = type(get_backend("fast"))
    real = backend.compile

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        with log.open("a") as out:
            out.write("compiled\n")
        return real(self, *args, **kwargs)

    for i in range(files):
        write(root / f"n{files}" / f"job-{i:04d}.yaml", _job(i, "cv-a", 1))
    log.write_text("")
    with monkeypatch.context() as patch:
        patch.setattr(backend, "compile", counting)
        patch.setattr("sys.stdin", io.StringIO(""))
        code = main(["check", str(root / f"n{files}"), "--jobs", str(jobs), "--no-config-file"])
    assert code in (0, 1)
    return len(log.read_text().splitlines())


def test_the_policy_set_is_compiled_once_per_run_not_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    one = _compiles_for(1, tmp_path, monkeypatch, 1)
    assert one > 50  # the bundled packs' expressions, compiled when the policy set loads
    assert _compiles_for(40, tmp_path, monkeypatch, 1) == one
    # Workers inherit the compiled set: nothing is compiled again in them or for them.
    assert _compiles_for(COUNT, tmp_path, monkeypatch, 2) == one
    capsys.readouterr()


def test_this_process_decides_a_share_while_the_workers_decide_the_others(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With N jobs, N - 1 workers are forked and this process decides the remaining share: it would
    otherwise wait with a core idle. Each request is decided once (the spread pool again, here)."""
    from policyengine.engine import Engine

    log = tmp_path / "deciders.log"
    real = Engine.evaluate

    def noting(self: Any, *args: Any, **kwargs: Any) -> Any:
        with log.open("a") as out:
            out.write(f"{os.getpid()}\n")
        return real(self, *args, **kwargs)

    config = tree.parent / f"{tree.name}-config.yaml"
    with monkeypatch.context() as patch:
        patch.setattr(Engine, "evaluate", noting)
        patch.setattr("sys.stdin", io.StringIO(""))
        argv = ["check", str(tree), "--config", str(config), "--jobs", "2", "--no-config-file"]
        code = main([*argv, "--format", "json", "--output", str(tmp_path / "r.json")])
    capsys.readouterr()
    assert code == 1
    pids = log.read_text().split()
    assert str(os.getpid()) in pids and len(set(pids)) == 2  # this process and one worker
    assert len(pids) >= COUNT
