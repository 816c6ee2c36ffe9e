"""The fast backend against the reference on every cel-spec conformance test, test by test.

Both backends run each runnable test; they must agree (both fail, or both give the same value), except
where the fast backend is deliberately different because cel-python is wrong per cel-spec/cel-go. Those
places are listed in DELIBERATE with the reason, and pinned: the fast backend must be right there and
the reference wrong, so a fix in either shows up here. The k8s-cel vectors run on both backends in
test_k8s_vectors.py; the packs and corpora in test_fast_corpus.py.
"""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from policyengine.cel import CelBackend, CelCompileError, CelEvalError, get_backend
from policyengine.cel.budget import Meter
from policyengine.cel.fast import FastBackend
from policyengine.cel.fast.values import from_ref, to_ref
from policyengine.cel.reference import ReferenceActivation, ReferenceBackend

sys.path.insert(0, str(Path(__file__).parent))
import cel_textproto
import test_cel_spec as spec

_LOSSY = "cel-go orders an int against a double by converting the int to double; cel-python compares exactly"
# (file, test name) -> why the fast backend differs from the reference (which is wrong here).
DELIBERATE: dict[tuple[str, str], str] = {
    ("comparisons", "not_lt_dyn_int_big_lossy_double"): _LOSSY,
    ("comparisons", "not_gt_dyn_big_double_int"): _LOSSY,
    ("comparisons", "lte_dyn_big_double_int"): _LOSSY,
    ("comparisons", "gte_dyn_int_big_lossy_double"): _LOSSY,
    ("lists", "zero_based_double"): "cel-go indexes a list with an integral double; cel-python refuses",
}

_LENIENT = (
    "CEL has no overload mixing int and uint, or taking bools or strings as numbers; cel-python applies "
    "Python's operator (bool is an int there)"
)
# Expressions outside cel-spec where the backends differ on purpose: (expr, bindings, fast outcome,
# reference outcome, reason). An outcome is a value or CelEvalError.
_OBJ = {"object": {"spec": {"replicas": 1}, "items": [1, 2]}}
DELIBERATE_EXPRESSIONS: list[tuple[str, dict[str, Any], Any, Any, str]] = [
    ("has(object.metadata.labels)", _OBJ, CelEvalError, False,
     "cel-go: has() evaluates its operand's target, so a missing intermediate field is 'no such key'; "
     "cel-python answers false for any failing operand"),
    ("has(object.items.x)", _OBJ, CelEvalError, False,
     "cel-go: has() on a list is 'no such overload'; cel-python answers false"),
    ("0 + 0u", {}, CelEvalError, 0, _LENIENT),
    ("true + true", {}, CelEvalError, 2, _LENIENT),
    ("[1, 2].all(x, x > 0) + 1", {}, CelEvalError, 2, _LENIENT),
    ("'a' * false", {}, CelEvalError, "", _LENIENT),
    ("bool(1)", {}, CelEvalError, True, _LENIENT),
    ("'abc'[1u]", {}, CelEvalError, "b", _LENIENT + " (strings cannot be indexed)"),
    ("[1, 2, 3][-1]", {}, CelEvalError, 3,
     "cel-go: a negative list index is out of bounds; cel-python counts from the end, as Python does"),
]  # fmt: skip


def _outcome(backend: CelBackend, test: dict[str, list[Any]]) -> tuple[bool, Any]:
    """(passes, result as a cel-python value or the exception class)."""
    expr = bytes(spec._one(test, "expr", b"")).decode("utf-8")
    if spec._one(test, "container") or spec._PROTO_ONLY.search(expr) or "unknown" in test:
        raise spec._Unsupported("proto types or unknowns")
    values = {}
    for binding in test.get("bindings", []):
        holder = spec._one(binding, "value", {})
        if "value" not in holder:
            raise spec._Unsupported("error binding")
        values[bytes(spec._one(binding, "key")).decode()] = spec._to_cel(spec._one(holder, "value", {}))
    expected_error = "eval_error" in test or "any_eval_errors" in test
    message = spec._one(test, "value") or spec._one(spec._one(test, "typed_result", {}), "result")
    expected = None if expected_error else spec._to_cel(message or {"bool_value": ["true"]})
    try:
        compiled = backend.compile(expr)
        if isinstance(backend, FastBackend):
            activation = backend.bind({k: from_ref(v) for k, v in values.items()})
            result = to_ref(compiled.run(activation.values, Meter(spec._BUDGET)))  # type: ignore[attr-defined]
        else:
            result = compiled.evaluate_cel(ReferenceActivation(values), spec._BUDGET)  # type: ignore[attr-defined]
    except (CelCompileError, CelEvalError) as err:
        return expected_error, type(err)
    return (not expected_error and spec._same(result, expected)), result


def _agree(a: Any, b: Any) -> bool:
    if isinstance(a, type) and issubclass(a, Exception):
        return isinstance(b, type) and issubclass(b, Exception)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return bool(spec._same(a, b))


@functools.cache
def _compare(folder: Path, name: str) -> tuple[int, list[str]]:
    """(tests compared, disagreements not listed in DELIBERATE) for one conformance file."""
    document = cel_textproto.parse((folder / f"{name}.textproto").read_text(encoding="utf-8"))
    reference = ReferenceBackend()
    # The fast backend as closures (an expression's first runs) and as generated Python (later runs).
    fast_backends = {"fast": FastBackend(), "fast generated": FastBackend(generate_after=0)}
    compared, problems = 0, []
    for section in document.get("section", []):
        for test in section.get("test", []):
            test_name = bytes(spec._one(test, "name", b"")).decode()
            try:
                ref_ok, ref_value = _outcome(reference, test)
                outcomes = {label: _outcome(fast, test) for label, fast in fast_backends.items()}
            except spec._Unsupported:
                continue
            compared += 1
            for label, (fast_ok, fast_value) in outcomes.items():
                if (name, test_name) in DELIBERATE:
                    if not fast_ok or ref_ok:
                        problems.append(
                            f"{test_name}: listed as deliberate, but {label}={fast_ok} ref={ref_ok}"
                        )
                elif fast_ok != ref_ok or not _agree(ref_value, fast_value):
                    problems.append(f"{test_name}: reference {ref_value!r}, {label} {fast_value!r}")
    return compared, problems


@pytest.mark.shared
@pytest.mark.parametrize("name", spec.FILES)
def test_fast_backend_agrees_with_reference_on_cel_spec(shared: Path, name: str) -> None:
    compared, problems = _compare(shared / spec._SUBDIR, name)
    assert compared == spec._baseline()[name]["total"]
    assert not problems, "\n".join(problems)


def _result(backend: CelBackend, expr: str, bindings: dict[str, Any]) -> Any:
    try:
        return backend.compile(expr).evaluate(backend.bind(bindings))
    except CelEvalError:
        return CelEvalError


@pytest.mark.parametrize(("expr", "bindings", "fast", "reference", "reason"), DELIBERATE_EXPRESSIONS)
def test_deliberate_difference(
    expr: str, bindings: dict[str, Any], fast: Any, reference: Any, reason: str
) -> None:
    assert _result(get_backend("fast"), expr, bindings) == fast, reason
    assert _result(get_backend("reference"), expr, bindings) == reference, reason


def test_deliberate_list_names_real_tests() -> None:
    assert {file for file, _ in DELIBERATE} <= set(spec.FILES)
