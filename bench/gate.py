"""Time the CI gate on 1,000 AI-workload manifests, next to checkov on the same folder in the same run.

    python bench/gate.py [--manifests 1000] [--runs 5] [--checkov PATH] [--format json] [--scale] [--source]

Writes a seeded corpus (Deployments and StatefulSets with GPUs, Jobs, PyTorchJobs, RayClusters, KServe
InferenceServices, JobSets, LeaderWorkerSets, TrainJobs; some violate the bundled packs) into a temporary
folder, then times whole processes, median of ``--runs`` after one warm-up each (check and checkov in
turn, run for run, so that a drift in the machine's speed slows both alike; the ratio printed is the
median of the pairs' ratios):

- ``python -c pass``: interpreter start-up, the floor under any Python tool;
- ``policyengine check DIR`` with the bundled packs, writing the report to a file;
- ``checkov -d DIR --framework kubernetes`` when checkov is found (``--checkov``, next to this Python, or
  on PATH). checkov is a bench-only tool: install it apart from the project (its pins downgrade
  ``packaging``), e.g. ``python -m venv /tmp/checkov && /tmp/checkov/bin/pip install checkov``.

Both tools run as installed, from bytecode: an installed product (``pip install``, the Dockerfile) and
checkov's venv run from ``.pyc`` files, while an editable checkout under ``PYTHONDONTWRITEBYTECODE=1``
compiles every module from source on every run (a sixth of a second here). So every timed process runs
with ``PYTHONDONTWRITEBYTECODE`` unset and ``PYTHONPYCACHEPREFIX`` set to one temporary folder for this
bench: the warm-up run of each command writes the bytecode of everything it imports, and the counted
runs read it, the same way for policyengine, checkov and the interpreter floor. ``--source`` times them
compiling from source instead (bytecode neither written nor read from the prefix).

``--scale`` adds ``check`` on 10x the manifests (time and peak RSS against the first size), and each size
with ``--jobs 1`` against the default of one worker per core.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
REGIONS = ["eu-west-1", "eu-central-1", "us-east-1", "us-west-2"]
TEAMS = ["vision", "nlp", "speech", "recsys"]


def _labels(rng: random.Random) -> dict[str, str]:
    labels = {"app.kubernetes.io/part-of": "ml-platform"}
    if rng.random() < 0.8:
        labels["owner"] = rng.choice(TEAMS)
    return labels


def _image(rng: random.Random, name: str) -> str:
    if rng.random() < 0.6:
        return f"registry.example.com/{name}@sha256:{rng.getrandbits(256):064x}"
    return f"registry.example.com/{name}:{rng.choice(['latest', '1.2', '2024.10'])}"


def _pod(rng: random.Random, name: str, gpus: int) -> dict[str, Any]:
    resources: dict[str, Any] = {"requests": {"cpu": "4", "memory": "32Gi"}, "limits": {"memory": "32Gi"}}
    if gpus:
        resources["limits"]["nvidia.com/gpu"] = gpus
        resources["requests"]["nvidia.com/gpu"] = gpus
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": name,
                "image": _image(rng, name),
                "resources": resources,
                "env": [{"name": "DATA", "value": f"s3://datasets-{rng.choice(REGIONS)}/{name}/"}],
            }
        ]
    }
    if rng.random() < 0.7:
        spec["nodeSelector"] = {"topology.kubernetes.io/region": rng.choice(REGIONS)}
    return {"metadata": {"labels": {"app": name}}, "spec": spec}


def _meta(rng: random.Random, name: str) -> dict[str, Any]:
    return {"name": name, "namespace": f"team-{rng.choice(TEAMS)}", "labels": _labels(rng)}


def _deployment(rng: random.Random, i: int) -> dict[str, Any]:
    kind = rng.choice(["Deployment", "StatefulSet"])
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": _meta(rng, f"serve-{i}"),
        "spec": {"replicas": rng.randint(1, 6), "template": _pod(rng, "server", rng.choice([0, 1, 2, 8]))},
    }


def _job(rng: random.Random, i: int) -> dict[str, Any]:
    pod = _pod(rng, "batch", rng.choice([0, 1, 4]))
    pod["spec"]["restartPolicy"] = "Never"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(rng, f"batch-{i}"),
        "spec": {"template": pod},
    }


def _pytorchjob(rng: random.Random, i: int) -> dict[str, Any]:
    gpus = rng.choice([1, 2, 4, 8])
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": _meta(rng, f"train-{i}"),
        "spec": {
            "pytorchReplicaSpecs": {
                "Master": {"replicas": 1, "template": _pod(rng, "pytorch", gpus)},
                "Worker": {"replicas": rng.randint(1, 16), "template": _pod(rng, "pytorch", gpus)},
            }
        },
    }


def _raycluster(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": _meta(rng, f"ray-{i}"),
        "spec": {
            "headGroupSpec": {"rayStartParams": {}, "template": _pod(rng, "ray-head", 0)},
            "workerGroupSpecs": [
                {
                    "groupName": "gpu",
                    "replicas": rng.randint(1, 8),
                    "minReplicas": 1,
                    "maxReplicas": rng.randint(8, 32),
                    "rayStartParams": {},
                    "template": _pod(rng, "ray-worker", rng.choice([1, 2, 4])),
                }
            ],
        },
    }


def _inferenceservice(rng: random.Random, i: int) -> dict[str, Any]:
    model = rng.choice(["hf://meta-llama/Llama-3.1-8B", f"s3://models-{rng.choice(REGIONS)}/m{i}"])
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": _meta(rng, f"isvc-{i}"),
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "maxReplicas": rng.randint(1, 10),
                "model": {
                    "modelFormat": {"name": "huggingface"},
                    "storageUri": model,
                    "resources": {"limits": {"nvidia.com/gpu": rng.choice([1, 2])}},
                },
            }
        },
    }


def _jobset(rng: random.Random, i: int) -> dict[str, Any]:
    job = {"template": _pod(rng, "worker", rng.choice([1, 8]))}
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": _meta(rng, f"jobset-{i}"),
        "spec": {
            "replicatedJobs": [
                {"name": "workers", "replicas": rng.randint(1, 4), "template": {"spec": {"template": job}}}
            ]
        },
    }


def _lws(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": _meta(rng, f"lws-{i}"),
        "spec": {
            "replicas": rng.randint(1, 3),
            "leaderWorkerTemplate": {"size": rng.randint(2, 8), "workerTemplate": _pod(rng, "vllm", 8)},
        },
    }


def _trainjob(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": _meta(rng, f"trainjob-{i}"),
        "spec": {
            "runtimeRef": {"name": "torch-distributed"},
            "trainer": {"numNodes": rng.randint(1, 8), "resourcesPerNode": {"limits": {"nvidia.com/gpu": 4}}},
        },
    }


MAKERS: list[Callable[[random.Random, int], dict[str, Any]]] = [
    _deployment,
    _deployment,
    _job,
    _pytorchjob,
    _raycluster,
    _inferenceservice,
    _jobset,
    _lws,
    _trainjob,
]


def write_corpus(folder: Path, count: int, seed: int = 7) -> dict[str, int]:
    """``count`` manifests, one per file, under a few sub-folders; returns how many of each kind."""
    rng = random.Random(seed)
    kinds: dict[str, int] = {}
    for i in range(count):
        obj = rng.choice(MAKERS)(rng, i)
        kinds[obj["kind"]] = kinds.get(obj["kind"], 0) + 1
        path = folder / obj["metadata"]["namespace"] / f"{obj['kind'].lower()}-{i:04d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(obj, sort_keys=False), encoding="utf-8")
    return kinds


def bytecode_env(env: Mapping[str, str], cache: Path, write: bool) -> dict[str, str]:
    """``env`` for a timed process: bytecode read from ``cache`` only (``__pycache__`` folders beside the
    sources are not looked at), and written there when ``write`` (as an installed tool runs), else never
    (each module compiled from source on every run)."""
    out = {**env, "PYTHONPYCACHEPREFIX": str(cache)}
    if write:
        out.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        out["PYTHONDONTWRITEBYTECODE"] = "1"
    return out


Timed = tuple[float, int, float]  # wall seconds, exit code, CPU seconds (user + system, with workers)


def run_once(argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[Timed, str]:
    """One whole run of ``argv``: its wall time, exit code and CPU time, and the tail of its stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    tail = " | ".join(proc.stderr.decode(errors="replace").strip().splitlines()[-3:])
    return (elapsed, proc.returncode, cpu), tail


