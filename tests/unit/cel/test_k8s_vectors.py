"""Every record of the Kubernetes CEL vectors (../shared/vectors/k8s-cel), run through the backend port.

A record expecting a value must evaluate to it (``expect_cel`` is compared with CEL ``==``); a record
expecting an error must fail at compile or evaluation time. Records the backend cannot pass are listed
in XFAIL with the reason; they are strict, so fixing one turns its entry into a failure to remove.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import pytest

from policyengine.cel import BACKENDS, CelBackend, CelCompileError, CelEvalError, Declarations, get_backend
from policyengine.cel.fast import FastBackend

_SUBDIR = Path("vectors") / "k8s-cel"
_ROOT = Path(__file__).resolve().parents[3]
_SHARED = Path(os.environ.get("POLICYENGINE_SHARED", _ROOT.parent / "shared"))

# (file, index) -> why the reference backend cannot pass the record.
XFAIL: dict[tuple[str, int], str] = {
    ("strings.json", 218): "cel-python durations are datetime.timedelta: microsecond resolution, so "
    "duration('2ns') is 0s",
    ("strings.json", 220): "cel-python map literals are Python dicts: the keys 1 and true collide "
    "(equal hashes) and cel-python refuses to compare them",
}


@functools.cache
def _records(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, list)
    return data


def _params() -> list[Any]:
    folder = _SHARED / _SUBDIR
    if not folder.is_dir():
        return [pytest.param("", -1, id="k8s-cel-vectors-absent")]
    params = []
    for path in sorted(folder.glob("*.json")):
        for index in range(len(_records(path))):
            reason = XFAIL.get((path.name, index))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(path.name, index, id=f"{path.stem}-{index}", marks=marks))
    return params


@pytest.fixture(scope="module", params=[*BACKENDS, "fast-generated"])
def backend(request: pytest.FixtureRequest) -> CelBackend:
    if request.param == "fast-generated":  # the fast backend's generated Python, from the first run
        return FastBackend(generate_after=0)
    return get_backend(request.param)


def _same(actual: Any, expected: Any) -> bool:
    """Equality that keeps JSON's distinctions: bool is not int, int is not float."""
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, list):
        return len(actual) == len(expected) and all(map(_same, actual, expected))
    if isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(_same(actual[k], expected[k]) for k in expected)
    return bool(actual == expected)


@pytest.mark.shared
@pytest.mark.parametrize(("file", "index"), _params())
def test_k8s_vector(shared: Path, backend: CelBackend, file: str, index: int) -> None:
    record = _records(shared / _SUBDIR / file)[index]
    activation = backend.bind(record.get("bindings") or {})
    expr = record["expr"]
    if record.get("error") is not None:
        with pytest.raises((CelCompileError, CelEvalError)):
            backend.compile(expr).evaluate(activation)
        return
    if record.get("expect_cel") is not None:
        check = backend.compile(f"({expr}) == ({record['expect_cel']})")
        assert check.evaluate(activation) is True
        return
    assert _same(backend.compile(expr).evaluate(activation), record["expect"])


@functools.cache
def _fast() -> CelBackend:
    return get_backend("fast")


@pytest.mark.shared
@pytest.mark.parametrize(("file", "index"), [pytest.param(*p.values, id=p.id) for p in _params()])
def test_k8s_vector_reads_only_its_bindings(shared: Path, file: str, index: int) -> None:
    """Compiled against declarations naming just the record's bindings, every record that evaluates
    still compiles: comprehension variables, type names and library namespaces are not free names."""
    record = _records(shared / _SUBDIR / file)[index]
    if record.get("error") is not None:
        return
    declared = Declarations("vector", frozenset(record.get("bindings") or {}))
    _fast().compile(record["expr"], declared)
    if record.get("expect_cel") is not None:
        _fast().compile(record["expect_cel"], declared)
