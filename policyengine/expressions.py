"""The CEL of a policy set at load: each expression compiled once, against the names its document kind
binds and the result type its field needs, and every ``variables.<name>`` reference checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from policyengine import errors, native
from policyengine.cel import (
    ANY,
    BOOL,
    STRING,
    STRING_OR_NULL,
    CelBackend,
    CelCompileError,
    CompiledExpr,
    Declarations,
    Returns,
    get_backend,
)
from policyengine.cel.checker import variables_read
from policyengine.errors import Problem
from policyengine.model import Expr, Policy, PolicyException


class Compiler:
    """Compiles CEL once per distinct source text and remembers the result (a text met again under
    other declarations or result types is checked again, and the first compiled form kept)."""

    def __init__(self, backend: CelBackend | None = None) -> None:
        self.backend = backend or get_backend()
        self._cache: dict[str, CompiledExpr] = {}
        self._checked: set[tuple[str, Declarations | None, Returns]] = set()

    def compile(
        self, source: str, declared: Declarations | None = None, returns: Returns = ANY
    ) -> CompiledExpr:
        compiled = self._cache.get(source)
        checks = (source, declared, returns)
        if compiled is None or ((declared, returns) != (None, ANY) and checks not in self._checked):
            fresh = self.backend.compile(source, declared, returns)
            self._checked.add(checks)
            compiled = self._cache.setdefault(source, fresh)
        return compiled

    def check(
        self,
        exprs: Iterable[Expr | tuple[Expr, Returns]],
        problems: list[Problem],
        declared: Declarations | None = None,
    ) -> None:
        """Compile each expression (and the result types it accepts) against ``declared``."""
        for item in exprs:
            e, returns = item if isinstance(item, tuple) else (item, ANY)
            try:
                self.compile(e.source, declared, returns)
            except CelCompileError as err:
                problems.append(Problem(e.ref.file, e.ref.line, err.code, str(err), e.path))


def typed_expressions(policy: Policy) -> Iterator[tuple[Expr, Returns]]:
    """Every expression of ``policy`` with the result types its field accepts, as Kubernetes checks
    them: conditions and validations yield bool, messages and field paths a string, audit annotations
    a string or null; variables anything."""
    for c in policy.match_conditions:
        yield c.expression, BOOL
    for v in policy.variables:
        if v.expression is not None:
            yield v.expression, ANY
    for val in policy.validations:
        yield val.expression, BOOL
        if val.message_expression is not None:
            yield val.message_expression, STRING
        if val.field_path_expression is not None:
            yield val.field_path_expression, STRING
    for a in policy.audit_annotations:
        yield a.expression, STRING_OR_NULL


def policy_expressions(policy: Policy) -> Iterator[Expr]:
    return (e for e, _ in typed_expressions(policy))


def declarations(policy: Policy) -> Declarations:
    """The root names ``policy``'s expressions may read, by the kind of document it came from."""
    from policyengine.compat import gatekeeper, kyverno, vap

    by_origin = {
        vap.POLICY_KIND: vap.DECLARED,
        gatekeeper.ORIGIN: gatekeeper.DECLARED,
        kyverno.ORIGIN: kyverno.DECLARED,
    }
    return by_origin.get(policy.origin, native.DECLARED)


def exception_expressions(exc: PolicyException) -> Iterator[tuple[Expr, Returns]]:
    for c in exc.match_conditions:
        yield c.expression, BOOL


def check_variable_references(
    policy: Policy, problems: list[Problem], shared: frozenset[str] = frozenset()
) -> None:
    """Every ``variables.<name>`` must be declared (by the policy, or as a ``shared`` variable), and a
    variable may read only the ones before it, as Kubernetes' type checker requires: a misspelt name
    fails at load, not at admission. A shared variable counts as declared before the policy's own,
    unless the policy declares the name itself (its own wins)."""
    declared: list[str] = []
    inherited = shared - {v.name for v in policy.variables}

    def check(e: Expr) -> None:
        for name in sorted(variables_read(e.source) - set(declared) - inherited):
            if name in {v.name for v in policy.variables}:
                why = f"is declared after this variable, which may use only {', '.join(declared) or 'none'}"
            else:
                why = f"is not declared (variables: {', '.join(declared) or 'none'})"
            problems.append(
                Problem(e.ref.file, e.ref.line, errors.CEL_COMPILE, f"variables.{name} {why}", e.path)
            )

    for v in policy.variables:
        if v.expression is not None:
            check(v.expression)
        declared.append(v.name)
    rest = [e for e in policy_expressions(policy) if all(e is not v.expression for v in policy.variables)]
    for e in rest:
        check(e)
