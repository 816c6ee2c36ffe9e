"""Admission throughput and latency of ``policyengine serve`` against a bare Starlette echo webhook.

    python bench/webhook.py [--seconds 8] [--connections 16] [--rate 200] [--only-background]
    python bench/webhook.py --only-workers --workers-pg postgresql://... [--workers-audit] [--workers-threads 1]
                            [--workers-no-gpus]

Both servers run on 127.0.0.1 over TLS (certificates from ``webhook.tls``), one worker each, at once.
The echo webhook runs on exactly the stack ``serve`` uses (its uvicorn options, its own TLS handshake,
the guarded h11 protocol, the asyncio loop): it parses the AdmissionReview and allows it, so the
difference is the cost of what ``serve`` adds. The request is a realistic AI workload: a Kubeflow
PyTorchJob (master + 4 GPU workers, region pinning, dataset and model annotations; 2.8 KB, and grown to
10 KB by more environment variables) in a namespace with a team and a residency zone, evaluated by all
the bundled packs and the example GovernanceConfig. wrk (a C load generator: 1 thread, ``--connections``
connections, ``--seconds`` per server and size) measures requests/s, p50 and p99 of both; the ratio
is printed from the same run (target >= 0.5x). A third server, ``serve --audit-log`` (a signed
SQLite audit log in the run's temporary folder, as the README runs it), gets the same wrk rows, and
its throughput is printed against echo's and plain serve's. Then the steady-rate mode: h2load (from nghttp2-client;
wrk has no constant-rate mode) sends ``--rate`` requests/s, evenly spaced, over 4 HTTP/1.1 connections
(opened a request interval apart) whatever the answers' latency, and the p99
policyengine adds over echo is printed (target <= 5 ms). Without wrk the
script says how to install it and exits 2; without h2load it says so and skips that row. Machines here
are shared and noisy: compare ratios from one run. Each wrk row also prints the server's CPU time
per request answered (process CPU over the run / requests), which a busy machine disturbs least.

``--only-in-process``: the CPU one admission costs serve's app itself (no TLS, HTTP parser or load
generator): the app called directly on its own event loop, for both sizes, with a SQLite audit log
(one admission at a time, then 20 at once), an in-memory recorder and no audit log.

Then the background scan's effect on admission: policyengine is served twice more over an inventory of
``--background-objects`` GPU pods, without and with ``--background-interval 1s`` (a pass starts a second
after the last one ends, so a scan runs nearly all the time, at ``--background-cpu``), and wrk (with
``--latency``) drives the same review at each for ``--wrk-seconds``; prints p50/p99 of both and the last
scan's object count and duration, read from /metrics. Without wrk on the PATH that part says so.

``--only-workers``: ``serve --workers 2`` against ``--workers 1`` (target >= 1.6x), wrk on the 2.8 KB
review, the same backends for both (PostgreSQL reservations, ``--workers-pg DSN``, as ``--workers 2`` needs;
with ``--workers-audit`` a PostgreSQL audit log too; with ``--workers-no-gpus`` the workload asks for no
GPUs, so the store is never read, which tells its round trips from the rest); it prints the cores the
servers, wrk and PostgreSQL used and the load average, since on a 2-core machine the load generator,
the database and anything else running share the workers' cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository's packages first (this file's own name is "webhook")

NAMESPACE = {
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": {
        "name": "ml-research",
        "labels": {"policyengine.io/team": "ml-research", "policyengine.io/residency": "eu"},
    },
}


def pod_template(replicas: int, gpus: int) -> dict[str, Any]:
    return {
        "replicas": replicas,
        "restartPolicy": "OnFailure",
        "template": {
            "metadata": {"labels": {"app": "llm-finetune"}},
            "spec": {
                "nodeSelector": {
                    "topology.kubernetes.io/region": "eu-west-1",
                    "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                },
                "containers": [
                    {
                        "name": "pytorch",
                        "image": "registry.acme.internal/train/llm@sha256:" + "a" * 64,
                        "args": ["--data", "s3://acme-eu-datasets/corpus/v3/", "--epochs", "3"],
                        "env": [
                            {
                                "name": "MODEL_URI",
                                "value": "s3://acme-eu-models/base/llama@sha256:" + "b" * 64,
                            },
                            {"name": "NCCL_DEBUG", "value": "INFO"},
                        ],
                        "resources": {
                            "requests": {"cpu": "16", "memory": "128Gi", "nvidia.com/gpu": str(gpus)},
                            "limits": {"cpu": "16", "memory": "128Gi", "nvidia.com/gpu": str(gpus)},
                        },
                        "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
                    }
                ],
                "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}}],
            },
        },
    }


def workload() -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {
            "name": "llm-finetune",
            "namespace": "ml-research",
            "labels": {"owner": "ml-research", "app": "llm-finetune"},
            "annotations": {
                "policyengine.io/datasets": "s3://acme-eu-datasets/corpus/v3/",
                "policyengine.io/models": "s3://acme-eu-models/base/llama@sha256:" + "b" * 64,
            },
        },
        "spec": {
            "runPolicy": {"cleanPodPolicy": "None"},
            "pytorchReplicaSpecs": {"Master": pod_template(1, 2), "Worker": pod_template(4, 2)},
        },
    }


def review(uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "kubeflow.org", "version": "v1", "kind": "PyTorchJob"},
            "resource": {"group": "kubeflow.org", "version": "v1", "resource": "pytorchjobs"},
            "name": "llm-finetune",
            "namespace": "ml-research",
            "operation": "CREATE",
            "userInfo": {"username": "alice@acme.example", "groups": ["ml-research", "system:authenticated"]},
            "object": workload(),
            "oldObject": None,
            "dryRun": False,
        },
    }


def sized_review(uid: str, size: int) -> dict[str, Any]:
    """The review grown to at least ``size`` bytes of JSON by more environment variables on the workers
    (a bigger workload of the same shape: the same policies match and decide it)."""
    body = review(uid)
    env = body["request"]["object"]["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"][
        "containers"
    ][0]["env"]
    i = 0
    while len(json.dumps(body)) < size:
        env.append({"name": f"TRAINER_OPTION_{i}", "value": f"value-{i:04d}-" + "x" * 40})
        i += 1
    return body


def echo_app() -> Any:
    """The baseline: parse the AdmissionReview, allow it."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def validate(request: Request) -> Response:
        body = json.loads(await request.body())
        answer = {
            "apiVersion": body["apiVersion"],
            "kind": "AdmissionReview",
            "response": {"uid": body["request"]["uid"], "allowed": True},
        }
        return Response(json.dumps(answer), media_type="application/json")

    async def ready(request: Request) -> Response:
        return Response("{}", media_type="application/json")

    return Starlette(routes=[Route("/validate", validate, methods=["POST"]), Route("/readyz", ready)])