def time_commands(
    commands: Sequence[tuple[Sequence[str], dict[str, str] | None, Path | None]], runs: int
) -> list[list[Timed]]:
    """Each command's ``runs`` runs after one warm-up each, taken in turn (A B A B ...): a machine whose
    speed drifts during the bench slows both alike, so the ratio of a pair stays meaningful.

    A command is (argv, env, the file it must produce or None). Exit codes other than 0 and 1 (a verdict)
    stop the bench, and so does a missing file.
    """
    for argv, env, produces in commands:
        (_, code, _), tail = run_once(argv, env)
        if code not in (0, 1) or (produces is not None and not produces.exists()):
            raise SystemExit(f"{' '.join(argv[:4])} exited {code} without its report: {tail}")
    samples: list[list[Timed]] = [[] for _ in commands]
    for _ in range(runs):
        for timed, (argv, env, _) in zip(samples, commands, strict=True):
            timed.append(run_once(argv, env)[0])
    return samples


def medians(samples: Sequence[Timed]) -> Timed:
    """Median wall time, the last run's exit code, median CPU time. On a machine busy with other work the
    wall time of a single-process tool grows well past its CPU time; the CPU time much less."""
    return (
        statistics.median(s[0] for s in samples),
        samples[-1][1],
        statistics.median(s[2] for s in samples),
    )


