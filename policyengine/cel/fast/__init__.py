"""The fast CEL backend: expressions compiled to Python closures that work on the request's JSON values.

It parses and checks exactly as the reference backend does (the shared ``frontend``), so both accept
and reject the same programs, then compiles the tree once (``compiler``); an expression that keeps
running is then generated as one Python function of the same program (``codegen``). ``bind`` converts
nothing: the closures read the request's dicts and lists directly. The Kubernetes libraries are the
shared ones, called through a boundary that converts only a call's arguments (``functions``).

Nothing mutable is shared between evaluations: a compiled expression is a tree of immutable closures,
and each evaluation gets its own context list and a meter no other evaluation holds while it runs, so any
number of threads may evaluate at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policyengine.cel import budget as _budget
from policyengine.cel.budget import BudgetExceeded, Meter
from policyengine.cel.deferred import DEFER_MARK, reads_deferred
from policyengine.cel.fast.codegen import generate
from policyengine.cel.fast.compiler import Compiler, Fn
from policyengine.cel.fast.functions import Library, Native, natives
from policyengine.cel.fast.members import DOTTED_MARK, LazyVariablesBase
from policyengine.cel.fast.meterless import never_charges
from policyengine.cel.fast.values import CelError, to_plain
from policyengine.cel.frontend import Frontend
from policyengine.cel.library import known_names, type_identifiers
from policyengine.cel.messages import trim_message
from policyengine.cel.port import (
    ANY,
    DEFAULT_BUDGET,
    Budget,
    CelCompileError,
    CelEvalError,
    CompiledExpr,
    Declarations,
    Returns,
    VariableDef,
)
from policyengine.cel.variables import VariableDefs, compute, definitions, failed

__all__ = ["FastActivation", "FastBackend", "FastExpr"]

_UNSET: Any = object()
_PYTHON_FAILURES = (TypeError, ValueError, KeyError, IndexError, AttributeError, ArithmeticError)


def _unused(compiled: Any) -> Any:
    raise AssertionError("a constant variable runs nothing")


class _LazyVariables(LazyVariablesBase):
    """The ``variables`` map of one activation: computed on first use (``variables.compute``)."""

    __slots__ = ("_defs", "_memo", "_values", "defined")

    def __init__(self, values: dict[str, Any], defs: Sequence[VariableDef]) -> None:
        self._values = values
        self._memo: dict[str, Any] = {}
        if type(defs) is VariableDefs:  # a policy's, built once with it: its table and names are made
            self._defs = defs.by_name
            self.defined = defs.names
        else:
            self._defs = definitions(defs)
            self.defined = frozenset(self._defs)

    def get(self, name: str, meter: Any) -> Any:
        value = self._memo.get(name, _UNSET)  # not try/except: most variables are read once, a miss
        if value is _UNSET:
            value = self._memo[name] = self._compute(name, meter)
        if isinstance(value, CelError):
            raise value
        return value

    def _compute(self, name: str, meter: Meter) -> Any:
        compiled, const = self._defs[name]
        if compiled is None:
            return compute(name, None, const, _unused, CelError)  # a constant: nothing runs
        if not isinstance(compiled, FastExpr):
            raise TypeError("variables must be compiled by FastBackend")
        try:  # ``compute``, its expression case inlined: variables are read on every request
            return compiled.run(self._values, meter)
        except CelEvalError as err:
            return failed(name, err, CelError)


class FastActivation:
    """The request's bindings as they are; ``extend`` adds per-policy bindings and lazy variables."""

    __slots__ = ("values",)

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def extend(
        self,
        bindings: Mapping[str, Any],
        variables: Sequence[VariableDef] = (),
    ) -> FastActivation:
        values = {**self.values, **bindings}
        _mark_dotted(values, bindings)
        if variables:
            values["variables"] = _LazyVariables(values, variables)
        return FastActivation(values)

    def release(self) -> None:
        self.values.pop("variables", None)  # the map holds ``values``: the cycle ends here


