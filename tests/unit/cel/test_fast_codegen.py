"""The fast backend's generated Python (``policyengine/cel/fast/codegen.py``) is the closures' program:
on the shapes it generates and on random expressions over random data, both give the same value or the
same error, and charge the same cost to the meter; the cost budget still stops a generated loop."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from policyengine.cel import CelEvalError
from policyengine.cel.budget import Meter
from policyengine.cel.fast import FastBackend
from policyengine.cel.port import Budget

sys.path.insert(0, str(Path(__file__).parent))
import test_fast_property as prop

GENERATED = FastBackend(generate_after=0)
CLOSURES = FastBackend(generate_after=None)
BUDGET = Budget(max_cost=1_000_000, max_seconds=3600.0)

CONTAINERS = "object.spec.template.spec.containers"
# The shapes policies are made of: field chains, has(), !, &&, ||, ?:, all/exists, comparisons, calls.
SHAPES = [
    f"{CONTAINERS}.all(c, !has(c.securityContext) || !has(c.securityContext.privileged) || !c.securityContext.privileged)",
    f"{CONTAINERS}.all(c, has(c.securityContext) && has(c.securityContext.capabilities) && 'ALL' in c.securityContext.capabilities.drop)",
    f"{CONTAINERS}.all(c, c.image.contains('@sha256:') && !c.image.endsWith(':latest'))",
    f"{CONTAINERS}.exists(c, c.name == 'main')",
    f"{CONTAINERS}.all(c, c.ports.all(p, !has(p.hostPort) || p.hostPort == 0))",
    f"{CONTAINERS}.all(c, c.securityContext.procMount in ['Default', 'Unmasked'])",
    "has(object.metadata.labels) && 'owner' in object.metadata.labels",
    "object.spec.replicas <= 50 && object.spec.replicas != 7",
    "object.spec.replicas > 2 ? object.metadata.name : 'small'",
    "object.spec.replicas - 1 >= 2",
    # Concatenations (charged by their size before they are built) and membership of a string literal.
    f"({CONTAINERS} + (has(object.spec.template.spec.initContainers) ? object.spec.template.spec.initContainers : [])).all(c, has(c.name))",
    "object.metadata.name + '-' + object.metadata.name != 'x' && object.spec.replicas + 1 > 2",
    "'ALL' in object.metadata.tags && !('NONE' in object.metadata.tags)",
    # filter and map (with and without a predicate), as the policies' variables use them: generated
    # loops, with the closures' charge per item and their errors (a predicate that is not a bool).
    f"size({CONTAINERS}.filter(c, has(c.securityContext) && c.securityContext.procMount == 'Default')) > 0",
    f"{CONTAINERS}.map(c, c.name).filter(n, n.startsWith('m')) == ['main']",
    f"{CONTAINERS}.map(c, has(c.ports), c.ports.filter(p, p.hostPort > 0)).all(ps, size(ps) == 0)",
    "object.metadata.tags.filter(t, t).size() >= 0",
    "object.metadata.tags.map(t, t + 1) == [2]",
    # A message built of strings: concatenated inline, each charged by its size as ``_add`` charges it.
    "'name ' + object.metadata.name + ' (' + object.metadata.name + ')' + object.metadata.tags[1]",
]
OBJECTS: list[dict[str, Any]] = [
    {
        "metadata": {"name": "d", "labels": {"owner": "ml"}, "tags": [1, "x", "ALL"]},
        "spec": {
            "replicas": 3,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": "r/x@sha256:ab",
                            "ports": [{"containerPort": 80}, {"hostPort": 0}],
                            "securityContext": {"capabilities": {"drop": ["ALL"]}, "procMount": "Default"},
                        },
                        {"name": "side", "image": "r/y:latest", "ports": [{"hostPort": 8}]},
                    ]
                }
            },
        },
    },
    # Wrong types and missing fields everywhere: errors, and the order in which they surface.
    {
        "metadata": {"labels": ["owner"], "name": 3, "tags": {"ALL": 1}},
        "spec": {"replicas": "3", "template": {"spec": {"containers": [1, {}]}}},
    },
    {
        "metadata": {"name": "n" * 100, "tags": [1.0, "NONE", "ALL"]},
        "spec": {
            "replicas": 2**63 - 1,
            "template": {"spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "i"}, {}]}},
        },
    },
    {"metadata": {"tags": "ALL"}, "spec": {"replicas": 60, "template": {"spec": {"containers": {"a": 1}}}}},
    {"spec": {"template": {"spec": {"containers": [{"securityContext": {"privileged": "yes"}}]}}}},
]


def _outcome(backend: FastBackend, source: str, data: Any) -> tuple[str, Any, int]:
    expr = backend.compile(source)
    meter = Meter(BUDGET)
    try:
        value: Any = ("value", expr.run(backend.bind({"object": data}).values, meter))  # type: ignore[attr-defined]
    except CelEvalError as err:
        value = (err.code, str(err))
    return (*value, meter.cost)


def test_the_common_shapes_are_generated_python() -> None:
    for source in SHAPES:
        fn = GENERATED.compile(source)._fn  # type: ignore[attr-defined]
        assert fn.__code__.co_filename == "<cel>", source
        assert CLOSURES.compile(source)._fn.__code__.co_filename != "<cel>"  # type: ignore[attr-defined]


@pytest.mark.parametrize("source", SHAPES)
@pytest.mark.parametrize("index", range(len(OBJECTS)))
def test_generated_code_gives_the_closures_value_error_and_cost(source: str, index: int) -> None:
    data = OBJECTS[index]
    assert _outcome(GENERATED, source, data) == _outcome(CLOSURES, source, data)


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(expr=prop._expressions, data=prop._objects)
def test_generated_code_agrees_with_the_closures_on_random_expressions(
    expr: str, data: dict[str, Any]
) -> None:
    try:
        CLOSURES.compile(expr)
    except Exception:  # compile errors are the frontend's, shared by both
        return
    generated, closures = _outcome(GENERATED, expr, data), _outcome(CLOSURES, expr, data)
    assert generated[0] == closures[0] and generated[2] == closures[2], (expr, data, generated, closures)
    if generated[0] == "value":
        assert prop._same(generated[1], closures[1]), (expr, data, generated, closures)
    else:
        assert generated[1] == closures[1], (expr, data, generated, closures)


def test_an_expression_is_generated_once_it_has_run_twice() -> None:
    backend = FastBackend()
    expr = backend.compile(SHAPES[0])
    activation = backend.bind({"object": OBJECTS[0]})
    generated = []
    for _ in range(3):
        assert expr.evaluate(activation) is True
        generated.append(expr._fn.__code__.co_filename == "<cel>")  # type: ignore[attr-defined]
    assert generated == [False, True, True]


def test_a_generated_loop_is_stopped_by_the_cost_budget() -> None:
    expr = GENERATED.compile("object.items.all(x, x.all(y, y == 0))")
    assert expr._fn.__code__.co_filename == "<cel>"  # type: ignore[attr-defined]
    activation = GENERATED.bind({"object": {"items": [[0] * 1000] * 1000}})
    with pytest.raises(CelEvalError) as caught:
        expr.evaluate(activation, Budget(max_cost=10_000, max_seconds=3600.0))
    assert caught.value.code == "budget_exceeded"
    assert 10_000 < caught.value.cost < 10_000 + 300  # charged as it went, stopped at the checkpoint


def test_a_generated_string_concatenation_is_charged_before_it_is_built() -> None:
    expr = GENERATED.compile("s + s + s == ''")
    assert expr._fn.__code__.co_filename == "<cel>"  # type: ignore[attr-defined]
    activation = GENERATED.bind({"s": "x" * 1_000_000})
    with pytest.raises(CelEvalError) as caught:
        expr.evaluate(activation, Budget(max_cost=10_000, max_seconds=3600.0))
    assert caught.value.code == "budget_exceeded"
    assert caught.value.cost == 2_000_000 // 16  # the first concatenation's size: nothing was built


def test_filter_and_map_are_generated_loops_not_closures() -> None:
    for source in (f"{CONTAINERS}.filter(c, has(c.ports)).map(c, c.name)", "object.items.map(x, x > 1, x)"):
        fn = GENERATED.compile(source)._fn  # type: ignore[attr-defined]
        assert fn.__code__.co_filename == "<cel>", source
        macros = [
            v for v in fn.__globals__.values() if str(getattr(v, "__module__", "")).endswith("fast.macros")
        ]
        assert macros == [], source  # no comprehension of it is left a closure


def test_a_generated_filter_is_stopped_by_the_cost_budget() -> None:
    expr = GENERATED.compile("object.items.filter(x, x.filter(y, y == 0).size() > 0).size() > 0")
    activation = GENERATED.bind({"object": {"items": [[0] * 1000] * 1000}})
    with pytest.raises(CelEvalError) as caught:
        expr.evaluate(activation, Budget(max_cost=10_000, max_seconds=3600.0))
    assert caught.value.code == "budget_exceeded"
    assert 10_000 < caught.value.cost < 10_000 + 300  # charged as it went, stopped at the checkpoint
