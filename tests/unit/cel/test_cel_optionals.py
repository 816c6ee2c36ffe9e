"""CEL optional syntax (cel-go OptionalTypes) on Kubernetes objects, in both backends: ``.?`` and
``[?k]`` chains, optional list/map entries, the short-circuiting ``or``/``orValue``, what the
load-time checks refuse, and that hostile optional expressions are stopped by the cost budget."""

from __future__ import annotations

from typing import Any

import pytest

from policyengine.cel import BACKENDS, Budget, CelBackend, CelCompileError, CelEvalError, get_backend
from policyengine.cel.port import Declarations

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "trainer", "labels": {"team": "ml", "app.kubernetes.io/name": "trainer"}},
    "spec": {
        "securityContext": {"runAsNonRoot": True},
        "containers": [
            {"name": "main", "image": "registry.example.com/train:1", "securityContext": {"runAsUser": 1000}},
            {"name": "sidecar", "image": "registry.example.com/log:2"},
        ],
    },
}
OBJECT_ONLY = Declarations("a test", frozenset({"object"}))
BARE_POD: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"}, "spec": {}}


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> CelBackend:
    return get_backend(request.param)


def _eval(backend: CelBackend, expr: str, obj: dict[str, Any], budget: Budget | None = None) -> Any:
    activation = backend.bind({"object": obj, "m": obj["metadata"].get("labels", {})})
    compiled = backend.compile(expr)
    return compiled.evaluate(activation) if budget is None else compiled.evaluate(activation, budget)


@pytest.mark.parametrize(
    ("expr", "on_pod", "on_bare"),
    [
        ("object.?spec.?securityContext.?runAsNonRoot.orValue(false)", True, False),
        ("m[?'team'].orValue('none')", "ml", "none"),
        ("object.metadata.?labels[?'team'].hasValue()", True, False),
        ("object.spec.?containers.orValue([]).all(c, c.?securityContext.?runAsUser.orValue(0) != 0)",
         False, True),
        ("object.?spec.containers.optMap(cs, cs.size()).orValue(0)", 2, 0),
        ("object.?spec.?containers[?1].?name.orValue('')", "sidecar", ""),
        ("[?object.metadata.?labels[?'team'], ?optional.none(), optional.of('x').value()]", ["ml", "x"], ["x"]),
        ("{?'team': object.metadata.?labels[?'team'], 'n': 1}", {"team": "ml", "n": 1}, {"n": 1}),
        ("object.metadata.?labels.optFlatMap(l, l[?'team']).or(optional.of('default')).value()",
         "ml", "default"),
        ("optional.ofNonZeroValue(object.metadata.?labels.orValue({})).hasValue()", True, False),
    ],
)  # fmt: skip
def test_optional_chains_on_workload_objects(
    backend: CelBackend, expr: str, on_pod: Any, on_bare: Any
) -> None:
    assert _eval(backend, expr, POD) == on_pod
    assert _eval(backend, expr, BARE_POD) == on_bare


def test_or_value_does_not_evaluate_its_default_when_present(backend: CelBackend) -> None:
    # cel-go's orValue/or are short-circuiting: the failing default is never evaluated.
    assert _eval(backend, "object.?kind.orValue(1 / 0 == 1)", POD) == "Pod"
    with pytest.raises(CelEvalError):
        _eval(backend, "object.?missing.orValue(1 / 0 == 1)", POD)


def test_or_value_on_a_value_that_is_not_optional_returns_it(backend: CelBackend) -> None:
    # cel-go up to v0.27 (what Kubernetes runs): evalOptionalOrValue returns a non-optional receiver.
    assert _eval(backend, "object.kind.orValue('x')", POD) == "Pod"
    assert _eval(backend, "object.kind.or(optional.of('x'))", POD) == "Pod"