def serve_echo(port: int, cert: str, key: str) -> None:
    """The echo app on exactly the stack ``serve`` runs: its uvicorn options, its TLS (the server's own
    handshake), its HTTP protocol (h11 under the connection guard) and event loop."""
    from webhook.connections import run_server
    from webhook.server import guarded_config, webhook_limits
    from webhook.settings import Settings

    settings = Settings(host="127.0.0.1", port=port, tls_cert=cert, tls_key=key, log_level="WARNING")
    run_server(guarded_config(settings, echo_app(), webhook_limits(settings)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, tls: ssl.SSLContext, process: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 60
    with httpx.Client(verify=tls, timeout=5) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"server exited with {process.returncode}")
            try:
                if client.get(url + "/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise SystemExit(f"{url} did not become ready")


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
"""
_WRK_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def gpu_pods(count: int) -> list[dict[str, Any]]:
    """Running pods of the PyTorchJob's shape, for the background scan to re-evaluate."""
    spec = pod_template(1, 2)["template"]["spec"]
    return [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"worker-{i}", "namespace": "ml-research", "uid": f"uid-{i}",
                         "annotations": workload()["metadata"]["annotations"]},
            "spec": spec,
            "status": {"phase": "Running"},
        }
        for i in range(count)
    ]  # fmt: skip


