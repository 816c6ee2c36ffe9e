"""Field paths a generated expression selects more than once (``c.securityContext`` in
``has(c.securityContext) && c.securityContext.x``) are looked up once per scope, where the lookup cannot
fail, and each use falls back to the path's own code when that lookup found no map holding the key: the
value, the error and the cost stay those of the closures on any data, hostile shapes included."""

from __future__ import annotations

from typing import Any

import pytest

from policyengine.cel import CelEvalError
from policyengine.cel.budget import Meter
from policyengine.cel.fast import FastBackend
from policyengine.cel.port import Budget

GENERATED = FastBackend(generate_after=0)
CLOSURES = FastBackend(generate_after=None)
BUDGET = Budget(max_cost=20_000, max_seconds=3600.0)

CONTAINERS = "object.spec.template.spec.containers"
SOURCES = [
    f"{CONTAINERS}.all(c, has(c.sc) && has(c.sc.x) && !c.sc.x)",
    f"{CONTAINERS}.all(c, !has(c.sc) || !has(c.sc.caps) || !has(c.sc.caps.add) || c.sc.caps.add.all(x, x == 'A'))",
    f"{CONTAINERS}.exists(c, has(c.sc.x) ? c.sc.x == 'y' : c.sc == 'z')",
    f"{CONTAINERS}.map(c, has(c.sc) ? c.sc.x : 0) == [1]",
    f"{CONTAINERS}.filter(c, has(c.sc) && c.sc.x == 1).all(c, c.sc.x == 1 && c.sc.x > 0)",
    # The same variable name bound twice (nested, and in sibling loops sharing a slot).
    f"{CONTAINERS}.all(c, has(c.sc) && c.sc.all(c, has(c.x) && c.x == 1))",
    f"{CONTAINERS}.all(c, has(c.sc) && c.sc.x == 1) || {CONTAINERS}.all(c, has(c.sc) && c.sc.y == 1)",
    # Paths from the bindings, selected several times.
    "has(object.spec.template.spec.init) ? object.spec.template.spec.init.size() : object.spec.template.spec.containers.size()",
    "has(object.spec) && has(object.spec.x) && object.spec.x == object.spec.x",
    f"({CONTAINERS} + (has(object.spec.template.spec.init) ? object.spec.template.spec.init : [])).all(c, has(c.sc) && c.sc.x == 1)",
]
CONTAINER_SHAPES: list[Any] = [
    {"sc": {"x": False, "caps": {"add": ["A"]}}},
    {"sc": {"x": 1, "y": 1, "caps": {"add": ["B"]}}},
    {"sc": {"x": "y"}},
    {"sc": {}},
    {"sc": {"caps": None}},
    {"sc": {"caps": {"add": "A"}}},
    {"sc": None},
    {"sc": "z"},
    {"sc": [{"x": 1}, {"x": 2}, {}]},
    {"sc": [1, "x"]},
    {},
    None,
    1,
    "sc",
    [{"sc": {"x": 1}}],
]


def _objects() -> list[Any]:
    objects: list[Any] = []
    for shape in CONTAINER_SHAPES:
        objects.append({"spec": {"template": {"spec": {"containers": [shape]}}}})
        objects.append(
            {"spec": {"template": {"spec": {"containers": [{"sc": {"x": 1}}, shape], "init": [shape]}}}}
        )
    objects += [
        {"spec": {"template": {"spec": {"containers": {"sc": {"x": 1}}}}}},  # a map, not a list
        {"spec": {"template": {"spec": None}}},
        {"spec": {"template": "spec"}},
        {"spec": {"x": 1}},
        {"spec": []},
        {},
        None,
        [],
        "object",
    ]
    return objects


def _outcome(backend: FastBackend, source: str, bindings: dict[str, Any]) -> tuple[str, Any, int]:
    expr = backend.compile(source)
    meter = Meter(BUDGET)
    try:
        value: Any = ("value", expr.run(backend.bind(bindings).values, meter))  # type: ignore[attr-defined]
    except CelEvalError as err:
        value = (err.code, str(err))
    return (*value, meter.cost)


@pytest.mark.parametrize("source", SOURCES)
def test_speculated_paths_give_the_closures_value_error_and_cost(source: str) -> None:
    for data in _objects():
        for bindings in (
            {"object": data},
            # A dotted binding: CEL resolves ``object.spec`` as that name, so nothing is speculated.
            {"object": data, "object.spec": {"template": {"spec": {"containers": [{"sc": {"x": 1}}]}}}},
        ):
            assert _outcome(GENERATED, source, bindings) == _outcome(CLOSURES, source, bindings), (
                source,
                bindings,
            )


def test_a_path_selected_twice_in_a_loop_is_looked_up_once_per_item() -> None:
    fn = GENERATED.compile(f"{CONTAINERS}.all(c, has(c.sc) && has(c.sc.x) && !c.sc.x)")._fn  # type: ignore[attr-defined]
    assert fn.__code__.co_filename == "<cel>"
    held = [name for name in fn.__code__.co_varnames if name.startswith("_p")]
    assert len(held) == 2  # c.sc and c.sc.x, each in one local
    once = GENERATED.compile(f"{CONTAINERS}.all(c, c.image.contains('@'))")._fn  # type: ignore[attr-defined]
    assert [name for name in once.__code__.co_varnames if name.startswith("_p")] == []  # used once: as it was


def test_a_hostile_list_is_charged_and_stopped_as_the_closures_do() -> None:
    source = f"{CONTAINERS}.all(c, has(c.sc) && has(c.sc.x) && c.sc.x == 1)"
    for item in ({"sc": None}, 7, {"sc": {"y": [0] * 50}}, {"sc": {"x": 1}}):
        bindings = {"object": {"spec": {"template": {"spec": {"containers": [item] * 100_000}}}}}
        generated = _outcome(GENERATED, source, bindings)
        assert generated == _outcome(CLOSURES, source, bindings)
    assert generated[0] == "budget_exceeded"  # the last: every item passes, so the loop runs on