def time_command(
    argv: Sequence[str], runs: int, env: dict[str, str] | None = None, produces: Path | None = None
) -> Timed:
    """``medians`` of ``runs`` runs of one command after one warm-up."""
    return medians(time_commands([(argv, env, produces)], runs)[0])


def time_and_rss(argv: Sequence[str], runs: int, env: dict[str, str]) -> tuple[float, int]:
    """Median wall time and median peak RSS (KiB, from wait4) of ``runs`` runs after one warm-up."""
    times: list[float] = []
    peaks: list[int] = []
    for i in range(runs + 1):
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(argv[:4])} exited {proc.returncode}")
        if i:
            times.append(elapsed)
            peaks.append(int(usage.ru_maxrss))  # the largest of the process and its reaped workers
    return statistics.median(times), int(statistics.median(peaks))


def scale_row(folder: Path, base: int, runs: int, env: dict[str, str]) -> None:
    """``check`` on ``base`` and 10x ``base`` manifests: time and peak RSS, and their ratios; then each size
    again with ``--jobs 1`` against the default (one worker per core)."""
    figures: dict[tuple[int, str], tuple[float, int]] = {}
    for count in (base, 10 * base):
        corpus = folder / f"scale-{count}"
        write_corpus(corpus, count)
        argv = [sys.executable, "-m", "policyengine", "check", str(corpus), "--format", "json"]
        argv += ["--config", str(ROOT / "examples" / "governance.yaml"), "--output", str(folder / "s.json")]
        for jobs in ("default", "1"):
            figures[count, jobs] = time_and_rss(
                argv + ([] if jobs == "default" else ["--jobs", jobs]), runs, env
            )
            seconds, peak = figures[count, jobs]
            print(
                f"  check on {count:>6,} manifests, --jobs {jobs:<7} {seconds:8.3f} s  peak RSS {peak / 1024:.0f} MiB"
            )
    for jobs in ("default", "1"):
        (t1, r1), (t10, r10) = figures[base, jobs], figures[10 * base, jobs]
        print(
            f"ratio 10x manifests, --jobs {jobs:<7}: time {t10 / t1:.2f}x (linear: 10x), "
            f"peak RSS {r10 / r1:.2f}x (target < 2x)"
        )
    for count in (base, 10 * base):
        print(
            f"ratio --jobs 1 / default on {count:,}: {figures[count, '1'][0] / figures[count, 'default'][0]:.2f}x"
            f" ({default_jobs()} cores)"
        )


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def find_checkov(given: str | None) -> str | None:
    if given:
        return given
    beside = Path(sys.executable).with_name("checkov")
    if beside.exists():
        return str(beside)
    return shutil.which("checkov")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifests", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--checkov", help="the checkov executable (default: beside this Python, else on PATH)"
    )
    parser.add_argument("--format", default="json", help="the report policyengine writes (default json)")
    parser.add_argument(
        "--scale", action="store_true", help="also time check on 10x --manifests: time and peak RSS ratios"
    )
    parser.add_argument(
        "--source",
        action="store_true",
        help="time every tool compiling its modules from source (no bytecode), not as installed",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="policyengine-bench-") as tmp:
        base = bytecode_env(os.environ, Path(tmp) / "pycache", write=not args.source)
        env = {
            **base,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        env.pop("GITHUB_STEP_SUMMARY", None)
        corpus = Path(tmp) / "manifests"
        kinds = write_corpus(corpus, args.manifests)
        report = Path(tmp) / f"report.{args.format}"
        print(f"corpus: {args.manifests} manifests in {corpus}")
        print("  " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
        print(f"median of {args.runs} runs after one warm-up, whole processes")
        if args.source:
            print("bytecode: none (--source): every run compiles each module it imports from source")
        else:
            print(
                "bytecode: as installed: the warm-up writes .pyc under one PYTHONPYCACHEPREFIX, "
                "the counted runs read it (both tools)"
            )

        floor, _, floor_cpu = time_command([sys.executable, "-c", "pass"], args.runs, base)
        print(f"  python -c pass                 {floor:8.3f} s  ({floor_cpu:.3f} s CPU)")

        ours = [sys.executable, "-m", "policyengine", "check", str(corpus), "--format", args.format]
        ours += ["--config", str(ROOT / "examples" / "governance.yaml")]  # every org rule evaluated
        ours += ["--output", str(report)]
        commands: list[tuple[Sequence[str], dict[str, str] | None, Path | None]] = [(ours, env, report)]
        checkov = find_checkov(args.checkov)
        if checkov is not None:  # timed in turn with check, run for run
            theirs = [checkov, "-d", str(corpus), "--framework", "kubernetes", "--quiet", "--compact"]
            theirs += ["--skip-download", "-o", "json", "--output-file-path", str(Path(tmp) / "checkov")]
            checkov_env = {
                **base,
                "BC_SKIP_MAPPING": "TRUE",
                "CKV_SKIP_PACKAGE_UPDATE_CHECK": "True",  # no network wait in the timing
            }
            commands.append((theirs, checkov_env, None))
        samples = time_commands(commands, args.runs)
        ours_s, ours_code, ours_cpu = medians(samples[0])
        detail = ""
        if args.format == "json":
            summary = json.loads(report.read_text())["summary"]
            detail = f", {summary['resources']} resources, {summary['evaluated']} checks, {summary['failed']} denied"
        print(
            f"  policyengine check             {ours_s:8.3f} s  ({ours_cpu:.3f} s CPU, exit {ours_code}{detail})"
        )
        print(f"    {1000 * (ours_s - floor) / args.manifests:.1f} ms per manifest after start-up")
        if checkov is None:
            print(
                "  checkov -d (kubernetes)        not found: pass --checkov PATH (see the module docstring)"
            )
        else:
            theirs_s, theirs_code, theirs_cpu = medians(samples[1])
            print(
                f"  checkov -d (kubernetes)        {theirs_s:8.3f} s  ({theirs_cpu:.3f} s CPU, exit {theirs_code})"
            )
            # Each pair's ratio, then their median: a pair ran back to back, on the machine as it was then.
            faster = statistics.median(t[0] / o[0] for o, t in zip(samples[0], samples[1], strict=True))
            # Above 1: policyengine takes longer than checkov on the same folder.
            print(f"ratio policyengine / checkov: {1 / faster:.2f} (median of {args.runs} pairs run in turn)")
            print(f"check is {faster:.1f}x faster than checkov (target >= 10x)")
            print(f"ratio without interpreter start-up: {(ours_s - floor) / max(theirs_s - floor, 1e-9):.2f}")
            print(f"ratio of CPU time (all cores): {ours_cpu / max(theirs_cpu, 1e-9):.2f}")
        if args.scale:
            scale_row(Path(tmp), args.manifests, args.runs, env)
        if floor > 3 * max(floor_cpu, 0.005):
            print(
                "note: python -c pass took far longer than its CPU time: the machine is busy, wall times are disturbed"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
