"""Property: on random expressions over random JSON data, the fast backend does what the reference does.

Expressions come from a small grammar (literals, arithmetic, comparisons, logic, ternary, field access
on the generated ``object``, ``has()``, ``size()``, conversions, ``in``, string methods and the macros).
Agreement means the same compile outcome, then both failing at evaluation or both giving the same plain
value (bool is not int, int is not float), except for the deliberate differences (``_deliberate``).
``has()`` is generated only on ``object`` (always a map): on anything else the backends differ on
purpose (test_fast_differential.DELIBERATE_EXPRESSIONS).
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyengine.cel import CelCompileError, CelEvalError, get_backend

_FAST = get_backend("fast")
_REFERENCE = get_backend("reference")
_KEYS = ("a", "b", "c", "items")

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(min_value=-(2.0**52), max_value=2.0**52, allow_nan=False),
    st.text(alphabet="abcé ", max_size=4),
)
_json = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.sampled_from(_KEYS), children, max_size=4)
    ),
    max_leaves=12,
)
_objects = st.dictionaries(st.sampled_from(_KEYS), _json, max_size=4)

# 2**62 overflows when doubled yet is exact as a double: int64 overflow is exercised, while ordering an
# int against a double never reaches the range where cel-go's lossy conversion differs on purpose.
_int_literals = st.sampled_from(["0", "1", "-1", "2", "7", "4611686018427387904", "-4611686018427387904"])
_literals = st.one_of(
    _int_literals,
    st.sampled_from(["0u", "3u", "9223372036854775808u", "1.5", "-0.5", "0.0", "2.0"]),
    st.sampled_from(["'a'", "'abc'", "''", "'é'", "true", "false", "null", "[]", "{}"]),
    st.sampled_from(["[1, 2, 3]", "['a', 'b']", "[1.5, 2.5]", "{'a': 1}", "{'a': 'x', 'b': 'y'}"]),
)
_fields = st.lists(st.sampled_from(_KEYS), min_size=1, max_size=3).map(lambda ks: "object." + ".".join(ks))
_leaves = st.one_of(_literals, _fields, st.just("object"), st.just("x"))


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.sampled_from(["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "in"])
    macro = st.sampled_from(["all", "exists", "exists_one", "map", "filter"])
    conversion = st.sampled_from(["int", "uint", "double", "string", "size", "type", "dyn", "bool"])
    return st.one_of(
        st.tuples(children, binary, children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["!", "-"]), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(children, children, children).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        st.tuples(conversion, children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(children, st.sampled_from(_KEYS)).map(lambda t: f"{t[0]}.{t[1]}"),
        # Indexing a type (``type(x)[0]``) gives cel-python nonsense (a Python generic alias): index
        # only what can be a list or a map.
        st.tuples(st.one_of(_fields, _literals), children).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.sampled_from(_KEYS).map(lambda k: f"has(object.{k})"),
        st.tuples(children, macro, children).map(lambda t: f"{t[0]}.{t[1]}(x, {t[2]})"),
        st.tuples(children, children, children).map(lambda t: f"{t[0]}.map(x, {t[1]}, {t[2]})"),
        st.tuples(children, children).map(lambda t: f"[{t[0]}, {t[1]}]"),
        st.tuples(children, st.sampled_from(["startsWith", "endsWith", "contains", "matches"]), children).map(
            lambda t: f"{t[0]}.{t[1]}({t[2]})"
        ),
        st.tuples(children, children).map(lambda t: f"{t[0]}.all(i, x, {t[1]})"),
    )


_expressions = st.recursive(_leaves, _extend, max_leaves=8)


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _run(backend: Any, expr: str, data: dict[str, Any]) -> tuple[str, Any]:
    try:
        compiled = backend.compile(expr)
    except CelCompileError:
        return "compile_error", None
    try:
        return "value", compiled.evaluate(backend.bind({"object": data}))
    except CelEvalError as err:
        return err.code, str(err)


def _deliberate(reference: tuple[str, Any], fast: tuple[str, Any]) -> bool:
    """The two deliberate differences the grammar can reach (see test_fast_differential):
    cel-python applies some operators to operand types CEL has no overload for (``0 + 0u``,
    ``true + true``, ``'a' * false``, ``'abc'[0u]``, through Python's own operators), where the fast
    backend reports 'no matching overload' as cel-go does; and cel-go indexes a list with an integral
    double (``[1, 2][0.0]``), which cel-python refuses."""
    lenient = reference[0] == "value" and fast[0] == "eval_error" and "no matching overload" in str(fast[1])
    double_index = fast[0] == "value" and "(list, double)" in str(reference[1])
    negative_index = reference[0] == "value" and "index out of bounds: -" in str(fast[1])
    return lenient or double_index or negative_index


# Derandomized: the same examples on every run, so CI never fails on a new draw; explore with a larger
# max_examples and derandomize=False when changing either backend.
@settings(max_examples=600, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(expr=_expressions, data=_objects)
def test_fast_backend_agrees_with_reference(expr: str, data: dict[str, Any]) -> None:
    reference = _run(_REFERENCE, expr, data)
    fast = _run(_FAST, expr, data)
    if _deliberate(reference, fast):
        return
    assert fast[0] == reference[0], (expr, data, reference, fast)
    if fast[0] == "value":
        assert _same(fast[1], reference[1]), (expr, data, reference, fast)
