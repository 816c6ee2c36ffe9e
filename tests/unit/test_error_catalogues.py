"""Every error code is in its package's catalogue: the core's LOAD_CODES/EVAL_CODES, audit's ERROR_CODES
and VERIFY_CODES, the webhook's CODES. The sources are read with ``ast``: every ``code=`` argument, every
``code`` default and comparison, every Problem's code and every ``raise`` of a catalogued class."""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest

import audit.errors
import policyengine.errors
import webhook.errors

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Uses:
    """The codes a package's sources give, where each is given."""

    resolved: list[tuple[str, str]] = field(default_factory=list)  # (code, where)
    raised: list[tuple[str, str]] = field(default_factory=list)  # (code of an error class raised, where)
    literals: list[tuple[str, str]] = field(default_factory=list)  # (code written as a string, where)
    constants: set[str] = field(default_factory=set)  # catalogue constants referred to by name


class _Scanner(ast.NodeVisitor):
    def __init__(self, catalogue: ModuleType, where: str, uses: Uses) -> None:
        self.catalogue = catalogue
        self.alias: str | None = None  # the name the catalogue module is imported as, if it is
        self.where = where
        self.uses = uses
        self.imported: dict[str, str] = {}  # local name -> name in the catalogue module

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for name in node.names:
            if node.module == self.catalogue.__name__:
                self.imported[name.asname or name.name] = name.name
            elif f"{node.module}.{name.name}" == self.catalogue.__name__:
                self.alias = name.asname or name.name

    def _catalogued(self, node: ast.expr) -> object:
        """The catalogue object a name or ``errors.NAME`` refers to, if it does."""
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == self.alias
        ):
            return getattr(self.catalogue, node.attr)
        if isinstance(node, ast.Name) and node.id in self.imported:
            return getattr(self.catalogue, self.imported[node.id])
        return None

    def code(self, node: ast.expr | None, line: int) -> None:
        if node is None:
            return
        where = f"{self.where}:{line}"
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            self.uses.literals.append((node.value, where))
            self.uses.resolved.append((node.value, where))
            return
        if isinstance(node, ast.IfExp):
            self.code(node.body, line)
            self.code(node.orelse, line)
            return
        if isinstance(node, ast.Attribute) and node.attr == "code":  # SomeError.code
            cls = self._catalogued(node.value)
            if isinstance(cls, type):
                self.uses.resolved.append((cls.code, where))
            return
        value = self._catalogued(node)
        if isinstance(value, str):
            name = node.attr if isinstance(node, ast.Attribute) else self.imported[node.id]  # type: ignore[attr-defined]
            self.uses.constants.add(name)
            self.uses.resolved.append((value, where))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        value = self._catalogued(node)
        if isinstance(value, str):
            self.uses.constants.add(node.attr)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        for keyword in node.keywords:
            if keyword.arg == "code":
                self.code(keyword.value, node.lineno)
        callee = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        position = {"Problem": 2, "_Problem": 1, "CelEvalError": 1, "CelCompileError": 1}.get(callee)
        if position is not None and len(node.args) > position:
            self.code(node.args[position], node.lineno)
        self.generic_visit(node)

    def visit_Raise(self, node: ast.Raise) -> None:
        exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        cls = self._catalogued(exc) if exc is not None else None
        if isinstance(cls, type):
            self.uses.raised.append((cls.code, f"{self.where}:{node.lineno}"))
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        sides = [node.left, *node.comparators]
        if any(isinstance(s, ast.Attribute) and s.attr == "code" for s in sides):
            for side in sides:
                if not (isinstance(side, ast.Attribute) and side.attr == "code"):
                    self.code(side, node.lineno)
        self.generic_visit(node)

    def visit_arguments(self, node: ast.arguments) -> None:
        positional = [*node.posonlyargs, *node.args]
        defaults = dict(zip(positional[len(positional) - len(node.defaults) :], node.defaults, strict=True))
        defaults.update({a: d for a, d in zip(node.kwonlyargs, node.kw_defaults, strict=True) if d})
        for arg, default in defaults.items():
            if arg.arg == "code":
                self.code(default, default.lineno)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if isinstance(node.target, ast.Name) and node.target.id == "code":
            self.code(node.value, node.lineno)
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and key.value == "code":
                self.code(value, node.lineno)
        self.generic_visit(node)


