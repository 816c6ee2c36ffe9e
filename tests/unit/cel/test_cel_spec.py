"""The cel-spec conformance files (../shared/vectors/cel-spec/testdata) against the reference backend.

Tests needing protobuf message types (TestAllTypes, Any, enums, containers) are left out. The pass
count of each file is pinned in cel_spec_baseline.json: the test fails when a file passes fewer tests
than recorded. After an improvement, refresh the table with
``python tests/unit/cel/test_cel_spec.py`` (run from the repository root).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from celpy import celtypes

from policyengine.cel import Budget, CelCompileError, CelEvalError
from policyengine.cel.reference import ReferenceActivation, ReferenceBackend

sys.path.insert(0, str(Path(__file__).parent))
import cel_textproto

_SUBDIR = Path("vectors") / "cel-spec" / "testdata"
_ROOT = Path(__file__).resolve().parents[3]
_SHARED = Path(os.environ.get("POLICYENGINE_SHARED", _ROOT.parent / "shared"))
BASELINE = Path(__file__).with_name("cel_spec_baseline.json")
FILES = ("basic", "comparisons", "conversions", "fields", "fp_math", "integer_math", "lists", "logic",
         "macros", "macros2", "namespace", "optionals", "parse", "plumbing", "string", "timestamps")  # fmt: skip
_PROTO_ONLY = re.compile(
    r"TestAllTypes|NestedTestAllTypes|GlobalEnum|google\.protobuf\.|\bproto[23]\b|\.Any\b"
)
_BUDGET = Budget(max_cost=200_000, max_seconds=10.0)  # cost bounds the run; the clock only guards
_TYPES = {
    "int": celtypes.IntType, "uint": celtypes.UintType, "double": celtypes.DoubleType,
    "bool": celtypes.BoolType, "string": celtypes.StringType, "bytes": celtypes.BytesType,
    "list": celtypes.ListType, "map": celtypes.MapType, "null_type": type(None), "type": celtypes.TypeType,
}  # fmt: skip


class _Unsupported(Exception):
    """The test needs something outside this harness (proto messages, unknowns)."""


def _one(message: dict[str, list[Any]], field: str, default: Any = None) -> Any:
    values = message.get(field)
    return values[0] if values else default


def _to_cel(value: dict[str, list[Any]]) -> Any:
    """A cel.expr.Value message as a cel-python value."""
    (field, items), *_ = value.items() if value else [("null_value", [None])]
    item = items[0]
    if field == "null_value":
        return None
    if field == "bool_value":
        return celtypes.BoolType(item == "true")
    if field == "int64_value":
        return celtypes.IntType(int(item))
    if field == "uint64_value":
        return celtypes.UintType(int(item))
    if field == "double_value":
        text = str(item).lower()
        number = float(
            "inf" if text in ("inf", "infinity") else "-inf" if text in ("-inf", "-infinity") else text
        )
        return celtypes.DoubleType(number)
    if field == "string_value":
        return celtypes.StringType(bytes(item).decode("utf-8"))
    if field == "bytes_value":
        return celtypes.BytesType(bytes(item))
    if field == "list_value":
        return celtypes.ListType(_to_cel(v) for v in item.get("values", []))
    if field == "map_value":
        return celtypes.MapType(
            {_to_cel(_one(e, "key")): _to_cel(_one(e, "value")) for e in item.get("entries", [])}
        )
    if field == "type_value":
        name = bytes(item).decode()
        if name not in _TYPES:
            raise _Unsupported(name)
        return _TYPES[name]
    raise _Unsupported(field)


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, type):
        return actual is expected
    if expected is None or actual is None:
        return actual is None and expected is None
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, celtypes.DoubleType) and math.isnan(expected):
        return math.isnan(actual)
    if isinstance(expected, list):
        return len(actual) == len(expected) and all(map(_same, actual, expected))
    if isinstance(expected, dict):
        return set(actual) == set(expected) and all(_same(actual[k], expected[k]) for k in expected)
    return bool(actual == expected)


def _run(backend: ReferenceBackend, test: dict[str, list[Any]]) -> bool:
    """True when the backend gives the expected outcome; raises _Unsupported when out of scope."""
    expr = bytes(_one(test, "expr", b"")).decode("utf-8")
    if _one(test, "container") or _PROTO_ONLY.search(expr) or "unknown" in test:
        raise _Unsupported("proto types or unknowns")
    values = {}
    for binding in test.get("bindings", []):
        holder = _one(binding, "value", {})
        if "value" not in holder:
            raise _Unsupported("error binding")
        values[bytes(_one(binding, "key")).decode()] = _to_cel(_one(holder, "value", {}))
    expected_error = "eval_error" in test or "any_eval_errors" in test
    expected_message = _one(test, "value") or _one(_one(test, "typed_result", {}), "result")
    expected = None if expected_error else _to_cel(expected_message or {"bool_value": ["true"]})
    try:
        result = backend.compile(expr).evaluate_cel(ReferenceActivation(values), _BUDGET)  # type: ignore[attr-defined]
    except (CelCompileError, CelEvalError):
        return expected_error
    return not expected_error and _same(result, expected)


@functools.cache
def _results(folder: Path, name: str) -> tuple[int, int]:
    """(passed, total) for one conformance file."""
    document = cel_textproto.parse((folder / f"{name}.textproto").read_text(encoding="utf-8"))
    backend = ReferenceBackend()
    passed = total = 0
    for section in document.get("section", []):
        for test in section.get("test", []):
            try:
                ok = _run(backend, test)
            except _Unsupported:
                continue
            total += 1
            passed += ok
    return passed, total


def _baseline() -> dict[str, dict[str, int]]:
    data = json.loads(BASELINE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.mark.shared
@pytest.mark.parametrize("name", FILES)
def test_cel_spec_pass_count_holds(shared: Path, name: str) -> None:
    recorded = _baseline()[name]
    passed, total = _results(shared / _SUBDIR, name)
    assert total == recorded["total"], f"{name}: {total} runnable tests, baseline says {recorded['total']}"
    assert passed >= recorded["passed"], f"{name}: {passed}/{total} pass, baseline {recorded['passed']}"


def test_baseline_lists_every_file() -> None:
    assert sorted(_baseline()) == sorted(FILES)


if __name__ == "__main__":
    table = {}
    for file in FILES:
        passed, total = _results(_SHARED / _SUBDIR, file)
        table[file] = {"passed": passed, "total": total}
        print(f"{file:14} {passed:4}/{total:<4} {100 * passed / max(total, 1):5.1f}%")
    BASELINE.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
