"""The packages stay readable: no module over 400 lines, no function over 60 (the few known exceptions
are listed with their size, so they cannot grow unnoticed)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
CHECKED = [*(sorted((ROOT / package).rglob("*.py")) for package in ("policyengine", "webhook", "audit"))]
CHECKED = [path for paths in CHECKED for path in paths]


def test_no_module_is_too_long() -> None:
    long = {}
    for path in CHECKED:
        lines = path.read_text(encoding="utf-8").count("\n")
        if lines > MAX_MODULE_LINES:
            long[str(path.relative_to(ROOT))] = lines
    assert long == {}


def test_no_function_is_too_long() -> None:
    long = {}
    for path in CHECKED:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.name}"] = lines
    assert long == {}
