"""Per-request evaluation time of the engine, against naive cel-python use measured in the same run.

    python bench/engine.py [--requests N] [--sizes 1,10,100]

For each workload size (KB of JSON) it times ``Engine.evaluate`` on a Deployment with 20 Pod-Security-style
validations (compiled once, request converted once per evaluation), and the naive baseline: for every
request and rule, parse the expression with cel-python and convert the whole request again. It prints the
median and p99 per request for both and the ratio of the medians. Machines here are shared and noisy:
compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import celpy

from policyengine.engine import Engine
from policyengine.gate import request_for
from policyengine.loader import Document, parse_text
from policyengine.policyset import build_policy_set

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


def time_engine(engine: Engine, doc: Document, n: int) -> list[float]:
    request = request_for(doc)
    now = datetime.now(UTC)
    decision = engine.evaluate(request, now=now)
    failed = [r for r in decision.results if str(r.outcome) != "pass"]
    assert not failed, f"bench workload should pass every rule: {failed[:2]}"
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        engine.evaluate(request, now=now)
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=30, help="timed requests per size and method")
    parser.add_argument("--sizes", default="1,10,100", help="workload sizes in KB")
    args = parser.parse_args()

    engine = Engine(build_policy_set(parse_text(policy_yaml(), "bench.yaml")))
    print(f"{len(RULES)} validations per request, {args.requests} requests per row; times per request")
    print(
        f"{'size':>6} {'engine median':>14} {'engine p99':>11} {'naive median':>13} {'naive p99':>10} {'speed-up':>9}"
    )
    for kb in (int(s) for s in args.sizes.split(",")):
        obj = workload(kb)
        (doc,) = parse_text(json.dumps(obj), "bench.json")
        fast = time_engine(engine, doc, args.requests)
        naive = time_naive(obj, max(3, args.requests // 3))
        fm, nm = statistics.median(fast), statistics.median(naive)
        print(
            f"{len(json.dumps(obj)) // 1024:>4}KB {fm * 1e3:>12.2f}ms {percentile(fast, 0.99) * 1e3:>9.2f}ms "
            f"{nm * 1e3:>11.2f}ms {percentile(naive, 0.99) * 1e3:>8.2f}ms {nm / fm:>8.1f}x"
        )


if __name__ == "__main__":
    main()
