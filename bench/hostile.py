"""Hostile requests against ``policyengine serve``: time and peak memory of each next to a normal review,
and how many slow clients the server survives under the deployment's memory limit.

    python bench/hostile.py [--memory-mib 512] [--slow-clients 3000] [--only NAME ...]

One server (``serve``, default limits, one worker) runs on 127.0.0.1 over TLS (certificates from
``webhook.tls``) inside a memory cgroup of ``--memory-mib`` when the machine lets us make one (cgroup v1
or v2, as root), else under ``prlimit --as`` (address space, a cruder bound), as deploy/deployment.yaml
limits it. For each request class the server's peak RSS is reset (``/proc/PID/clear_refs``), the class
is sent (httpx, verifying the CA), and the time, the answers and the new peak are printed next to the
normal review's; each class gets a fresh server, so that work one leaves running in the background is
not charged to the next, and a server killed by a class is reported as such. Then
``--slow-clients`` connections finish their TLS handshake and send nothing (the slowloris of the issue),
while ``wrk`` (if installed: ``apt-get install -y wrk``) or httpx sends normal reviews: the bench prints
how many slow connections were held at once, whether the server survived, its peak memory, and the
normal reviews' latency and errors during the attack. Machines here are shared and noisy: compare
classes within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import re
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_spec = importlib.util.spec_from_file_location("bench_webhook", ROOT / "bench" / "webhook.py")
assert _spec and _spec.loader
base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base)  # the normal review, the namespace, free_port (bench/webhook.py)

MiB = 1024 * 1024


# -- the request classes ---------------------------------------------------------------------------------


def normal() -> dict[str, Any]:
    return base.review("normal")  # type: ignore[no-any-return]


def gpu_quantity() -> dict[str, Any]:
    body = base.review("gpu-quantity")
    for spec in body["request"]["object"]["spec"]["pytorchReplicaSpecs"].values():
        resources = spec["template"]["spec"]["containers"][0]["resources"]
        resources["limits"]["nvidia.com/gpu"] = resources["requests"]["nvidia.com/gpu"] = "1e30000000"
    return body  # type: ignore[no-any-return]


def kubeflow_role_name(length: int = 100_000) -> dict[str, Any]:
    """A replica role named with ``length`` bytes, over a template of 4 containers with 8 env vars each:
    every field path under the role starts with its name."""
    body = base.review("role-name")
    specs = body["request"]["object"]["spec"]["pytorchReplicaSpecs"]
    worker = specs.pop("Worker")
    container = worker["template"]["spec"]["containers"][0]
    container["env"] = [{"name": f"V{i}", "value": "x"} for i in range(8)]
    worker["template"]["spec"]["containers"] = [{**container, "name": f"c{n}"} for n in range(4)]
    specs["W" * length] = worker
    return body  # type: ignore[no-any-return]


def large_pod(size: int = int(2.76 * MiB)) -> dict[str, Any]:
    """A Pod of ``size`` bytes: 20 containers with long env lists (what a generated job may carry)."""
    env = [{"name": f"VAR_{i}", "value": "v" * 80} for i in range(size // (20 * 110))]
    containers = [{"name": f"c{n}", "image": "registry.acme.internal/app:1.0", "env": env} for n in range(20)]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "large", "namespace": "ml-research", "labels": {"owner": "ml-research"}},
        "spec": {"containers": containers},
    }
    return _review_of(pod, "pods", "large")


def deep_nesting(depth: int = 99) -> dict[str, Any]:
    body = base.review("deep")
    nested: Any = "x"
    for _ in range(depth - 8):  # the review itself nests ~8 levels above the field
        nested = [nested]
    body["request"]["object"]["metadata"]["annotations"]["deep"] = json.dumps(nested)
    body["request"]["object"]["spec"]["nested"] = nested
    return body  # type: ignore[no-any-return]


def _review_of(obj: dict[str, Any], resource_name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": obj["kind"]},
            "resource": {"group": "", "version": "v1", "resource": resource_name},
            "name": obj["metadata"]["name"],
            "namespace": obj["metadata"]["namespace"],
            "operation": "CREATE",
            "userInfo": {"username": "mallory"},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
        },
    }


@dataclass
class Case:
    name: str
    body: Callable[[], Any]  # a review (JSON value) or raw bytes
    copies: int = 1  # sent concurrently


CASES = [
    Case("normal review", normal),
    Case("GPU quantity 1e30000000", gpu_quantity),
    Case("Kubeflow role name 100 KB", kubeflow_role_name),
    Case("2.76 MiB review x4 concurrent", large_pod, copies=4),
    Case("nesting 99 deep (valid)", deep_nesting),
    Case("nesting 50,000 deep", lambda: b"[" * 50_000),
    Case(
        "number 1e400",
        lambda: b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":1e400}',
    ),
    Case("body over 3 MiB", lambda: b" " * (3 * MiB + 1)),
]


# -- the server, in a memory limit ------------------------------------------------------------------------


class Limit:
    """A memory cgroup (v1 or v2) of the given size, or None when this machine does not let us make one."""

    def __init__(self, mib: int) -> None:
        self.mib = mib
        self.path: Path | None = None
        name = f"policyengine-bench-{os.getpid()}"
        for root, limit_file in (
            ("/sys/fs/cgroup/memory", "memory.limit_in_bytes"),
            ("/sys/fs/cgroup", "memory.max"),
        ):
            try:
                path = Path(root) / name
                path.mkdir()
                (path / limit_file).write_text(str(mib * MiB))
                self.path = path
                break
            except OSError:
                with contextlib.suppress(OSError):
                    (Path(root) / name).rmdir()
        self.kind = f"memory cgroup of {mib} MiB" if self.path else f"prlimit --as {mib} MiB (no cgroup)"

    def command(self, argv: list[str]) -> list[str]:
        if self.path is None and shutil.which("prlimit"):
            return ["prlimit", f"--as={self.mib * MiB}", "--", *argv]
        return argv

    def enter(self, pid: int) -> None:
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(str(pid))

    def oom_killed(self) -> bool:
        if self.path is None:
            return False
        for name in ("memory.oom_control", "memory.events"):
            with contextlib.suppress(OSError):
                match = re.search(r"oom_kill (\d+)", (self.path / name).read_text())
                return bool(match and int(match.group(1)))
        return False

    def remove(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.rmdir()


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    url: str
    port: int


class Servers:
    def __init__(
        self, tmp: Path, limit: Limit, tls: ssl.SSLContext, cert: str, key: str, inventory: Path
    ) -> None:
        self.tmp, self.limit, self.tls, self.cert, self.key, self.inventory = (
            tmp,
            limit,
            tls,
            cert,
            key,
            inventory,
        )
        self.current: Running | None = None

    def start(self) -> Running:
        port = base.free_port()
        argv = [sys.executable, "-m", "policyengine", "serve", "--host", "127.0.0.1", "--port", str(port),
                "--tls-cert", self.cert, "--tls-key", self.key, "--inventory", str(self.inventory),
                "--log-level", "WARNING", "--config", str(ROOT / "examples" / "governance.yaml")]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "2"}
        log = (self.tmp / "server.log").open("ab")
        process = subprocess.Popen(self.limit.command(argv), env=env, stderr=log, stdout=subprocess.DEVNULL)
        self.limit.enter(process.pid)
        running = Running(process, f"https://127.0.0.1:{port}", port)
        base.wait_ready(running.url, self.tls, process)
        self.current = running
        return running

    def stop(self) -> None:
        if self.current is not None and self.current.process.poll() is None:
            self.current.process.terminate()
            try:
                self.current.process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # busy in a computation that holds the GIL
                self.current.process.kill()
                self.current.process.wait()


def rss_peak_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS


# -- measuring one class ----------------------------------------------------------------------------------


async def send(url: str, tls: ssl.SSLContext, payload: bytes, copies: int) -> list[str]:
    import httpx

    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, verify=tls, timeout=120) as client:

        async def one() -> str:
            try:
                response = await client.post("/validate", content=payload, headers=headers)
            except httpx.HTTPError as err:
                return type(err).__name__
            if response.status_code != 200:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    return f"{response.status_code} {response.json()['error']['code']}"
                return str(response.status_code)
            answer = response.json()["response"]
            return "allowed" if answer["allowed"] else "denied"

        return list(await asyncio.gather(*(one() for _ in range(copies))))


def measure(servers: Servers, case: Case) -> str:
    # A fresh server per class: work a class leaves running in the background (an evaluation past its
    # deadline cannot be interrupted) must not be charged to the next one.
    servers.stop()
    running = servers.start()
    pid = running.process.pid
    made = case.body()
    payload = made if isinstance(made, bytes) else json.dumps(made).encode()
    before = rss_mib(pid)
    reset_peak(pid)
    started = time.perf_counter()
    answers = asyncio.run(send(running.url, servers.tls, payload, case.copies))
    seconds = time.perf_counter() - started
    alive = running.process.poll() is None
    peak = rss_peak_mib(pid) if alive else float("nan")
    outcome = ", ".join(f"{n}x {a}" for a, n in _counts(answers).items())
    if not alive:
        outcome += f"; server DIED (exit {running.process.returncode}{', OOM' if servers.limit.oom_killed() else ''})"
    size = len(payload) / 1024
    return (
        f"  {case.name:32s} {size:9.0f} KiB  {seconds:8.3f} s  peak RSS {peak:7.1f} MiB "
        f"(+{peak - before:6.1f})  {outcome}"
    )


def _counts(items: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


# -- slow clients under the memory limit ------------------------------------------------------------------


@contextlib.contextmanager
def normal_load(url: str, tls_ca: str, seconds: int, tmp: Path) -> Iterator[dict[str, str]]:
    """Normal reviews during the block (wrk when installed, else httpx), summarised afterwards."""
    result: dict[str, str] = {}
    body = tmp / "normal.json"
    body.write_text(json.dumps(normal()))
    wrk = shutil.which("wrk")
    if wrk:
        script = tmp / "post.lua"
        script.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.body = io.open("{body}"):read("*a")\n'
        )
        process = subprocess.Popen(
            [wrk, "-t1", "-c4", f"-d{seconds}s", "--timeout", "10s", "--latency", "-s", str(script), url + "/validate"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            yield result
        finally:
            out, _ = process.communicate(timeout=seconds + 60)
            result["tool"] = "wrk -c4 (TLS, no CA check)"
            for key, pattern in {
                "p50": r"50%\s+(\S+)",
                "p99": r"99%\s+(\S+)",
                "requests": r"(\d+) requests in",
                "non-2xx": r"Non-2xx or 3xx responses: (\d+)",
                "socket errors": r"Socket errors: (.*)",
            }.items():
                match = re.search(pattern, out)
                result[key] = match.group(1) if match else "0"
        return
    stop = time.monotonic() + seconds
    latencies: list[float] = []
    errors = 0

    async def drive() -> None:
        nonlocal errors
        import httpx

        async with httpx.AsyncClient(
            base_url=url, verify=ssl.create_default_context(cafile=tls_ca), timeout=10
        ) as c:
            while time.monotonic() < stop:
                t = time.perf_counter()
                try:
                    r = await c.post(
                        "/validate", content=body.read_bytes(), headers={"content-type": "application/json"}
                    )
                    r.raise_for_status()
                    latencies.append(time.perf_counter() - t)
                except Exception:
                    errors += 1

    import threading

    thread = threading.Thread(target=lambda: asyncio.run(drive()))
    thread.start()
    try:
        yield result
    finally:
        thread.join()
        latencies.sort()
        result.update(
            tool="httpx, 1 connection",
            requests=str(len(latencies) + errors),
            errors=str(errors),
            p50=f"{latencies[len(latencies) // 2] * 1000:.1f}ms" if latencies else "-",
            p99=f"{latencies[int(len(latencies) * 0.99)] * 1000:.1f}ms" if latencies else "-",
        )


async def slow_clients(port: int, tls: ssl.SSLContext, count: int, hold: float) -> dict[str, int]:
    """``count`` connections that finish the TLS handshake and send nothing; how many the server holds."""
    stats = {"opened": 0, "failed": 0, "closed_by_server": 0, "held_at_once": 0}
    open_now = 0
    gate = asyncio.Semaphore(200)  # handshakes in progress at once

    async def one() -> None:
        nonlocal open_now
        async with gate:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port, ssl=tls, server_hostname="127.0.0.1"), 30
                )
            except (OSError, TimeoutError, ssl.SSLError):
                stats["failed"] += 1
                return
        stats["opened"] += 1
        open_now += 1
        stats["held_at_once"] = max(stats["held_at_once"], open_now)
        try:
            if await asyncio.wait_for(reader.read(1), hold) == b"":
                stats["closed_by_server"] += 1
        except (TimeoutError, OSError, ssl.SSLError):
            pass
        finally:
            open_now -= 1
            writer.transport.abort()

    await asyncio.gather(*(one() for _ in range(count)))
    return stats


def slow_client_attack(servers: Servers, count: int, seconds: int, ca: str) -> list[str]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 256)), hard))
    servers.stop()
    running = servers.start()
    pid = running.process.pid
    reset_peak(pid)
    before = rss_mib(pid)
    with normal_load(running.url, ca, seconds, servers.tmp) as load:
        stats = asyncio.run(slow_clients(running.port, servers.tls, count, seconds))
    alive = running.process.poll() is None
    peak = rss_peak_mib(pid) if alive else float("nan")
    fate = (
        "survived"
        if alive
        else f"DIED (exit {running.process.returncode}{', OOM' if servers.limit.oom_killed() else ''})"
    )
    return [
        f"  {count} slow TLS clients (handshake, then nothing) for up to {seconds} s: server {fate}; "
        f"peak RSS {peak:.1f} MiB (+{peak - before:.1f})",
        f"    connections opened {stats['opened']}, held at once {stats['held_at_once']}, "
        f"closed by the server {stats['closed_by_server']}, refused/failed {stats['failed']}",
        f"    normal reviews meanwhile ({load.get('tool')}): {load.get('requests')} sent, p50 {load.get('p50')}, "
        f"p99 {load.get('p99')}, non-2xx {load.get('non-2xx', load.get('errors', '0'))}, "
        f"socket errors {load.get('socket errors', '-')}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--memory-mib", type=int, default=512)
    parser.add_argument("--slow-clients", type=int, default=3000)
    parser.add_argument("--attack-seconds", type=int, default=20)
    parser.add_argument("--only", nargs="*", help="request classes to run (substring match); default all")
    args = parser.parse_args()

    import yaml

    from webhook import tls as certs

    limit = Limit(args.memory_mib)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ca, cert, key = (str(p) for p in certs.write(certs.issue(["127.0.0.1"]), tmp))
        inventory = tmp / "inventory.yaml"
        inventory.write_text(yaml.safe_dump(base.NAMESPACE))
        tls = ssl.create_default_context(cafile=ca)
        servers = Servers(tmp, limit, tls, cert, key, inventory)
        print(f"policyengine serve, 1 worker, default limits, in a {limit.kind}; TLS on 127.0.0.1")
        try:
            cases = [c for c in CASES if not args.only or any(o.lower() in c.name.lower() for o in args.only)]
            for case in cases:
                print(measure(servers, case), flush=True)
            if args.slow_clients:
                for line in slow_client_attack(servers, args.slow_clients, args.attack_seconds, ca):
                    print(line, flush=True)
        finally:
            servers.stop()
            limit.remove()


if __name__ == "__main__":
    main()
