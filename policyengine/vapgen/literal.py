"""JSON values as CEL literals, so a policy's fixed parameters can be written into its expressions.

Kubernetes rejects list and map literals whose entries differ in type (HomogeneousAggregateLiterals), and
a Kubernetes object mixes strings, numbers, lists and maps: every entry is wrapped in ``dyn()``, the
escape cel-go gives for exactly this.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64  # deeper than any object the API server stores (its own JSON nesting limit is far lower)


def cel_literal(value: Any, depth: int = 0) -> str:
    """``value`` (dict, list, str, int, float, bool, None) as a CEL expression that evaluates to it."""
    if depth > MAX_DEPTH:
        raise ValueError(f"the value nests more than {MAX_DEPTH} levels deep")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} has no CEL literal")
        return repr(value) if any(c in repr(value) for c in ".e") else f"{value!r}.0"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a CEL double-quoted string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(f"dyn({cel_literal(v, depth + 1)})" for v in value) + "]"
    if isinstance(value, dict):
        entries = (f"{json.dumps(str(k))}: dyn({cel_literal(v, depth + 1)})" for k, v in value.items())
        return "{" + ", ".join(entries) + "}"
    raise ValueError(f"a {type(value).__name__} has no CEL literal")