class FastExpr:
    """One compiled expression: its closure and how many comprehension slots it needs. Once it has run
    ``generate_after`` times it runs as generated Python instead (``codegen``; the same program): an
    expression evaluated once, as most are in a one-file ``check``, never pays for generating it."""

    __slots__ = ("_fn", "_pending", "_runs", "_slots", "defers", "meterless", "source")

    def __init__(
        self,
        source: str,
        fn: Fn,
        slots: int,
        pending: tuple[Any, Compiler, int] | None = None,
        *,
        meterless: bool = False,
        defers: bool = False,
    ) -> None:
        self.source = source
        self._fn = fn
        # It may read a field the bindings leave unfilled until asked (``deferred``): it asks first.
        self.defers = defers
        self._slots = (None,) * slots  # the comprehension slots of a fresh context
        # Nothing in it can charge a meter (``meterless``): it runs without arming one.
        self.meterless = meterless and not slots
        self._pending = pending  # (tree, compiler, runs before generating) until generated
        self._runs = 0
        if pending is not None and pending[2] <= 0:
            self._generate()

    def _generate(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._fn = generate(pending[0], pending[1]) or self._fn

    def _warm(self) -> None:
        if self._pending is not None:
            self._runs += 1
            if self._runs >= self._pending[2]:
                self._generate()  # two threads may both generate: each gets the same program

    def run(self, values: dict[str, Any], meter: Meter) -> Any:
        """The result as a fast-backend value; raises CelEvalError."""
        if self._pending is not None:
            self._warm()
        if self.defers:
            _fill(values)
        try:
            return self._fn([values, meter, *self._slots])
        except _FAILURES as err:
            raise _eval_error(err) from None

    def evaluate(self, activation: Any, budget: Budget = DEFAULT_BUDGET) -> Any:
        if type(activation) is not FastActivation:
            raise TypeError("activation must come from FastBackend.bind")
        if self._pending is not None:
            self._warm()
        if self.defers:
            _fill(activation.values)
        if self.meterless:
            try:
                result = self._fn([activation.values, UNCHARGEABLE])
            except _FAILURES as err:
                raise _eval_error(err) from None
            if result is True or result is False:
                return result
            return to_plain(result)
        # A spare meter, re-armed (cost 0, deadline from now, this budget) rather than a new one: making a
        # meter was a tenth of a rule's evaluation. pop() and append() are atomic, so a meter is only
        # ever in one evaluation: a thread, or an evaluation nested in this one, finding none makes one.
        try:
            meter = _SPARE_METERS.pop()
        except IndexError:
            meter = Meter(budget)
        else:  # Meter.rearm, inlined
            clock = _budget.clock
            if budget is meter.budget and clock is meter.clock:
                meter.cost = 0
                meter.checkpoint = meter.opening
                meter.deadline = clock() + budget.max_seconds
            else:
                meter.arm(budget)
        try:  # run() inlined: the engine evaluates dozens of expressions per request
            result = self._fn([activation.values, meter, *self._slots])
        except _FAILURES as err:
            _SPARE_METERS.append(meter)
            raise _eval_error(err) from None
        _SPARE_METERS.append(meter)
        if result is True or result is False:
            return result
        return to_plain(result)


_FAILURES = (CelError, BudgetExceeded, RecursionError, *_PYTHON_FAILURES)


def _fill(values: dict[str, Any]) -> None:
    """Fill the request's deferred fields (``deferred``), when its bindings left any to fill; a filler
    that fails is this expression's error."""
    fill = values.get(DEFER_MARK)
    if fill is not None:
        try:
            fill()
        except Exception as err:
            raise CelEvalError(trim_message(str(err))) from None


class _Unchargeable(Meter):
    """The meter a meterless expression runs with: it is never charged; were it ever (an expression
    ``meterless`` let through by mistake), the evaluation stops as over budget instead of running
    unmetered. Shared, and never changed."""

    __slots__ = ()

    def charge(self, units: int = 1) -> None:
        raise BudgetExceeded("cost budget exceeded: an uncharged expression was charged", 0)

    def check_clock(self) -> None:
        raise BudgetExceeded("time budget exceeded: an uncharged expression was charged", 0)


UNCHARGEABLE: Meter = _Unchargeable(Budget(max_cost=0, max_seconds=0.0))
# Meters of finished evaluations, re-armed by the next ones; as many as ever ran at once (threads,
# nesting). A meter an evaluation still holds -- one abandoned by an exception this does not catch, or
# still running on a thread its caller stopped waiting for -- is not here, so no two evaluations share one.
_SPARE_METERS: list[Meter] = []


def _eval_error(err: BaseException) -> CelEvalError:
    """What an evaluation's failure is to the caller."""
    if isinstance(err, CelError):
        return CelEvalError(trim_message(err.message))
    if isinstance(err, BudgetExceeded):
        return CelEvalError(str(err), "budget_exceeded", err.cost)
    if isinstance(err, RecursionError):
        return CelEvalError("expression nests too deeply", "budget_exceeded")
    return CelEvalError(trim_message(f"{type(err).__name__}: {err}"))


class FastBackend:
    name = "fast"
    defers = True  # its expressions read the bindings as they are, so fields may be filled on demand

    def __init__(self, *, generate_after: int | None = 2) -> None:
        """``generate_after``: how many runs of an expression before its common shapes run as generated
        Python (``codegen``; 0: at once); None keeps every expression a tree of closures (the same
        program, slower; for comparing the two)."""
        self._generate_after = generate_after
        self._library = Library()
        self._natives: dict[str, Native] = natives(self._library)
        self._idents = dict(type_identifiers())
        self._frontend = Frontend(known_names(self._library.table), frozenset(self._idents))

    def compile(
        self, source: str, declared: Declarations | None = None, returns: Returns = ANY
    ) -> CompiledExpr:
        tree = self._frontend.parse(source, declared, returns)
        compiler = Compiler(self._library, self._natives, self._idents)
        try:
            fn = compiler.compile(tree)
        except RecursionError:
            raise CelCompileError("expression nests too deeply") from None
        # The same program as generated Python where its shapes allow (``codegen``), else the closures.
        after = self._generate_after
        pending = None if after is None else (tree, compiler, after)
        return FastExpr(
            source, fn, compiler.slots, pending, meterless=never_charges(tree), defers=reads_deferred(tree)
        )

    def bind(self, bindings: Mapping[str, Any]) -> FastActivation:
        values = dict(bindings)
        _mark_dotted(values, bindings)
        return FastActivation(values)


def _mark_dotted(values: dict[str, Any], bindings: Mapping[str, Any]) -> None:
    for name in bindings:  # a loop, not any() over a generator: this runs for every policy's activation
        if "." in name:
            values[DOTTED_MARK] = True
            return