@pytest.mark.parametrize(
    "expr",
    [
        "[?object.kind]",  # an optional element must be an optional
        "{?'k': object.kind}",
        "object.?metadata.?name.invalid",  # a present non-map optional has no fields
        "object.missing.orValue('x')",  # not an optional: the error of the receiver is the result
        "optional.none().value()",
    ],
)
def test_optional_misuse_is_an_evaluation_error(backend: CelBackend, expr: str) -> None:
    with pytest.raises(CelEvalError):
        _eval(backend, expr, POD)


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("size(?object)", "only in list and map literals"),
        ("object.?spec.exists(?x, true)", "only in list and map literals"),
        ("object.?", "syntax error"),
        ("object[?]", "syntax error"),
        ("undeclaredThing.?spec.orValue(1)", "undeclared"),
        ("object.?spec.orValu(1)", "undeclared"),
    ],
)
def test_load_time_checks_know_optional_syntax(backend: CelBackend, expr: str, fragment: str) -> None:
    with pytest.raises(CelCompileError) as caught:
        backend.compile(expr, declared=OBJECT_ONLY)
    assert fragment in str(caught.value)


def test_declared_variables_are_read_through_optional_syntax(backend: CelBackend) -> None:
    compiled = backend.compile("object.?spec.?replicas.orValue(1) > 0", declared=OBJECT_ONLY)
    assert compiled.evaluate(backend.bind({"object": {"spec": {}}})) is True


def test_deep_optional_chain_is_charged_by_the_budget(backend: CelBackend) -> None:
    chain = "object" + ".?spec" * 60 + ".orValue(0)"
    expr = f"lists.range(100000).all(i, {chain} == 0)"
    with pytest.raises(CelEvalError) as caught:
        _eval(backend, expr, POD, Budget(max_cost=200_000, max_seconds=60.0))
    assert caught.value.code == "budget_exceeded"
    # One pass of the same chain fits in the budget: the cost is the chain's, charged per step.
    assert _eval(backend, chain + " == 0", POD, Budget(max_cost=200_000, max_seconds=60.0)) is True


def test_huge_optional_list_literal_is_charged_by_the_budget(backend: CelBackend) -> None:
    literal = "[" + ", ".join(["?object.?kind"] * 2000) + "]"
    expr = f"lists.range(100000).all(i, size({literal}) == 2000)"
    with pytest.raises(CelEvalError) as caught:
        _eval(backend, expr, POD, Budget(max_cost=200_000, max_seconds=60.0))
    assert caught.value.code == "budget_exceeded"


@pytest.mark.parametrize(
    "expr",
    ["object.?spec", "object.metadata.?labels[?'team']", "optional.of(true)", "object.?spec.optMap(s, true)",
     "object.?a.or(object.?b)"],
)  # fmt: skip
def test_a_validation_yielding_an_optional_is_refused_at_load(backend: CelBackend, expr: str) -> None:
    with pytest.raises(CelCompileError) as caught:
        backend.compile(expr, declared=OBJECT_ONLY, returns=("bool",))
    assert "must evaluate to bool" in str(caught.value)
    # What the optional yields is fine: the checks know hasValue() and orValue() are not optionals.
    backend.compile(f"({expr}).hasValue()", declared=OBJECT_ONLY, returns=("bool",))
    backend.compile(f"({expr}).orValue(false)", declared=OBJECT_ONLY, returns=("bool",))


def test_a_very_deep_optional_chain_is_refused_not_a_crash(backend: CelBackend) -> None:
    expr = "object" + ".?a" * 5000 + ".orValue(0)"
    try:
        compiled = backend.compile(expr)
    except CelCompileError as err:
        assert "nests too deeply" in str(err)
        return
    with pytest.raises(CelEvalError) as caught:
        compiled.evaluate(backend.bind({"object": {}}))
    assert caught.value.code == "budget_exceeded"


def test_optional_chains_on_the_workload_tests_objects(backend: CelBackend) -> None:
    from tests.unit.workloads.test_kinds import obj, templ

    job = obj(
        "kubeflow.org/v1",
        "PyTorchJob",
        {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": templ(2)}}},
    )
    master = "object.spec.?pytorchReplicaSpecs[?'Master']"
    cases = {
        f"{master}.?template.?spec.?securityContext.?runAsNonRoot.orValue(false)": False,
        "object.spec.?pytorchReplicaSpecs[?'Worker'].?replicas.orValue(0)": 0,
        f"{master}.?template.?spec.?containers.orValue([]).map(c, c.?resources.?limits[?'nvidia.com/gpu']"
        ".orValue(0))": [2],
        "object.metadata.?labels[?'team'].orValue('none')": "none",
    }
    activation = backend.bind({"object": job})
    for expr, expected in cases.items():
        assert backend.compile(expr).evaluate(activation) == expected, expr