def scan(package: str, catalogue: ModuleType) -> Uses:
    uses = Uses()
    own = Path(inspect.getfile(catalogue)).resolve()
    for path in sorted((ROOT / package).rglob("*.py")):
        if path.resolve() == own:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        _Scanner(catalogue, str(path.relative_to(ROOT)), uses).visit(tree)
    return uses


def _classes(module: ModuleType, base: type) -> list[type]:
    return [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, base)]


def _constants(module: ModuleType) -> dict[str, str]:
    return {k: v for k, v in vars(module).items() if k.isupper() and isinstance(v, str)}


def _outside(uses: list[tuple[str, str]], allowed: frozenset[str]) -> list[tuple[str, str]]:
    return [(code, where) for code, where in uses if code not in allowed]


# -- the core ---------------------------------------------------------------------------------------------


def test_every_code_the_core_gives_is_in_load_or_eval_codes() -> None:
    errors = policyengine.errors
    catalogue = errors.LOAD_CODES | errors.EVAL_CODES
    uses = scan("policyengine", errors)
    assert uses.resolved, "the scan found no codes at all"
    assert _outside(uses.resolved, catalogue) == []


def test_the_core_catalogue_is_every_code_constant_and_each_is_used() -> None:
    errors = policyengine.errors
    assert not errors.LOAD_CODES & errors.EVAL_CODES
    constants = _constants(errors)
    assert set(constants.values()) == errors.LOAD_CODES | errors.EVAL_CODES
    uses = scan("policyengine", errors)
    used = {constants[name] for name in uses.constants} | {code for code, _ in uses.resolved}
    assert sorted(set(constants.values()) - used) == []


# -- audit ------------------------------------------------------------------------------------------------


def test_every_code_audit_gives_is_catalogued_and_named_from_the_catalogue() -> None:
    errors = audit.errors
    uses = scan("audit", errors)
    assert len(uses.resolved) > 40, "the scan found too few codes"
    assert _outside(uses.resolved, errors.CODES) == []
    assert _outside(uses.raised, errors.ERROR_CODES) == []
    assert uses.literals == [], "codes are named from audit.errors, never written as strings"


def test_every_audit_error_class_and_constant_is_in_the_catalogue_and_used() -> None:
    errors = audit.errors
    assert {c.code for c in _classes(errors, errors.AuditError)} <= errors.ERROR_CODES
    constants = _constants(errors)
    class_codes = {c.code for c in _classes(errors, errors.AuditError)}
    assert set(constants.values()) == errors.CODES - class_codes
    assert errors.CODES == errors.ERROR_CODES | errors.VERIFY_CODES | errors.API_CODES
    assert sorted(set(constants) - scan("audit", errors).constants) == []


def test_the_audit_docstring_draws_every_code() -> None:
    words = set(re.findall(r"[a-z_]+", audit.errors.__doc__ or ""))
    missing = [c for c in audit.errors.CODES if c not in words]
    assert sorted(missing) == []


# -- the webhook ------------------------------------------------------------------------------------------


def test_every_code_the_webhook_answers_is_a_catalogued_error_class() -> None:
    errors = webhook.errors
    uses = scan("webhook", errors)
    assert uses.resolved, "the scan found no codes at all"
    assert _outside(uses.resolved + uses.raised, errors.CODES) == []
    assert uses.literals == [], "codes are named by webhook.errors classes, never written as strings"
    assert {c.code for c in _classes(errors, errors.WebhookError)} == errors.CODES


@pytest.mark.parametrize("module", [audit.errors, webhook.errors, policyengine.errors])
def test_codes_are_stable_snake_case(module: ModuleType) -> None:
    codes = {c.code for c in _classes(module, Exception)} | set(_constants(module).values())
    assert all(c.replace("_", "").isalpha() and c == c.lower() for c in codes)
