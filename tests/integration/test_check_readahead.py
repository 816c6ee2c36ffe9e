"""Reading a large tree in worker processes (``check --jobs``): the documents, skips and problems are those
of one process reading the files one after another, and the files really are read by the workers."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import astuple
from pathlib import Path
from typing import Any

import pytest

from policyengine import intake, readahead
from policyengine.errors import LoadError
from policyengine.loader import Document, InputLimits
from policyengine.parking import Unparker
from policyengine.readahead import MIN_PARALLEL
from tests.helpers import write

COUNT = MIN_PARALLEL + 40


def _job(i: int) -> str:
    return f"""\
apiVersion: batch/v1
kind: Job
metadata: {{name: job-{i}, namespace: team-{i % 4}}}
spec:
  template:
    spec:
      containers: [{{name: c, image: "registry.example.com/x:{i}"}}]
"""


def _tree(root: Path, *, broken: bool) -> Path:
    """Jobs, with every few files something else: a Namespace and a List (documents kept whole), a CI
    config and a non-YAML text (skipped), and with ``broken`` a repeated key, a manifest that does not
    parse, a file not UTF-8 and one over the size limit (problems)."""
    for i in range(COUNT):
        path = root / f"d{i % 7}" / f"f{i:04d}.yaml"
        if i % 50 == 3:
            write(path, f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: team-{i}}}\n---\n{_job(i)}")
        elif i % 50 == 11:
            write(
                path,
                f"apiVersion: v1\nkind: List\nitems:\n- {{apiVersion: v1, kind: ConfigMap, metadata: {{name: l{i}}}}}\n",
            )
        elif i % 50 == 17:
            write(path, "stages: [build, test]\n")
        elif i % 50 == 23:
            write(path, "just: [some, text\n")
        elif broken and i % 50 == 29:
            write(path, _job(i).replace("kind: Job\n", "kind: Job\nkind: Job\n"))
        elif broken and i % 50 == 31:
            write(path, _job(i) + "  oops: [\n")
        elif broken and i == 37:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \xff}\n")
        elif broken and i == 41:
            write(path, _job(i) + "#" * 5000 + "\n")
        else:
            write(path, _job(i))
    return root


def _outcome(root: Path, jobs: int) -> Any:
    """What reading ``root`` gives, comparable: each document's fields (packed ones unpacked), the skips,
    the kustomizations, or the problems raised."""
    limits = InputLimits(max_bytes=4096, max_documents=100)
    try:
        manifests = intake.start_reading([str(root)], None, limits, park=True, jobs=jobs).result()
    except LoadError as err:
        return "problems", [astuple(p) for p in err.problems]
    docs = [(type(d).__name__, _fields(d)) for d in manifests.documents]
    return docs, [astuple(s) for s in manifests.skipped], manifests.kustomizations


def _fields(doc: Document) -> tuple[Any, ...]:
    full = Unparker()(doc)  # a packed document's object and positions, unpacked
    return doc.data, doc.file, doc.line, doc.index, doc.positions, full.data, full.positions


@pytest.mark.parametrize("broken", [False, True], ids=["clean", "with-problems"])
def test_workers_read_what_one_process_reads(tmp_path: Path, broken: bool) -> None:
    root = _tree(tmp_path / "tree", broken=broken)
    one = _outcome(root, 1)
    assert _outcome(root, 2) == one
    assert _outcome(root, 3) == one
    if broken:
        assert one[0] == "problems" and len(one[1]) >= 4, one
    else:
        each = len(range(3, COUNT, 50))  # files of each other sort
        docs, skipped, _ = one
        assert len(docs) == COUNT - each and len(skipped) == 2 * each
        assert any(kind == "ParkedDocument" for kind, _ in docs)


def _until(holds: Callable[[], bool]) -> None:
    """Wait until ``holds()``; a worker gives up after 60 s (the parent's hang guard fails first), so no
    process of the test is ever left waiting."""
    for _ in range(60_000):
        if holds():
            return
        time.sleep(0.001)


def _wait_for_lines(log: Path, count: int) -> None:
    """Wait (the hang guard bounds it) until ``count`` files have been noted: the workers are done."""
    while len(log.read_text().split()) < count if log.exists() else True:
        time.sleep(0.01)


def test_the_files_are_read_by_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hang_guard: None
) -> None:
    """Each file is read in a worker process (forked: it runs the function as this process holds it),
    ``jobs - 1`` of them, while this process goes on with other work (here: waiting)."""
    root = _tree(tmp_path / "tree", broken=False)
    log = tmp_path / "pids.log"
    real = intake._read_file

    def noting(item: Any, stdin: Any = None) -> Any:
        with log.open("a") as out:
            out.write(f"{os.getpid()}\n")
        return real(item, stdin)

    monkeypatch.setattr(intake, "_read_file", noting)
    reading = intake.start_reading([str(root)], None, jobs=2)  # one worker: this process goes on
    _wait_for_lines(log, COUNT)
    reading.result()
    pids = log.read_text().split()
    assert len(pids) == COUNT
    assert str(os.getpid()) not in pids and len(set(pids)) == 1
    log.write_text("")
    reading = intake.start_reading([str(root)], None, jobs=3)
    _wait_for_lines(log, COUNT)
    reading.result()
    pids = log.read_text().split()
    assert len(pids) == COUNT and str(os.getpid()) not in pids and len(set(pids)) == 2


@pytest.mark.parametrize("jobs", [2, 3])
def test_this_process_reads_what_the_workers_have_not_begun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hang_guard: None, jobs: int
) -> None:
    """Asked for the result before slow workers are done, this process reads the files they have not
    begun, from the back of each run: each file is read once, and what comes back is what one process
    reading them in order makes."""
    root = _tree(tmp_path / "tree", broken=False)
    one = _outcome(root, 1)
    log, started, caught_up = tmp_path / "files.log", tmp_path / "started.log", tmp_path / "caught-up"
    real = intake._read_file
    parent = os.getpid()

    def noting(item: Any, stdin: Any = None) -> Any:
        # Who reads what does not depend on the scheduler: each worker, having claimed the first file of
        # its run, holds it until this process has read a file; this process reads its first only once
        # every worker holds one. (Bounded waits: the hang guard fails a wait that never ends.)
        if os.getpid() != parent:
            with started.open("a") as out:
                out.write(f"{os.getpid()}\n")
            _until(caught_up.exists)
            time.sleep(0.005)  # a slow worker: this process catches up with it
        else:
            _until(lambda: started.exists() and len(set(started.read_text().split())) >= jobs - 1)
        with log.open("a") as out:
            out.write(f"{os.getpid()} {item.file}\n")
        made = real(item, stdin)
        if os.getpid() == parent:
            caught_up.touch()
        return made

    monkeypatch.setattr(intake, "_read_file", noting)
    assert _outcome(root, jobs) == one
    read = [line.split() for line in log.read_text().splitlines()]
    files = [f for _, f in read]
    assert len(files) == COUNT and len(set(files)) == COUNT  # none twice, none left out
    here = {f for pid, f in read if pid == str(parent)}
    assert here and len({pid for pid, _ in read}) == jobs  # the workers and this process each read
    # In each run, every file this process read follows every file a worker read there.
    walked = list(intake.find([str(root)], stdin_ok=True, charts=True).files)
    assert sorted(walked) == sorted(files)
    bounds = [COUNT * k // (jobs - 1) for k in range(jobs)]
    for k in range(jobs - 1):
        run = walked[bounds[k] : bounds[k + 1]]
        mine = [f in here for f in run]
        assert mine == sorted(mine)  # False (a worker's) ... then True (this process's)


def test_a_small_tree_is_read_in_this_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(MIN_PARALLEL - 1):
        write(tmp_path / "small" / f"f{i}.yaml", _job(i))
    seen: list[int] = []
    real = intake._read_file

    def noting(item: Any, stdin: Any = None) -> Any:
        seen.append(os.getpid())
        return real(item, stdin)

    monkeypatch.setattr(intake, "_read_file", noting)
    manifests = intake.start_reading([str(tmp_path / "small")], None, jobs=2).result()
    assert len(manifests.documents) == MIN_PARALLEL - 1 and set(seen) == {os.getpid()}


def test_the_objects_workloads_look_up_are_never_parked() -> None:
    """A worker decides what to park before the workloads package is imported: by kind, a superset of
    what the gate looks up by name (``gate.cluster_objects``), so such an object is always read whole."""
    from policyengine.gate import cluster_objects
    from policyengine.objects import LOOKED_UP_KINDS, can_wait
    from policyengine.workloads import claims, persistent, runtimes, scheduling

    kinds = {claims.CLAIM, claims.TEMPLATE, claims.DEVICE_CLASS, scheduling.POD_GROUP, scheduling.WORKLOAD}
    kinds |= {persistent.PVC, persistent.PV, persistent.DATASET, runtimes.RUNTIME, runtimes.CLUSTER_RUNTIME}
    assert kinds == LOOKED_UP_KINDS
    groups = ["v1", "resource.k8s.io/v1", "scheduling.k8s.io/v1alpha1", "data.fluid.io/v1alpha1"]
    groups += ["trainer.kubeflow.org/v1alpha1", "example.com/v1"]
    for kind in [*kinds, "Job", "Deployment", "ConfigMap", "Namespace"]:
        for api_version in groups:
            data = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "namespace": "n"}}
            doc = Document(data, "f.yaml", 1, 0, {})
            if cluster_objects([doc]) or (kind == "Namespace" and api_version == "v1"):
                assert not can_wait(doc), (api_version, kind)
    job = Document({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}}, "f.yaml", 1, 0, {})
    assert can_wait(job)


def _failing_on(
    monkeypatch: pytest.MonkeyPatch, name: str, fail: Callable[[], None], anywhere: bool = False
) -> None:
    """Reading the file ``name`` calls ``fail`` in a worker (``anywhere``: also in this process); this
    process reads slowly, so that the workers read the files at the front of their runs."""
    real = intake._read_file
    parent = os.getpid()

    def failing(item: Any, stdin: Any = None) -> Any:
        if os.getpid() == parent:
            time.sleep(0.005)
        if (anywhere or os.getpid() != parent) and item.file.endswith(name):
            fail()
        return real(item, stdin)

    monkeypatch.setattr(intake, "_read_file", failing)


def test_a_workers_error_is_raised_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hang_guard: None
) -> None:
    root = _tree(tmp_path / "tree", broken=False)

    def fail() -> None:
        raise ValueError("the reader broke")

    _failing_on(monkeypatch, "f0150.yaml", fail, anywhere=True)  # a worker's, or this process's
    with pytest.raises(ValueError, match="the reader broke"):
        intake.start_reading([str(root)], None, jobs=3).result()
    assert not list(Path(tempfile.gettempdir()).glob("policyengine-read-*/run-*.pickle"))


def test_a_worker_that_dies_is_an_error_not_a_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hang_guard: None
) -> None:
    """Hostile to a pool that waits for a lost task: the worker is killed (as out of memory would)."""
    root = _tree(tmp_path / "tree", broken=False)
    _failing_on(monkeypatch, "f0007.yaml", lambda: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(readahead.WorkerDied, match="killed by signal 9"):
        intake.start_reading([str(root)], None, jobs=2).result()
