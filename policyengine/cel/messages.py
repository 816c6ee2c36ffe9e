"""Error messages as users read them: short, one line, in CEL's names, never a dump of the request.

Both backends pass every error message through ``trim_message``, so they read alike whichever runs.
"""

from __future__ import annotations

import re

from celpy.celparser import CELParseError

MAX_MESSAGE = 200
_ACTIVATION_DUMP = re.compile(r"\s*\((in activation|in container|in bindings) .*", re.DOTALL)
_BINDINGS_DUMP = re.compile(r" in bindings \[.*", re.DOTALL)
_CELPY_CLASS = re.compile(r"<class 'celpy\.celtypes\.(\w+?)(?:Type)?'>")
_LARK_RULE = re.compile(r"Token\('RULE', '(\w+)'\)")


def trim_message(text: str) -> str:
    """cel-python messages can embed the whole activation (the request): keep the first, short part,
    with cel-python's class and grammar-rule reprs reduced to CEL names."""
    text = _ACTIVATION_DUMP.sub("", text)
    text = _CELPY_CLASS.sub(lambda m: m.group(1).lower(), text)
    text = _LARK_RULE.sub(r"\1", text)
    text = _BINDINGS_DUMP.sub("", text).strip()
    text = text.splitlines()[0] if text else "evaluation error"
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def syntax_error(err: CELParseError) -> str:
    """A parse error as ``syntax error at line L, column C near '...'``."""
    where = f" at line {err.line}, column {err.column}" if err.line is not None else ""
    text = str(err.args[0]) if err.args else ""
    near = text.splitlines()[0].strip() if text.strip() else ""
    return trim_message(f"syntax error{where}" + (f" near {near!r}" if near else ""))
