"""Per-request evaluation time of the engine on each CEL backend, against hand-written Python and naive
cel-python use, all measured in the same run.

    python bench/engine.py [--requests N] [--sizes 1,10,100] [--profile]

For each AI workload size (KB of JSON: a GPU Deployment) it times ``Engine.evaluate`` with every shipped
pack (``policies/``, with the workload and inventory views) plus 20 Pod-Security-style validations, once
per CEL backend (``reference``: cel-python's evaluator; ``fast``: CEL compiled to Python closures, run as generated Python once warm). Beside
them: the same 20 checks hand-written in Python; the views alone (``policyengine.views``, the workload
description every request pays for); and the naive baseline (for every request and rule, parse with
cel-python and convert the whole request). It prints median and p99 per request and the ratios of the
medians, then the fast engine on workloads not seen before (each request's env values new, so the
views' bounded memos miss; the table repeats one request, as a workload's pods and re-applies do), and
on the workload bound to a residency zone (the example config defines none, so the table's rows never
build the data locations: only the residency pack reads them, once a zone is set). Machines here are
shared and noisy: compare ratios, not absolute times. ``--profile`` prints a
cProfile of the fast engine at 10 KB.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import celpy

from policyengine.cel import get_backend
from policyengine.engine import EMPTY_INVENTORY, Engine
from policyengine.expressions import Compiler
from policyengine.gate import request_for
from policyengine.loader import Document, parse_text
from policyengine.policyset import load_policy_set
from policyengine.views import views_for

CONTAINERS = "object.spec.template.spec.containers"
ALL = f"{CONTAINERS} + (has(object.spec.template.spec.initContainers) ? object.spec.template.spec.initContainers : [])"
RULES = [
    f"{CONTAINERS}.all(c, !has(c.securityContext) || !has(c.securityContext.privileged) || !c.securityContext.privileged)",
    f"{CONTAINERS}.all(c, has(c.securityContext) && has(c.securityContext.allowPrivilegeEscalation) && !c.securityContext.allowPrivilegeEscalation)",
    f"{CONTAINERS}.all(c, has(c.securityContext) && has(c.securityContext.runAsNonRoot) && c.securityContext.runAsNonRoot)",
    f"{CONTAINERS}.all(c, has(c.securityContext) && has(c.securityContext.readOnlyRootFilesystem) && c.securityContext.readOnlyRootFilesystem)",
    f"{CONTAINERS}.all(c, !has(c.securityContext) || !has(c.securityContext.capabilities) || !has(c.securityContext.capabilities.add) || c.securityContext.capabilities.add.all(x, x == 'NET_BIND_SERVICE'))",
    f"{CONTAINERS}.all(c, has(c.securityContext) && has(c.securityContext.capabilities) && has(c.securityContext.capabilities.drop) && 'ALL' in c.securityContext.capabilities.drop)",
    "!has(object.spec.template.spec.hostNetwork) || !object.spec.template.spec.hostNetwork",
    "!has(object.spec.template.spec.hostPID) || !object.spec.template.spec.hostPID",
    "!has(object.spec.template.spec.hostIPC) || !object.spec.template.spec.hostIPC",
    "!has(object.spec.template.spec.volumes) || object.spec.template.spec.volumes.all(v, !has(v.hostPath))",
    f"{CONTAINERS}.all(c, !has(c.ports) || c.ports.all(p, !has(p.hostPort) || p.hostPort == 0))",
    f"{CONTAINERS}.all(c, c.image.contains('@sha256:'))",
    f"{CONTAINERS}.all(c, !c.image.endsWith(':latest'))",
    f"{CONTAINERS}.all(c, has(c.resources) && has(c.resources.limits) && has(c.resources.limits.memory))",
    f"{CONTAINERS}.all(c, has(c.resources) && has(c.resources.limits) && has(c.resources.limits.cpu))",
    f"{CONTAINERS}.all(c, has(c.readinessProbe))",
    "has(object.metadata.labels) && 'owner' in object.metadata.labels",
    "object.spec.replicas <= 50",
    f"({ALL}).all(c, !has(c.securityContext) || !has(c.securityContext.procMount) || c.securityContext.procMount == 'Default')",
    "!has(object.spec.template.spec.securityContext) || !has(object.spec.template.spec.securityContext.sysctls) || object.spec.template.spec.securityContext.sysctls.all(s, s.name.startsWith('net.'))",
]


def policy_yaml() -> str:
    validations = "\n".join(
        f"    - expression: {json.dumps(r)}\n      message: rule {i}" for i, r in enumerate(RULES)
    )
    return (
        "apiVersion: policyengine.io/v1\nkind: Policy\nmetadata: {name: pss}\nspec:\n"
        "  match: {kinds: [{apiGroups: [apps], kinds: [Deployment]}]}\n"
        f"  validations:\n{validations}\n"
    )


def container(i: int, env: int) -> dict[str, Any]:
    return {
        "name": f"c{i}",
        "image": f"registry.acme.internal/ml/server@sha256:{'ab' * 32}",
        "env": [
            {"name": f"VAR_{i}_{j}", "value": f"s3://acme-eu-datasets/shard-{j:05d}/"} for j in range(env)
        ],
        "ports": [{"containerPort": 8080 + i}],
        "resources": {"limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": 1}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def workload(kb: int) -> dict[str, Any]:
    """A Deployment whose JSON is about ``kb`` kilobytes."""
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llm-server", "namespace": "ml", "labels": {"owner": "ml", "app": "llm"}},
        "spec": {"replicas": 3, "template": {"spec": {"containers": [container(0, 0)]}}},
    }
    containers = obj["spec"]["template"]["spec"]["containers"]
    env = 1
    while len(json.dumps(obj)) < kb * 1024:
        if env < 40:
            env += 1
            containers[-1] = container(len(containers) - 1, env)
        else:
            env = 1
            containers.append(container(len(containers), env))
    return obj


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    return containers


def _sc(c: dict[str, Any]) -> dict[str, Any]:
    sc: dict[str, Any] = c.get("securityContext", {})
    return sc


def _limits(c: dict[str, Any]) -> dict[str, Any]:
    limits: dict[str, Any] = c.get("resources", {}).get("limits", {})
    return limits


def python_rules(obj: dict[str, Any]) -> list[bool]:
    """The 20 RULES written by hand over the JSON object (the floor any evaluator can hope for)."""
    pod = obj["spec"]["template"]["spec"]
    cs = _containers(obj)
    every = cs + pod.get("initContainers", [])
    return [
        all(not _sc(c).get("privileged", False) for c in cs),
        all(_sc(c).get("allowPrivilegeEscalation") is False for c in cs),
        all(_sc(c).get("runAsNonRoot") is True for c in cs),
        all(_sc(c).get("readOnlyRootFilesystem") is True for c in cs),
        all(all(x == "NET_BIND_SERVICE" for x in _sc(c).get("capabilities", {}).get("add", [])) for c in cs),
        all("ALL" in _sc(c).get("capabilities", {}).get("drop", []) for c in cs),
        not pod.get("hostNetwork", False),
        not pod.get("hostPID", False),
        not pod.get("hostIPC", False),
        all("hostPath" not in v for v in pod.get("volumes", [])),
        all(all(p.get("hostPort", 0) == 0 for p in c.get("ports", [])) for c in cs),
        all("@sha256:" in c["image"] for c in cs),
        all(not c["image"].endswith(":latest") for c in cs),
        all("memory" in _limits(c) for c in cs),
        all("cpu" in _limits(c) for c in cs),
        all("readinessProbe" in c for c in cs),
        "owner" in obj["metadata"].get("labels", {}),
        obj["spec"]["replicas"] <= 50,
        all(_sc(c).get("procMount", "Default") == "Default" for c in every),
        all(s["name"].startswith("net.") for s in pod.get("securityContext", {}).get("sysctls", [])),
    ]


ZONES = "apiVersion: policyengine.io/v1\nkind: GovernanceConfig\nmetadata: {name: zones}\nspec:\n  residency: {zones: {eu: {regions: [eu-west-1]}}}\n"


def engine_with_packs(backend: str, pss_path: str, zones: str | None = None) -> Engine:
    """Every shipped pack plus the 20 rules, compiled by ``backend``, with the example organisation's
    config (which defines no residency zone: the residency pack's policies are skipped by their first
    matchCondition); ``zones``: a config file adding residency zone ``eu``."""
    compiler = Compiler(get_backend(backend))
    config = str(Path(__file__).resolve().parents[1] / "examples" / "governance.yaml")
    configs = [config, *([zones] if zones else [])]
    return Engine(load_policy_set([pss_path], config_paths=configs, include_bundled=True, compiler=compiler))


def zoned(obj: dict[str, Any]) -> dict[str, Any]:
    """The workload bound to residency zone ``eu``: the residency pack runs and reads every data location."""
    labels = {**obj["metadata"]["labels"], "policyengine.io/residency": "eu"}
    return {**obj, "metadata": {**obj["metadata"], "labels": labels}}


def time_engine(engine: Engine, doc: Document, n: int) -> list[float]:
    request = request_for(doc)
    now = datetime.now(UTC)
    decision = engine.evaluate(request, now=now)
    failed = [r for r in decision.results if r.policy == "pss" and str(r.outcome) != "pass"]
    assert not failed, f"bench workload should pass every rule: {failed[:2]}"
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        engine.evaluate(request, now=now)
        samples.append(time.perf_counter() - start)
    return samples


def time_python(obj: dict[str, Any], n: int) -> list[float]:
    assert all(python_rules(obj))
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        python_rules(obj)
        samples.append(time.perf_counter() - start)
    return samples


def time_cel_rules(backend: str, obj: dict[str, Any], n: int) -> list[float]:
    """The 20 RULES alone on one backend, outside the engine: bind the request, evaluate each rule."""
    cel = get_backend(backend)
    compiled = [cel.compile(rule) for rule in RULES]
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        activation = cel.bind({"object": obj})
        for expr in compiled:
            assert expr.evaluate(activation) is True
        samples.append(time.perf_counter() - start)
    return samples


def time_first_seen(engine: Engine, obj: dict[str, Any], n: int) -> list[float]:
    """``Engine.evaluate`` on ``n`` workloads whose env values are all new to the process (so every
    bounded memo of the views misses), as the first request of a workload not seen before pays; the
    table's rows repeat one request, as a workload's pods and re-applies do."""
    text = json.dumps(obj)
    requests = [request_for(parse_text(text.replace("shard-", f"w{i}-"), "bench.json")[0]) for i in range(n)]
    now = datetime.now(UTC)
    samples = []
    for request in requests:
        start = time.perf_counter()
        engine.evaluate(request, now=now)
        samples.append(time.perf_counter() - start)
    return samples


def time_views(engine: Engine, doc: Document, n: int) -> list[float]:
    """What one request pays for the views inside ``Engine.evaluate``: the provider the engine builds, called
    as evaluate calls it (the same inventory object every time, so the per-inventory facts are computed
    once, as the webhook's swapped-in inventory has them; the per-request facts every time). The data
    locations are left to be filled, as the engine leaves them until an expression may read them."""
    request = request_for(doc)
    defer = engine.policy_set.compiler.backend.defers  # what Engine() builds for itself
    provide = views_for(engine.policy_set, engine.attestations, defer=defer)
    inventory, config, now = EMPTY_INVENTORY, engine.policy_set.config, datetime.now(UTC)
    provide(request, inventory, config, now)
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        provide(request, inventory, config, now)
        samples.append(time.perf_counter() - start)
    return samples


def time_naive(obj: dict[str, Any], n: int) -> list[float]:
    env = celpy.Environment()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        for rule in RULES:
            program = env.program(env.compile(rule))
            assert program.evaluate({"object": celpy.json_to_cel(obj)})
        samples.append(time.perf_counter() - start)
    return samples


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:>9.3f} {percentile(values, 0.99) * 1e3:>8.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200, help="timed requests per size (fast backend)")
    parser.add_argument("--sizes", default="1,10,100", help="workload sizes in KB")
    parser.add_argument("--profile", action="store_true", help="print a profile of the fast engine at 10 KB")
    args = parser.parse_args()

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as pss:
        pss.write(policy_yaml())
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as zones:
        zones.write(ZONES)
    engines = {name: engine_with_packs(name, pss.name) for name in ("reference", "fast")}
    engines["zoned"] = engine_with_packs("fast", pss.name, zones.name)
    n_policies = len(engines["fast"].policy_set.policies)
    slow_n = max(5, args.requests // 20)
    print(
        f"{n_policies} policies (every shipped pack + 20 Pod-Security-style rules); median and p99 per "
        f"request in ms; {args.requests} requests per row ({slow_n} for reference and naive)"
    )
    print(
        "engine: all packs + 20 rules through Engine.evaluate; (20): the 20 rules alone, outside the engine"
    )
    print(
        f"{'size':>6} | {'engine reference':>18} | {'engine fast':>18} | {'views (in engine)':>18} | "
        f"{'reference (20)':>18} | {'fast (20)':>18} | {'python (20)':>18} | {'naive (20)':>18} | "
        f"{'engine ref/fast':>15} {'(20) ref/fast':>13} {'(20) fast/py':>12}"
    )
    first_seen, in_zone = [], []
    for kb in (int(s) for s in args.sizes.split(",")):
        obj = workload(kb)
        (doc,) = parse_text(json.dumps(obj), "bench.json")
        reference = time_engine(engines["reference"], doc, slow_n)
        fast = time_engine(engines["fast"], doc, args.requests)
        views = time_views(engines["fast"], doc, args.requests)
        ref20 = time_cel_rules("reference", obj, slow_n)
        fast20 = time_cel_rules("fast", obj, args.requests)
        python = time_python(obj, args.requests)
        naive = time_naive(obj, max(3, slow_n // 2))
        rm, fm = statistics.median(reference), statistics.median(fast)
        r20, f20, pm = statistics.median(ref20), statistics.median(fast20), statistics.median(python)
        print(
            f"{len(json.dumps(obj)) // 1024:>4}KB | {_ms(reference)} | {_ms(fast)} | {_ms(views)} | "
            f"{_ms(ref20)} | {_ms(fast20)} | {_ms(python)} | {_ms(naive)} | "
            f"{rm / fm:>14.1f}x {r20 / f20:>12.1f}x {f20 / pm:>11.1f}x"
        )
        first_seen.append(
            (len(json.dumps(obj)) // 1024, time_first_seen(engines["fast"], obj, args.requests))
        )
        (zoned_doc,) = parse_text(json.dumps(zoned(obj)), "bench.json")
        in_zone.append(
            (len(json.dumps(obj)) // 1024, time_engine(engines["zoned"], zoned_doc, args.requests))
        )
    print(
        "engine fast on workloads not seen before (every env value new: the views' memos miss), median p99:"
    )
    for size, samples in first_seen:
        print(f"{size:>4}KB | {_ms(samples)}")
    print(
        "engine fast on the workload in residency zone eu (the residency pack runs and reads every data "
        "location, which the rows above never build), median p99:"
    )
    for size, samples in in_zone:
        print(f"{size:>4}KB | {_ms(samples)}")
    if args.profile:
        (doc,) = parse_text(json.dumps(workload(10)), "bench.json")
        request, now = request_for(doc), datetime.now(UTC)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.requests):
            engines["fast"].evaluate(request, now=now)
        profiler.disable()
        stats = pstats.Stats(profiler).sort_stats("cumulative")
        # Where a request's time goes: the whole evaluation, the views, the CEL evaluations.
        stats.print_stats(r"engine\.py.*\(evaluate\)|views\.py.*\(provide\)|fast/__init__\.py.*\(evaluate\)")
        stats.sort_stats("tottime").print_stats(12)
    Path(pss.name).unlink()
    Path(zones.name).unlink()


if __name__ == "__main__":
    main()
