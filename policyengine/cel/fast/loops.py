"""The comprehension loops ``codegen`` generates: ``all``/``exists`` and ``filter``/``map`` on one
variable, as the closures of ``macros`` run them (the same charge per iteration to the same meter, the
same errors, iteration variables in the same context slots)."""

from __future__ import annotations

from typing import Any

from policyengine.cel.syntax import simple_ident

MAX_BLOCKS = 12  # nested for/try blocks (CPython refuses more than 20)


class Unsupported(Exception):
    """A node the compiler did not record: the whole expression keeps its closure."""


class Loops:
    """The loop methods of the generator (``codegen._Generator``), which provides the plumbing."""

    compiler: Any
    lines: list[str]
    indent: int
    blocks: int
    closures: int
    bound: dict[int, str]
    scope: dict[str, int]

    def gen(self, tree: Any) -> str:
        raise NotImplementedError

    def emit(self, line: str) -> None:
        raise NotImplementedError

    def temp(self) -> str:
        raise NotImplementedError

    def store(self, expr: str) -> str:
        raise NotImplementedError

    def closure(self, node: Any) -> str:
        raise NotImplementedError

    def _macro(self, node: Any, target_tree: Any, name: str, args: list[Any]) -> str:
        recorded = self.compiler.macros.get(id(node))
        if recorded is None:
            raise Unsupported
        slots, cost = recorded
        if name in ("filter", "map") and len(slots) == 1 and self.blocks + 1 <= MAX_BLOCKS:
            return self._collect(name, slots[0], cost, target_tree, args)
        if name not in ("all", "exists") or len(slots) != 1 or self.blocks + 2 > MAX_BLOCKS:
            return self.closure(node)
        universal = name == "all"
        (slot,) = slots
        items = self.store(self.gen(target_tree))
        self.emit(f"if type({items}) not in _COLLECTIONS: raise _non_collection({name!r})")
        meter, error, result, value, item = self.temp(), self.temp(), self.temp(), self.temp(), f"_s{slot}"
        self.emit(f"{meter} = ctx[1]")
        self.emit(f"{error} = None")
        self.emit(f"{result} = {universal}")
        self.emit(f"for {item} in {items}:")
        self.indent += 1
        self.blocks += 2
        self.emit(f"{meter}.cost += {cost}")
        self.emit(f"if {meter}.cost >= {meter}.checkpoint: {meter}.charge(0)")
        self.emit(f"ctx[{slot}] = {item}")  # for the closures of the body that read the slot
        slot_line, closures = len(self.lines) - 1, self.closures
        saved_scope, saved_bound = self.scope, dict(self.bound)
        self.scope = {**self.scope, str(simple_ident(args[0])): slot}
        self.bound[slot] = item
        self.emit("try:")
        self.indent += 1
        self.emit(f"{value} = {self.gen(args[-1])}")
        self.indent -= 1
        self.scope, self.bound = saved_scope, saved_bound
        if self.closures == closures:
            self.lines[slot_line] = ""  # no closure in the body: nothing reads the slot
        self.emit("except _CelError as _e:")
        self.emit(f"    if {error} is None: {error} = _e")
        self.emit("    continue")
        self.emit(f"if {value} is {not universal}:")
        self.emit(f"    {result} = {not universal}")
        self.emit("    break")
        self.emit(f"if {value} is not {universal} and {error} is None: {error} = _not_bool()")
        self.blocks -= 2
        self.indent -= 1
        self.emit("else:")
        self.emit(f"    if {error} is not None: raise {error}")
        return result

    def _collect(self, name: str, slot: int, cost: int, target_tree: Any, args: list[Any]) -> str:
        """``filter`` and ``map`` (with or without a predicate) on one variable, as ``macros.collect``
        runs them: the same charge per item, a predicate that is not a bool an error, the first error
        of a predicate or transform the macro's."""
        items = self.store(self.gen(target_tree))
        self.emit(f"if type({items}) not in _COLLECTIONS: raise _non_collection({name!r})")
        meter, out, item = self.temp(), self.temp(), f"_s{slot}"
        self.emit(f"{meter} = ctx[1]")
        self.emit(f"{out} = []")
        self.emit(f"for {item} in {items}:")
        self.indent += 1
        self.blocks += 1
        self.emit(f"{meter}.cost += {cost}")
        self.emit(f"if {meter}.cost >= {meter}.checkpoint: {meter}.charge(0)")
        self.emit(f"ctx[{slot}] = {item}")  # for the closures of the body that read the slot
        slot_line, closures = len(self.lines) - 1, self.closures
        saved_scope, saved_bound = self.scope, dict(self.bound)
        self.scope = {**self.scope, str(simple_ident(args[0])): slot}
        self.bound[slot] = item
        bodies = args[1:]
        if name == "filter" or len(bodies) == 2:
            keep = self.store(self.gen(bodies[0]))
            self.emit(f"if {keep} is not True and {keep} is not False: raise _not_bool()")
            self.emit(f"if {keep} is False: continue")
        self.emit(f"{out}.append({item if name == 'filter' else self.gen(bodies[-1])})")
        self.scope, self.bound = saved_scope, saved_bound
        if self.closures == closures:
            self.lines[slot_line] = ""  # no closure in the body: nothing reads the slot
        self.blocks -= 1
        self.indent -= 1
        return out
