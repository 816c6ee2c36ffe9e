"""What `policyengine check` does while it waits: the engine is built while workers still read the
manifests, deciding workers are forked directly (no process pool to start), this process takes the
smaller share of the requests (it reads back and settles every other share), and a worker's failure is
raised here, never a wait."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from policyengine import fanout, intake
from policyengine.cli import main
from policyengine.engine import EMPTY_INVENTORY, Engine
from policyengine.fanout import MIN_PARALLEL, decide_all
from policyengine.policyset import load_policy_set
from policyengine.readahead import WorkerDied
from tests.helpers import gpu_workload, write
from tests.integration.test_check_imports import loaded_modules

COUNT = MIN_PARALLEL + 40  # read and decided by workers
NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("critical")
    for i in range(COUNT):
        write(root / f"team-{i % 40}" / f"serve-{i:04d}.yaml", gpu_workload(i, teams=40))
    return root


def test_the_engine_is_built_before_the_manifests_are_asked_for(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The engine is built while the workers may still be reading, not after: the reading's result is
    asked for last."""
    order: list[str] = []
    real_init, real_result = Engine.__init__, intake.ManifestReading.result

    def building(self: Any, *args: Any, **kwargs: Any) -> None:
        order.append("engine")
        real_init(self, *args, **kwargs)

    def asking(self: Any) -> Any:
        order.append("manifests")
        return real_result(self)

    monkeypatch.setattr(Engine, "__init__", building)
    monkeypatch.setattr(intake.ManifestReading, "result", asking)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    argv = ["check", str(tree), "--no-config-file", "--jobs", "2", "--format", "json"]
    assert main([*argv, "--output", str(tmp_path / "r.json")]) == 1
    capsys.readouterr()
    assert order == ["engine", "manifests"]


def test_a_manifest_problem_is_still_reported_before_the_engines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A GovernanceConfig whose attestation material cannot be read stops the engine; a manifest that
    does not parse is still what the run reports (as when the engine was built after the reading)."""
    write(tmp_path / "bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: [\n")
    config = write(
        tmp_path / "config.yaml",
        "apiVersion: policyengine.io/v1\nkind: GovernanceConfig\nmetadata: {name: org}\n"
        f"spec: {{models: {{trustedKeys: [{{name: k, path: {tmp_path / 'missing.pem'}}}]}}}}\n",
    )
    code = main(["check", str(tmp_path / "bad.yaml"), "--config", str(config), "--no-config-file"])
    err = capsys.readouterr().err
    assert code == 2
    assert "bad.yaml" in err and "missing.pem" not in err
    # Alone, the unreadable key is what stops the run.
    write(tmp_path / "bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\n")
    code = main(["check", str(tmp_path / "bad.yaml"), "--config", str(config), "--no-config-file"])
    assert code == 2 and "missing.pem" in capsys.readouterr().err


def test_deciding_workers_are_forked_without_a_process_pool(tree: Path) -> None:
    code, modules = loaded_modules("check", str(tree), "--jobs", "2", "--format", "json")
    assert code in (0, 1) and "policyengine.fanout" in modules  # the probe saw requests decided
    assert "multiprocessing" not in modules


def test_this_process_takes_the_smaller_share() -> None:
    """Forty teams of ten requests each, two shares: this process (the first share) gets fewer."""
    from policyengine.model import Request

    requests = [Request.__new__(Request) for _ in range(400)]
    for i, request in enumerate(requests):
        object.__setattr__(request, "namespace", f"team-{i % 40}")
    shards = fanout._shards(requests, EMPTY_INVENTORY, 2)
    assert sorted(i for s in shards for i in s) == list(range(400))
    assert len(shards[0]) < len(shards[1])


def _raising_engine(monkeypatch: pytest.MonkeyPatch, how: str) -> Engine:
    engine = Engine(load_policy_set([]))
    parent, real = os.getpid(), Engine.evaluate

    def evaluate(self: Any, *args: Any, **kwargs: Any) -> Any:
        if os.getpid() != parent:
            if how == "die":
                os._exit(9)
            raise LookupError("a worker's own failure")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "evaluate", evaluate)
    return engine


def _requests(tree: Path) -> list[Any]:
    from policyengine.gate import request_for

    docs = intake.start_reading([str(tree)]).result().documents
    return [request_for(d) for d in docs]


def test_a_worker_failure_is_raised_here(
    tree: Path, monkeypatch: pytest.MonkeyPatch, hang_guard: None
) -> None:
    engine, requests = _raising_engine(monkeypatch, "raise"), _requests(tree)
    with pytest.raises(LookupError, match="a worker's own failure"):
        decide_all(engine, requests, inventory=EMPTY_INVENTORY, now=NOW, jobs=2)


def test_a_worker_that_dies_is_an_error_not_a_wait(
    tree: Path, monkeypatch: pytest.MonkeyPatch, hang_guard: None
) -> None:
    engine, requests = _raising_engine(monkeypatch, "die"), _requests(tree)
    with pytest.raises(WorkerDied, match="exited 9"):
        decide_all(engine, requests, inventory=EMPTY_INVENTORY, now=NOW, jobs=2)
