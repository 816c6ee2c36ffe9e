"""The report writers' own indented JSON dump: the very text of ``json.dumps(value, indent=2)``, for the
values reports hold and for any other (left to the json module)."""

from __future__ import annotations

import enum
import json
import math
from typing import Any

import pytest

from policyengine.reports import streamjson


class Word(enum.StrEnum):
    FAIL = "fail"


class Count(enum.IntEnum):
    TWO = 2


VALUES: list[Any] = [
    {},
    [],
    "",
    0,
    -17,
    10**30,
    True,
    None,
    {"a": [], "b": {}, "c": [[], [{}]], "d": [1, "2", None, False]},
    {"message": 'quote " backslash \\ tab \t newline \n nul \x00 del \x7f', "é": "ünïcödé ✓ 𝄞"},
    {"resource": {"kind": "Job", "name": "x"}, "source": {"file": "a.yaml", "line": 3, "column": 7}},
    ("a", ("b", ()), {"t": (1, 2)}),
    {"outcome": Word.FAIL, "count": Count.TWO},
    {"x": 1.5, "y": [0.1, 1e300, -0.0]},
    {"nan": math.nan, "inf": [math.inf, -math.inf]},
    {1: "int key", "s": {None: 1, True: 2, 2.5: 3}},
    [{"deep": [[[[[["x"]]]]]]}],
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
@pytest.mark.parametrize("indent", ["", "  ", "    "])
def test_the_dump_is_the_json_modules_text(value: Any, indent: str) -> None:
    assert streamjson.dumps(value, indent) == json.dumps(value, indent=2).replace("\n", "\n" + indent)


def test_a_value_json_cannot_write_fails_as_the_json_module_does() -> None:
    with pytest.raises(TypeError):
        json.dumps({"a": {1, 2}}, indent=2)
    with pytest.raises(TypeError):
        streamjson.dumps({"a": {1, 2}})
