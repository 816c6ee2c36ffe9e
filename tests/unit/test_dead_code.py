"""No dead code in the webhook, the audit package and the core's params: every module-level function,
class and constant there is named somewhere else in the project (code, tests, benchmarks or docs)."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED = [*sorted((ROOT / "webhook").rglob("*.py")), *sorted((ROOT / "audit").rglob("*.py"))]
CHECKED.append(ROOT / "policyengine" / "params.py")
SEARCHED = ("policyengine", "webhook", "audit", "tests", "bench", "scripts", "docs", "deploy")


def _defined(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.extend(t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper())
    return [n for n in names if n not in {"__all__"}]


def _words() -> Counter[str]:
    words: Counter[str] = Counter()
    files = [
        p for d in SEARCHED for p in (ROOT / d).rglob("*") if p.suffix in {".py", ".md", ".yaml", ".toml"}
    ]
    for path in [*files, ROOT / "README.md", ROOT / "pyproject.toml"]:
        words.update(
            re.findall(r"[A-Za-z_][A-Za-z0-9_]*", path.read_text(encoding="utf-8", errors="replace"))
        )
    return words


def test_every_module_level_name_is_used_somewhere_else() -> None:
    words = _words()
    unused = [
        f"{path.relative_to(ROOT)}:{name}" for path in CHECKED for name in _defined(path) if words[name] < 2
    ]
    assert unused == []
