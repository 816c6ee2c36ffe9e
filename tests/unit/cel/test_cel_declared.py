"""What compiling against declarations rejects: names nobody binds, message construction, and results
of a kind the field cannot use. Both backends share the front end, so both reject the same programs."""

from __future__ import annotations

import pytest

from policyengine import errors
from policyengine.cel import (
    ANY,
    BACKENDS,
    BOOL,
    STRING,
    STRING_OR_NULL,
    CelBackend,
    CelCompileError,
    Declarations,
    Returns,
    get_backend,
)

ROOTS = Declarations(
    "Policy", frozenset({"object", "oldObject", "request", "params", "variables", "workload"})
)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> CelBackend:
    return get_backend(request.param)


@pytest.mark.parametrize(
    ("expr", "name"),
    [
        ("objct.spec.replicas > 1", "objct"),
        ("workloads.gpus.total > 8", "workloads"),
        ("object.items.all(i, i > 0) && i > 0", "i"),  # a comprehension variable out of its scope
        ("object.items.map(i, j)", "j"),
        ("[1, 2].exists(x, x == y)", "y"),
        ("has(objct.metadata)", "objct"),
        ("authorizer != null", "authorizer"),  # no API server authorizer here
        ("object.x == .objct", "objct"),
        ("size(params2) > 0", "params2"),
    ],
)
def test_a_free_name_not_declared_is_a_compile_error(backend: CelBackend, expr: str, name: str) -> None:
    with pytest.raises(CelCompileError, match=f"undeclared reference to '{name}'") as caught:
        backend.compile(expr, ROOTS)
    assert caught.value.code == errors.UNDECLARED_REFERENCE


def test_the_message_suggests_the_nearest_declared_name(backend: CelBackend) -> None:
    with pytest.raises(CelCompileError) as caught:
        backend.compile("objct.spec", ROOTS)
    assert "did you mean 'object'?" in str(caught.value)
    assert "Policy expressions may read object, oldObject, params, request, variables, workload" in str(
        caught.value
    )


@pytest.mark.parametrize(
    "expr",
    [
        "object.items.all(i, i > 0)",
        "object.items.all(i, object.more.exists(j, i == j))",
        "object.labels.all(k, v, k.size() > 0 && v != '')",
        "object.items.transformMap(i, v, v > 0, v * 2).size() >= 0",
        "object.items.map(i, i > 0, i * 2) == []",
        "optional.of(object.x).optMap(v, v + 1).hasValue()",
        "lists.range(3).all(n, n < 3)",
        "strings.quote(object.name) != ''",
        "type(object) == map && type(object.ip) != net.IP && type(1) == int",
        "type(object.d) == google.protobuf.Duration",
        "ip.isCanonical(object.addr) && cidr('10.0.0.0/8').containsIP(object.addr)",
        "has(variables.team) && variables.team == workload.team",
        ".object.spec == object.spec",
        "[object, oldObject, request, params].size() == 4",
    ],
)
def test_declared_names_comprehension_variables_types_and_namespaces_compile(
    backend: CelBackend, expr: str
) -> None:
    backend.compile(expr, ROOTS)


def test_without_declarations_any_root_compiles_and_evaluation_reports_it(backend: CelBackend) -> None:
    compiled = backend.compile("anything.at.all == 1")
    assert compiled.evaluate(backend.bind({"anything": {"at": {"all": 1}}})) is True


@pytest.mark.parametrize(
    "expr", ["Foo{a: 1}", "object.x == a.b.Foo{}", "[google.protobuf.Duration{seconds: 1}]"]
)
@pytest.mark.parametrize("declared", [None, ROOTS])
def test_message_construction_is_rejected_at_compile_time(
    backend: CelBackend, expr: str, declared: Declarations | None
) -> None:
    with pytest.raises(CelCompileError, match="message construction") as caught:
        backend.compile(expr, declared)
    assert caught.value.code == errors.UNDECLARED_REFERENCE


@pytest.mark.parametrize(
    ("expr", "returns", "yields"),
    [
        ("'true'", BOOL, "string"),
        ("1", BOOL, "int"),
        ("null", BOOL, "null_type"),
        ("[true]", BOOL, "list"),
        ("{'ok': true}", BOOL, "map"),
        ("object.spec.replicas - 1", BOOL, "double or duration or int or timestamp or uint"),
        ("object.a * 2", BOOL, "double or int or uint"),
        ("-object.a", BOOL, "double or duration or int"),
        ("object.ok ? 1 : 'no'", BOOL, "int or string"),
        ("(size(object.items))", BOOL, "int"),
        ("object.items.map(i, i > 0)", BOOL, "list"),
        ("'a' + object.name", BOOL, "string"),
        ("object.spec.replicas > 3", STRING, "bool"),
        ("object.a == 1 || object.b == 2", STRING, "bool"),
        ("!object.ok", STRING, "bool"),
        ("42", STRING, "int"),
        ("object.n % 2", STRING, "double or int or uint"),
        ("int(object.n) + 1", STRING, "int"),
        ("object.items.all(i, i > 0)", STRING, "bool"),
        ("1", STRING_OR_NULL, "int"),
    ],
)
def test_a_result_of_the_wrong_kind_is_a_compile_error(
    backend: CelBackend, expr: str, returns: Returns, yields: str
) -> None:
    with pytest.raises(CelCompileError) as caught:
        backend.compile(expr, ROOTS, returns)
    assert caught.value.code == errors.CEL_TYPE
    want = returns[0] if len(returns) == 1 else "one of " + ", ".join(returns)
    assert str(caught.value) == f"must evaluate to {want}, but this expression yields {yields}"


@pytest.mark.parametrize(
    ("expr", "returns"),
    [
        ("object.spec.enabled", BOOL),
        ("object.x == 1", BOOL),
        ("object.ok ? true : object.other", BOOL),
        ("has(object.x) && !object.y", BOOL),
        ("'a' in object.list", BOOL),
        ("object.items.exists_one(i, i)", BOOL),
        ("bool(object.flag)", BOOL),
        ("true", BOOL),
        ("'replicas: ' + string(object.spec.replicas)", STRING),
        ("object.name + object.suffix", STRING),
        ("object.ok ? 'fine' : object.reason", STRING),
        ("'%s has %d'.format([object.name, 1])", STRING),
        ("object.items.map(i, i).join(', ')", STRING),
        ("null", STRING_OR_NULL),
        ("object.note", STRING_OR_NULL),
        ("1 + 2", ANY),
    ],
)
def test_a_result_that_may_be_of_the_right_kind_compiles(
    backend: CelBackend, expr: str, returns: Returns
) -> None:
    backend.compile(expr, ROOTS, returns)


@pytest.mark.parametrize(
    "expr",
    [
        "(" * 3000 + "objct" + ")" * 3000,
        "true ? " * 3000 + "1" + " : 2" * 3000,
        "[" * 3000 + "object" + "]" * 3000,
    ],
)
def test_deeply_nested_input_is_a_compile_error_not_a_crash(backend: CelBackend, expr: str) -> None:
    with pytest.raises(CelCompileError):
        backend.compile(expr, ROOTS, BOOL)


def test_a_wide_expression_is_checked_without_recursion(backend: CelBackend) -> None:
    items = ", ".join(f"object.items.exists(i{n}, i{n} == {n})" for n in range(3000))
    backend.compile(f"[{items}].exists(x, x)", ROOTS, BOOL)
    with pytest.raises(CelCompileError, match="undeclared reference to 'i2999'"):
        backend.compile(f"[{items}, i2999].exists(x, x)", ROOTS, BOOL)
