"""Problems found when an expression is compiled, so a bad policy fails at load, not at admission."""

from __future__ import annotations

import pytest

from policyengine.cel import BACKENDS, CelBackend, CelCompileError, CelEvalError, get_backend


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> CelBackend:
    return get_backend(request.param)


@pytest.mark.parametrize(
    ("expr", "name"),
    [
        ("object.spec.containers.all(c, c.image.startWith('registry.example.com/'))", "startWith"),
        ("quantitty(object.cpu) > 1", "quantitty"),
        ("lists.rnage(3) == [0, 1, 2]", "rnage"),
        ("[1, 2].reduce(a, b, 0, a + b) == 3", "reduce"),
        ("object.name.toLowerCase() == 'x'", "toLowerCase"),
    ],
)
def test_unknown_function_is_a_compile_error_naming_it(backend: CelBackend, expr: str, name: str) -> None:
    with pytest.raises(CelCompileError, match=f"'{name}'"):
        backend.compile(expr)


@pytest.mark.parametrize(
    "expr",
    [
        "object.name.matches('x++')",
        "object.name.find('(')",
        "[1, 'a', false].size() == 3",
        "{'a': 1, 'b': 'two'}.size() == 2",
        "duration('one hour') > duration('1h')",
        "'%q'.format([1])",
        "object.name ==",
    ],
)
def test_malformed_expressions_fail_to_compile(backend: CelBackend, expr: str) -> None:
    with pytest.raises(CelCompileError):
        backend.compile(expr)


@pytest.mark.parametrize(
    "expr",
    [
        "object.spec.containers.all(c, c.image.startsWith('registry.example.com/'))",
        "quantity(object.cpu).isLessThan(quantity('2'))",
        "lists.range(3).map(i, i * 2) == [0, 2, 4]",
        "[3, 1, 2].min() == 1 && [3, 1, 2].max() == 3",
        "optional.none().orValue(1) == 1",
        "format.dns1123Label().validate('ok').hasValue() == false",
        "strings.quote('a') == '\"a\"'",
        "ip.isCanonical('::1') && cidr('10.0.0.0/8').containsIP('10.1.2.3')",
        "'%s=%d'.format(['a', 1]) == 'a=1'",
        "has(object.name) && size(object.name) > 0",
    ],
)
def test_environment_functions_compile(backend: CelBackend, expr: str) -> None:
    backend.compile(expr)


def test_a_variable_named_like_a_namespace_still_works(backend: CelBackend) -> None:
    activation = backend.bind({"lists": {"range": [1, 2]}})
    assert backend.compile("lists.range.size() == 2").evaluate(activation) is True


def test_min_and_max_follow_kubernetes(backend: CelBackend) -> None:
    activation = backend.bind({"empty": [], "mixed": [2.5, 1, 3]})
    with pytest.raises(CelEvalError, match="min called on empty list"):
        backend.compile("empty.min() == 0").evaluate(activation)
    assert backend.compile("mixed.min()").evaluate(activation) == 1
    assert backend.compile("mixed.max()").evaluate(activation) == 3