def wrk_run(url: str, body: Path, seconds: int, connections: int, threads: int = 1) -> dict[str, float]:
    """wrk's p50 and p99 (ms) and requests/s for POSTing ``body`` to ``url``/validate."""
    script = body.with_suffix(".lua")
    script.write_text(WRK_SCRIPT)
    out = subprocess.run(
        ["wrk", "--latency", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "-s", str(script),
         url + "/validate"],
        env={**os.environ, "BENCH_BODY": str(body)}, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = {q: float(v) * _WRK_UNITS[u] for q, v, u in _WRK_LATENCY.findall(out)}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if "50" not in found or "99" not in found or rps is None or total is None or errors is not None:
        raise SystemExit(f"wrk output not understood (or errors answered):\n{out}")
    return {
        "p50_ms": found["50"],
        "p99_ms": found["99"],
        "rps": float(rps.group(1)),
        "requests": int(total.group(1)),
    }


def h2load_steady(url: str, body: Path, seconds: int, rate: int, clients: int, log: Path) -> dict[str, float]:
    """A steady ``rate`` req/s whatever the answers' latency: ``clients`` HTTP/1.1 connections at ``rate /
    clients`` req/s each (h2load --rps), opened ``1 / rate`` s apart (-r 1 --rate-period) so that their
    requests interleave evenly. Opened at once, every connection sends on the same timer tick: bursts of
    ``clients`` requests at ``rate / clients`` Hz, whose p99 is the wait behind the burst, not the latency
    at a steady rate. The first second is a warm-up (h2load's --warm-up-time needs -D, which -r excludes):
    p50/p99 (ms) from the per-request log after it, and the median gap between successive request starts
    (``gap_ms``: ``1000 / rate`` when the rate is steady)."""
    log.unlink(missing_ok=True)  # h2load appends
    per_client = max(1, rate // clients)
    interval_ms = max(1, round(1000 / (per_client * clients)))  # h2load takes whole milliseconds
    out = subprocess.run(
        ["h2load", "--h1", "-c", str(clients), "--rps", str(per_client),
         "-r", "1", "--rate-period", f"{interval_ms}ms", "-n", str(per_client * clients * (seconds + 1)),
         "-d", str(body), "-H", "content-type: application/json", "--log-file", str(log), url + "/validate"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    first = min((int(r[0]) for r in rows), default=0)
    rows = [r for r in rows if int(r[0]) >= first + 1_000_000]  # after the warm-up second
    ok = sorted(int(r[2]) / 1000 for r in rows if r[1] == "200")
    if not ok or len(ok) != len(rows):
        raise SystemExit(f"h2load: {len(rows) - len(ok)} of {len(rows)} requests failed:\n{out}")
    starts = sorted(int(r[0]) for r in rows)  # microseconds
    return {
        "p50_ms": statistics.median(ok),
        "p99_ms": ok[min(len(ok) - 1, int(len(ok) * 0.99))],
        "rps": len(ok) / max(1e-9, (starts[-1] - starts[0]) / 1e6),
        "gap_ms": statistics.median(b - a for a, b in itertools.pairwise(starts)) / 1000,
    }


def scan_metrics(url: str, tls: ssl.SSLContext) -> dict[str, float]:
    import httpx

    from webhook.prometheus import parse_samples

    text = httpx.get(url + "/metrics", verify=tls).text
    names = ("policyengine_background_objects", "policyengine_background_scan_seconds")
    return {name: value for name, _, value in parse_samples(text) if name in names}


def background_effect(args: argparse.Namespace, tmp: Path, cert: str, key: str, tls: ssl.SSLContext) -> None:
    """Admission p99 under wrk, without and with a background scan running, same inventory."""
    import yaml

    if shutil.which("wrk") is None:
        print("background scan effect: not measured (wrk is not on the PATH)")
        return
    inventory = tmp / "background-inventory.yaml"
    inventory.write_text(yaml.safe_dump_all([NAMESPACE, *gpu_pods(args.background_objects)]))
    body = tmp / "review.json"
    body.write_text(json.dumps(review("wrk")))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results: dict[str, dict[str, float]] = {}
    for label, extra in (
        ("no scan", []),
        ("scan running", ["--background-interval", "1", "--background-cpu", str(args.background_cpu)]),
    ):
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "policyengine", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--tls-cert", cert, "--tls-key", key, "--inventory", str(inventory), "--log-level", "WARNING",
             *extra],
            env=env, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = f"https://127.0.0.1:{port}"
            wait_ready(url, tls, process)
            if extra:  # the first pass under way before measuring
                deadline = time.monotonic() + 120
                while not scan_metrics(url, tls) and time.monotonic() < deadline:
                    time.sleep(0.5)
            results[label] = wrk_run(url, body, args.wrk_seconds, args.concurrency, threads=2)
            results[label].update(scan_metrics(url, tls))
        finally:
            process.terminate()
            process.wait(timeout=10)
    print(
        f"background scan effect: wrk {args.wrk_seconds}s, {args.concurrency} connections, "
        f"{args.background_objects} pods re-evaluated per pass at {args.background_cpu} of a core"
    )
    for label, m in results.items():
        scan = ""
        if "policyengine_background_objects" in m:
            scan = (
                f"   last pass {m['policyengine_background_objects']:.0f} objects in "
                f"{m['policyengine_background_scan_seconds']:.2f} s"
            )
        print(
            f"  {label:13s} {m['rps']:8.1f} req/s   p50 {m['p50_ms']:7.2f} ms   p99 {m['p99_ms']:7.2f} ms{scan}"
        )
    base, loaded = results["no scan"], results["scan running"]
    print(f"  ratio          p99 {loaded['p99_ms'] / base['p99_ms']:.2f}x with a scan running")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and every process under it, as /proc has them now."""
    tick = os.sysconf("SC_CLK_TCK")
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
    return total


def idle_seconds() -> float:
    """Idle (and I/O wait) CPU seconds of the whole machine, summed over its cores, from /proc/stat."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def postgres_cpu() -> float:
    """CPU seconds of every postgres process on the machine (0 without any)."""
    found = 0.0
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "postgres":
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                found += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


def workers_row(
    args: argparse.Namespace, tmp: Path, cert: str, key: str, inventory: Path, tls: ssl.SSLContext
) -> None:
    """``serve --workers 2`` against ``--workers 1``: wrk (``--workers-threads`` threads, ``--connections``,
    ``--seconds``) on the 2.8 KB review, the same backends for both (a fresh PostgreSQL schema for the
    reservations and, with ``--workers-audit``, the audit log).
    Prints req/s of both, the ratio (target >= 1.6x) and the cores the servers, wrk and PostgreSQL used
    during each run: on a 2-core machine the load generator and the database take their share of the
    cores the workers would use."""
    import resource

    body = tmp / "review-0.json"
    body.write_text(json.dumps(review_without_gpus("wrk") if args.workers_no_gpus else review("wrk")))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with shared_backend(args.workers_pg, args.workers_audit, tmp) as extra:
        results: dict[int, dict[str, float]] = {}
        for workers in (1, 2):
            port = free_port()
            process = subprocess.Popen(
                [sys.executable, "-m", "policyengine", "serve", "--host", "127.0.0.1", "--port", str(port),
                 "--tls-cert", cert, "--tls-key", key, "--inventory", str(inventory), "--log-level", "WARNING",
                 "--config", str(ROOT / "examples" / "governance.yaml"), "--workers", str(workers), *extra],
                env=env, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                url = f"https://127.0.0.1:{port}"
                wait_ready(url, tls, process)
                wrk_run(url, body, 2, args.connections, threads=args.workers_threads)  # warm every worker
                load = os.getloadavg()[0]  # the machine's other load, as the run starts
                before = (
                    cpu_seconds(process.pid),
                    resource.getrusage(resource.RUSAGE_CHILDREN),
                    postgres_cpu(),
                    idle_seconds(),
                )
                started = time.monotonic()
                m = wrk_run(url, body, args.seconds, args.connections, threads=args.workers_threads)
                wall = time.monotonic() - started
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                m["serve_cores"] = (cpu_seconds(process.pid) - before[0]) / wall
                m["wrk_cores"] = (
                    after.ru_utime + after.ru_stime - before[1].ru_utime - before[1].ru_stime
                ) / wall
                m["pg_cores"] = (postgres_cpu() - before[2]) / wall
                m["idle_cores"] = (idle_seconds() - before[3]) / wall
                m["load"] = load
                results[workers] = m
            finally:
                process.terminate()
                process.wait(timeout=20)
    backend = "PostgreSQL reservations and " + ("audit log" if args.workers_audit else "no audit log")
    shown = (
        "review of a workload without GPUs (the store is never read)" if args.workers_no_gpus else "review"
    )
    print(
        f"serve --workers 2 vs 1: wrk -t{args.workers_threads} -c{args.connections} -d{args.seconds}s, TLS, "
        f"2.8 KB {shown}, {backend}, {os.cpu_count()} cores"
    )
    for workers, m in results.items():
        print(
            f"  {workers} worker(s)   {m['rps']:8.1f} req/s   p50 {m['p50_ms']:7.2f} ms   p99 {m['p99_ms']:7.2f} ms"
            f"   cores used: serve {m['serve_cores']:.2f}, wrk {m['wrk_cores']:.2f}, postgres {m['pg_cores']:.2f},"
            f" idle {m['idle_cores']:.2f}"
            f"   ({m['rps'] / max(m['serve_cores'], 0.01):.0f} req/s per serve core; load average {m['load']:.1f})"
        )
    ratio = results[2]["rps"] / results[1]["rps"]
    print(f"  ratio          {ratio:.2f}x (target >= 1.6x: {'met' if ratio >= 1.6 else 'not met'})")
    two = results[2]
    if two["serve_cores"] < 1.6 and two["idle_cores"] < 0.2:
        print(
            f"  note           2 workers got {two['serve_cores']:.2f} cores of {os.cpu_count()} and no core was "
            "idle: the machine's other load (its load average), wrk and PostgreSQL took the rest"
        )
    elif two["serve_cores"] < 1.6:
        print(
            f"  note           2 workers got {two['serve_cores']:.2f} cores of {os.cpu_count()} with "
            f"{two['idle_cores']:.2f} idle: the workers waited on something other than a core"
        )


def review_without_gpus(uid: str) -> dict[str, Any]:
    """The review with no GPU asked for: nothing to reserve, so the reservation store is not read. The
    workers row with it tells the store's round trips from the rest of a request."""
    body = review(uid)
    for spec in body["request"]["object"]["spec"]["pytorchReplicaSpecs"].values():
        resources = spec["template"]["spec"]["containers"][0]["resources"]
        for bound in resources.values():
            del bound["nvidia.com/gpu"]
    return body


@contextlib.contextmanager
def shared_backend(dsn: str, audit: bool, tmp: Path) -> Iterator[list[str]]:
    """serve's flags for the workers row: reservations (and with ``audit`` the audit log) in a fresh
    PostgreSQL schema, dropped afterwards."""
    import uuid
    from urllib.parse import quote

    import psycopg

    keys = tmp / "audit-keys"
    subprocess.run(  # a key is cheap; used only with ``audit``
        [sys.executable, "-m", "policyengine", "audit", "keygen", "--origin", "bench.example/audit", "--out", str(keys)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True, capture_output=True,
    )  # fmt: skip
    schema = "bench_" + uuid.uuid4().hex[:12]
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
    scoped = f"{dsn}{'&' if '?' in dsn else '?'}options={quote(f'-csearch_path={schema}')}"
    try:
        logged = ["--audit-log", scoped, "--audit-key", str(keys / "audit.key")] if audit else []
        yield [*logged, "--reservations", scoped]
    finally:
        with psycopg.connect(dsn, autocommit=True) as con:
            con.execute(f"DROP SCHEMA {schema} CASCADE")


SIZES = (("2.8 KB", 0), ("10 KB", 10 * 1024))  # 0: the review as built, no padding
AUDITED_SERVE = "--audit-log"  # the wrk row of serve with a SQLite audit log
AUDITED = ", SQLite audit log"  # the in-process row of serve --audit-log (the product's main command)
INSTALL_WRK = "wrk is not on the PATH: install it (Debian/Ubuntu: apt-get install wrk)"
INSTALL_H2LOAD = (
    "steady-rate latency: not measured (h2load is not on the PATH; wrk has no constant-rate mode): "
    "install it with apt-get install nghttp2-client"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--seconds", type=int, default=8, help="wrk's duration per server and size")
    parser.add_argument("--rate", type=int, default=200, help="steady-rate mode: requests/s (default 200)")
    parser.add_argument("--rate-seconds", type=int, default=10, help="steady-rate mode: duration")
    parser.add_argument("--workers", type=int, default=1, help="policyengine serve --workers (default 1)")
    parser.add_argument("--concurrency", type=int, default=8, help="wrk connections of the background part")
    parser.add_argument("--background-objects", type=int, default=2000, help="pods the scan re-evaluates")
    parser.add_argument("--background-cpu", type=float, default=0.25, help="serve --background-cpu")
    parser.add_argument("--wrk-seconds", type=int, default=15, help="background part: wrk's duration")
    parser.add_argument("--only-background", action="store_true", help="measure only the scan's effect")
    parser.add_argument("--no-background", action="store_true", help="skip the scan's effect")
    parser.add_argument("--only-workers", action="store_true", help="measure only serve --workers 2 vs 1")
    parser.add_argument(
        "--only-in-process",
        action="store_true",
        help="measure only the app's CPU per admission, called in this process (no TLS, HTTP or client)",
    )
    parser.add_argument("--workers-threads", type=int, default=1, help="workers row: wrk threads (default 1)")
    parser.add_argument(
        "--workers-no-gpus",
        action="store_true",
        help="workers row: a review of a workload without GPUs, which never reads the reservation store",
    )
    parser.add_argument(
        "--workers-pg",
        metavar="DSN",
        default=os.environ.get("POLICYENGINE_TEST_PG"),
        help="workers row: PostgreSQL for the reservations (--workers 2 needs a shared store) and, with "
        "--workers-audit, the audit log, for both runs (default: $POLICYENGINE_TEST_PG)",
    )
    parser.add_argument(
        "--workers-audit", action="store_true", help="workers row: a PostgreSQL audit log too"
    )
    parser.add_argument("--echo", nargs=3, metavar=("PORT", "CERT", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo:
        serve_echo(int(args.echo[0]), args.echo[1], args.echo[2])
        return
    if args.only_in_process:
        in_process_row()
        return
    if shutil.which("wrk") is None:
        print(INSTALL_WRK, file=sys.stderr)
        sys.exit(2)

    import yaml

    from webhook import tls as certs

    with tempfile.TemporaryDirectory() as tmp:
        issued = certs.issue(["127.0.0.1"])
        paths = certs.write(issued, Path(tmp))
        ca, cert, key = (str(p) for p in paths)
        inventory = Path(tmp) / "inventory.yaml"
        inventory.write_text(yaml.safe_dump(NAMESPACE))
        tls = ssl.create_default_context(cafile=ca)
        if args.only_background:
            background_effect(args, Path(tmp), cert, key, tls)
            return
        if args.only_workers:
            if not args.workers_pg:
                print(
                    "--only-workers needs --workers-pg DSN (a PostgreSQL to share reservations)",
                    file=sys.stderr,
                )
                sys.exit(2)
            workers_row(args, Path(tmp), cert, key, inventory, tls)
            return
        compare(args, Path(tmp), cert, key, inventory, tls)
        if not args.no_background:
            background_effect(args, Path(tmp), cert, key, tls)


def compare(
    args: argparse.Namespace, tmp: Path, cert: str, key: str, inventory: Path, tls: ssl.SSLContext
) -> None:
    """Both servers up at once; per size, wrk against echo then policyengine; then the steady rate."""
    from audit.keys import keygen

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    pe_port, echo_port, audited_port = free_port(), free_port(), free_port()

    def serve(port: int, *extra: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "policyengine", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--tls-cert", cert, "--tls-key", key, "--inventory", str(inventory), "--log-level", "WARNING",
             "--config", str(ROOT / "examples" / "governance.yaml"),  # every org rule evaluated
             "--workers", str(args.workers), *extra],
            env=env, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    engine = serve(pe_port)
    # serve as the README runs it: every decision in a signed SQLite audit log before it is answered
    audit_key = keygen("bench.example/audit", tmp / "audit-keys").key
    audited = serve(audited_port, "--audit-log", str(tmp / "audit.db"), "--audit-key", str(audit_key))
    echo = subprocess.Popen([sys.executable, __file__, "--echo", str(echo_port), cert, key], env=env)
    urls = {
        "policyengine": f"https://127.0.0.1:{pe_port}",
        "echo": f"https://127.0.0.1:{echo_port}",
        AUDITED_SERVE: f"https://127.0.0.1:{audited_port}",
    }
    rows: list[tuple[str, int, str, dict[str, dict[str, float]]]] = []
    try:
        wait_ready(urls["policyengine"], tls, engine)
        wait_ready(urls[AUDITED_SERVE], tls, audited)
        wait_ready(urls["echo"], tls, echo)
        import httpx

        for label, size in SIZES:
            payload = sized_review("wrk", size) if size else review("wrk")
            body = tmp / f"review-{size}.json"
            body.write_text(json.dumps(payload))
            verdict = httpx.post(urls["policyengine"] + "/validate", json=payload, verify=tls).json()
            allowed = f"allowed={verdict['response']['allowed']}"
            measured = {
                name: cpu_per_request(process, urls[name], body, args)
                for name, process in (("echo", echo), ("policyengine", engine), (AUDITED_SERVE, audited))
            }
            rows.append((label, body.stat().st_size, allowed, measured))
        steady = None
        if shutil.which("h2load") is not None:
            body = tmp / "review-0.json"
            steady = {
                name: h2load_steady(
                    urls[name], body, args.rate_seconds, args.rate, clients=4, log=tmp / f"{name}.h2load.log"
                )
                for name in ("echo", "policyengine")
            }
    finally:
        for process in (engine, audited, echo):
            process.terminate()
            process.wait(timeout=10)
    report(args, rows, steady)


def cpu_per_request(
    process: subprocess.Popen[bytes], url: str, body: Path, args: argparse.Namespace
) -> dict[str, float]:
    """wrk's figures plus the server's CPU time per request answered (``cpu_ms``): what it spent, the
    figure a shared machine disturbs least (throughput there depends on what else gets the cores)."""
    before = cpu_seconds(process.pid)
    measured = wrk_run(url, body, args.seconds, args.connections)
    spent = cpu_seconds(process.pid) - before
    measured["cpu_ms"] = spent / max(1, measured["requests"]) * 1e3
    return measured


def in_process_row(admissions: int = 20, rounds: int = 25) -> None:
    """The CPU one admission costs the app itself: serve's app (every pack, the example config, the
    bench's namespace as inventory) called directly on its own event loop, ``admissions`` at a time; the
    process CPU per admission (every thread: the audit writer's too), least of ``rounds`` (the figure
    noise on a shared machine moves least: waiting for a core costs no CPU), and the mean of them all
    (what the wrk rows' CPU per request compares with). The heap is set apart after the policy set is
    loaded, as in serve's process (``webhook.heap``). First with a real SQLite
    audit log in a temporary folder, as ``serve --audit-log`` runs (each admission answered once its
    entry and checkpoint are durable): one after the other, so each is a batch of its own, then
    ``admissions`` in flight at once, as under load. Then an in-memory recorder (called in a thread, the
    recorder port's contract for a recorder that may block), and no audit log, as the wrk rows run."""
    from starlette.testclient import TestClient

    from audit.keys import keygen
    from policyengine.engine import Engine
    from policyengine.inventory import from_documents
    from policyengine.policyset import load_policy_set
    from webhook.app import WebhookServices, create_app
    from webhook.audit_recorder import AuditRecorder
    from webhook.inventories import StaticInventory
    from webhook.policies import LivePolicies
    from webhook.recorder import DecisionRecorder, MemoryRecorder, NullRecorder
    from webhook.telemetry import build_telemetry

    def engine() -> Engine:
        config = [str(ROOT / "examples" / "governance.yaml")]
        return Engine(load_policy_set([], config_paths=config, include_bundled=True))

    policies = LivePolicies(engine)
    policies.serve(engine())

    def app_recording(recorder: DecisionRecorder) -> Any:
        services = WebhookServices(
            policies=policies,
            inventory=StaticInventory(from_documents([NAMESPACE])),
            telemetry=build_telemetry({}),
            recorder=recorder,
            reload_interval=None,
            freeze_heap=True,  # as serve's process: the policy set kept out of full collections
        )
        return create_app(services)

    audit_dir = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    keys = keygen("bench.example/audit", audit_dir / "keys")
    audited = AuditRecorder.open(str(audit_dir / "audit.db"), str(keys.key))
    apps = {
        AUDITED: app_recording(audited),
        ", in-memory recorder": app_recording(MemoryRecorder()),
        ", no audit log": app_recording(NullRecorder()),
    }

    async def admit(body: bytes) -> None:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "https", "path": "/validate", "raw_path": b"/validate", "query_string": b"",
            "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 443),
        }  # fmt: skip
        await app(scope, receive, send)
        if sent[0]["status"] != 200:
            raise SystemExit(f"the app answered {sent}")

    async def least(body: bytes, batches: int) -> float:
        return (await least_and_mean(body, batches))[0]

    async def least_and_mean(body: bytes, batches: int) -> tuple[float, float]:
        """The least batch's CPU per admission, and the mean over every batch: the mean keeps what
        the least leaves out (the collector's passes, a batch whose caches another process emptied),
        as the wrk rows' CPU per request does."""
        best, total = float("inf"), 0.0
        for _ in range(batches):
            started = time.process_time()
            for _ in range(admissions):
                await admit(body)
            spent = time.process_time() - started
            best, total = min(best, spent / admissions), total + spent
        return best, total / (batches * admissions)

    async def least_together(body: bytes, batches: int) -> float:
        """As ``least``, the ``admissions`` in flight at once: the audit log's group commit batches them."""
        best = float("inf")
        for _ in range(batches):
            started = time.process_time()
            await asyncio.gather(*(admit(body) for _ in range(admissions)))
            best = min(best, (time.process_time() - started) / admissions)
        return best

    print(
        f"in process: serve's app called directly, CPU per admission (least of {rounds} x {admissions}; "
        "mean of all)"
    )
    for recording, app in apps.items():  # ``admit`` calls the app of this turn
        with TestClient(app) as client:  # runs the app's lifespan; the admissions bypass the client
            for label, size in SIZES:
                body = json.dumps(sized_review("cpu", size) if size else review("cpu")).encode()
                client.portal.call(least, body, 2)  # warm: generated CEL, caches
                cpu, mean = client.portal.call(least_and_mean, body, rounds)
                print(
                    f"  PyTorchJob review {label:7s} {cpu * 1e3:7.3f} ms CPU per admission{recording} "
                    f"(mean {mean * 1e3:.3f})"
                )
                if app is apps[AUDITED]:  # one entry per batch above; under load batches hold several
                    cpu = client.portal.call(least_together, body, rounds)
                    print(
                        f"  PyTorchJob review {label:7s} {cpu * 1e3:7.3f} ms CPU per admission{recording}, "
                        f"{admissions} at once"
                    )
    shutil.rmtree(audit_dir, ignore_errors=True)


def report(
    args: argparse.Namespace,
    rows: list[tuple[str, int, str, dict[str, dict[str, float]]]],
    steady: dict[str, dict[str, float]] | None,
) -> None:
    print(
        f"wrk -t1 -c{args.connections} -d{args.seconds}s, TLS; policyengine serve {args.workers} worker(s), "
        "echo 1 worker, same uvicorn stack"
    )
    for label, size, verdict, measured in rows:
        print(f"PyTorchJob review {label} ({size} bytes; policyengine {verdict})")
        for name, m in measured.items():
            print(
                f"  {name:13s} {m['rps']:8.1f} req/s   p50 {m['p50_ms']:7.2f} ms   p99 {m['p99_ms']:7.2f} ms"
                f"   CPU {m['cpu_ms']:6.3f} ms/request"
            )
        pe, base = measured["policyengine"], measured["echo"]
        ratio = pe["rps"] / base["rps"]
        print(
            f"  ratio          throughput {ratio:.2f}x of echo (target >= 0.5x: {'met' if ratio >= 0.5 else 'not met'}); "
            f"p50 {pe['p50_ms'] / base['p50_ms']:.1f}x, p99 {pe['p99_ms'] / base['p99_ms']:.1f}x of echo; "
            f"CPU per request {pe['cpu_ms'] / base['cpu_ms']:.1f}x of echo's"
        )
        if AUDITED_SERVE in measured:
            audited = measured[AUDITED_SERVE]
            print(
                f"  audited        throughput {audited['rps'] / base['rps']:.2f}x of echo, "
                f"{audited['rps'] / pe['rps']:.2f}x of serve without an audit log; "
                f"CPU per request {audited['cpu_ms'] / base['cpu_ms']:.1f}x of echo's"
            )
    if steady is None:
        print(INSTALL_H2LOAD)
        return
    print(
        f"steady rate: h2load --h1 -c4 --rps {max(1, args.rate // 4)}, connections opened {1000 / args.rate:.1f} ms apart "
        f"(= {args.rate} req/s, evenly spaced), {args.rate_seconds}s after 1s of warm-up, 2.8 KB review"
    )
    for name, m in steady.items():
        print(
            f"  {name:13s} {m['rps']:8.1f} req/s   p50 {m['p50_ms']:7.2f} ms   p99 {m['p99_ms']:7.2f} ms"
            f"   median gap between requests {m['gap_ms']:.2f} ms"
        )
    added = steady["policyengine"]["p99_ms"] - steady["echo"]["p99_ms"]
    print(f"  added p99      {added:.2f} ms over echo (target <= 5 ms: {'met' if added <= 5 else 'not met'})")


if __name__ == "__main__":
    main()
