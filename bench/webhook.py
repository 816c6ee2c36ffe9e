"""Admission throughput and latency of ``policyengine serve`` against a bare Starlette echo webhook.

    python bench/webhook.py [--requests N] [--concurrency C]

Both servers run as uvicorn subprocesses on 127.0.0.1 over TLS (certificates from ``webhook.tls``), one
worker each (``--workers`` for policyengine), measured in the same run by the same httpx client verifying the CA. The request is a
realistic AI workload: a Kubeflow PyTorchJob (master + 4 GPU workers, region pinning, dataset and model
annotations) in a namespace with a team and a residency zone, evaluated by all the bundled packs. The echo
webhook parses the AdmissionReview and allows it: the difference is the cost of the policies. Prints
requests/s, p50 and p99 for both and the ratios. Machines here are shared and noisy: compare ratios.

Then the background scan's effect on admission: policyengine is served twice more over an inventory of
``--background-objects`` GPU pods, without and with ``--background-interval 1s`` (a pass starts a second
after the last one ends, so a scan runs nearly all the time, at ``--background-cpu``), and wrk (with
``--latency``) drives the same review at each for ``--wrk-seconds``; prints p50/p99 of both and the last
scan's object count and duration, read from /metrics. Without wrk on the PATH that part says so.
"""

from __future__ import annotations

import argparse
import asyncio
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
    import uvicorn

    uvicorn.run(
        echo_app(), host="127.0.0.1", port=port, ssl_certfile=cert, ssl_keyfile=key, log_level="warning"
    )


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


async def load(
    url: str, tls: ssl.SSLContext, requests: int, concurrency: int, warmup: int
) -> dict[str, float]:
    import httpx

    bodies = [json.dumps(review(f"bench-{i}")).encode() for i in range(warmup + requests)]
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, verify=tls, timeout=30, limits=limits) as client:
        headers = {"content-type": "application/json"}
        for body in bodies[:warmup]:
            (await client.post("/validate", content=body, headers=headers)).raise_for_status()
        queue = iter(bodies[warmup:])

        async def worker() -> None:
            for body in queue:
                started = time.perf_counter()
                response = await client.post("/validate", content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": requests / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


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


def wrk_run(url: str, body: Path, seconds: int, connections: int) -> dict[str, float]:
    """wrk's p50 and p99 (ms) and requests/s for POSTing ``body`` to ``url``/validate."""
    script = body.with_suffix(".lua")
    script.write_text(WRK_SCRIPT)
    out = subprocess.run(
        ["wrk", "--latency", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "-s", str(script),
         url + "/validate"],
        env={**os.environ, "BENCH_BODY": str(body)}, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = {q: float(v) * _WRK_UNITS[u] for q, v, u in _WRK_LATENCY.findall(out)}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if "50" not in found or "99" not in found or rps is None or errors is not None:
        raise SystemExit(f"wrk output not understood (or errors answered):\n{out}")
    return {"p50_ms": found["50"], "p99_ms": found["99"], "rps": float(rps.group(1))}


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
            results[label] = wrk_run(url, body, args.wrk_seconds, args.concurrency)
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1, help="policyengine serve --workers (default 1)")
    parser.add_argument("--background-objects", type=int, default=2000, help="pods the scan re-evaluates")
    parser.add_argument("--background-cpu", type=float, default=0.25, help="serve --background-cpu")
    parser.add_argument("--wrk-seconds", type=int, default=15, help="wrk's duration per run (default 15)")
    parser.add_argument("--only-background", action="store_true", help="measure only the scan's effect")
    parser.add_argument("--echo", nargs=3, metavar=("PORT", "CERT", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo:
        serve_echo(int(args.echo[0]), args.echo[1], args.echo[2])
        return

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
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        pe_port, echo_port = free_port(), free_port()
        engine = subprocess.Popen(
            [sys.executable, "-m", "policyengine", "serve", "--host", "127.0.0.1", "--port", str(pe_port),
             "--tls-cert", cert, "--tls-key", key, "--inventory", str(inventory), "--log-level", "WARNING",
             "--config", str(ROOT / "examples" / "governance.yaml"),  # every org rule evaluated
             "--workers", str(args.workers)],
            env=env, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        echo = subprocess.Popen([sys.executable, __file__, "--echo", str(echo_port), cert, key], env=env)
        try:
            pe_url, echo_url = f"https://127.0.0.1:{pe_port}", f"https://127.0.0.1:{echo_port}"
            wait_ready(pe_url, tls, engine)
            wait_ready(echo_url, tls, echo)
            import httpx

            with httpx.Client(verify=tls) as client:
                verdict = client.post(pe_url + "/validate", json=review("probe")).json()["response"]
            measured = {
                "policyengine": asyncio.run(load(pe_url, tls, args.requests, args.concurrency, args.warmup)),
                "echo": asyncio.run(load(echo_url, tls, args.requests, args.concurrency, args.warmup)),
            }
        finally:
            for process in (engine, echo):
                process.terminate()
                process.wait(timeout=10)
        report(args, verdict, measured)
        background_effect(args, Path(tmp), cert, key, tls)


def report(args: argparse.Namespace, verdict: dict[str, Any], measured: dict[str, dict[str, float]]) -> None:
    size = len(json.dumps(review("x")))
    print(f"AdmissionReview: PyTorchJob, {size} bytes; verdict allowed={verdict['allowed']}")
    print(
        f"{args.requests} requests, concurrency {args.concurrency}, TLS; "
        f"policyengine {args.workers} worker(s), echo 1 worker"
    )
    for name, m in measured.items():
        print(f"  {name:13s} {m['rps']:8.1f} req/s   p50 {m['p50_ms']:7.2f} ms   p99 {m['p99_ms']:7.2f} ms")
    pe, base = measured["policyengine"], measured["echo"]
    print(
        f"  ratio          throughput {pe['rps'] / base['rps']:.2f}x of echo; "
        f"p50 {pe['p50_ms'] / base['p50_ms']:.1f}x, p99 {pe['p99_ms'] / base['p99_ms']:.1f}x of echo"
    )


if __name__ == "__main__":
    main()
