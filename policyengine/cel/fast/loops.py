"""The comprehension loops ``codegen`` generates: ``all``/``exists`` and ``filter``/``map`` on one
variable, as the closures of ``macros`` run them (the same charge per iteration to the same meter, the
same errors, iteration variables in the same context slots)."""

from __future__ import annotations

from typing import Any, NamedTuple

from policyengine.cel.syntax import simple_ident

MAX_BLOCKS = 12  # nested for/try blocks (CPython refuses more than 20)


class _Frame(NamedTuple):
    """What a loop's body changes in the generator, kept to put back after it."""

    slot: int  # the loop variable's context slot
    slot_line: int  # the line that writes the item to its context slot
    closures: int  # closures generated before the body
    scope: dict[str, int]
    bound: dict[int, str]
    paths: dict[int, Any]  # slot -> the speculated paths of the generated loop binding it


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
    paths: dict[int, Any]  # slot -> the loop's speculated paths (``paths.PathScope``)
    bools: set[str]  # generated expressions whose value is a bool

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

    def boolean(self, expr: str) -> str:
        raise NotImplementedError

    def new_paths(self, owner: Any) -> Any:
        raise NotImplementedError

    def fill(self, paths: Any) -> None:
        raise NotImplementedError

    def _macro(self, node: Any, target_tree: Any, name: str, args: list[Any]) -> str:
        recorded = self.compiler.macros.get(id(node))
        if recorded is None:
            raise Unsupported
        slots, cost = recorded
        if name in ("filter", "map") and len(slots) == 1 and self.blocks + 1 <= MAX_BLOCKS:
            return self._collect(node, name, slots[0], cost, target_tree, args)
        if name not in ("all", "exists") or len(slots) != 1 or self.blocks + 2 > MAX_BLOCKS:
            return self.closure(node)
        universal = name == "all"
        error, result, value = self.temp(), self.temp(), self.temp()
        _, frame = self._enter(
            node, name, slots[0], cost, target_tree, args[0], 2, f"{error} = None", f"{result} = {universal}"
        )
        self.emit("try:")
        self.indent += 1
        predicate = self.gen(args[-1])
        self.emit(f"{value} = {predicate}")
        self.indent -= 1
        self._leave_body(frame)
        self.emit("except _CelError as _e:")
        self.emit(f"    if {error} is None: {error} = _e")
        self.emit("    continue")
        self.emit(f"if {value} is {not universal}:")
        self.emit(f"    {result} = {not universal}")
        self.emit("    break")
        if predicate not in self.bools:
            self.emit(f"if {value} is not {universal} and {error} is None: {error} = _not_bool()")
        self.blocks -= 2
        self.indent -= 1
        self.emit("else:")
        self.emit(f"    if {error} is not None: raise {error}")
        return self.boolean(result)

    def _collect(self, node: Any, name: str, slot: int, cost: int, target_tree: Any, args: list[Any]) -> str:
        """``filter`` and ``map`` (with or without a predicate) on one variable, as ``macros.collect``
        runs them: the same charge per item, a predicate that is not a bool an error, the first error
        of a predicate or transform the macro's."""
        out = self.temp()
        item, frame = self._enter(node, name, slot, cost, target_tree, args[0], 1, f"{out} = []")
        bodies = args[1:]
        if name == "filter" or len(bodies) == 2:
            keep = self.store(self.gen(bodies[0]))
            self.emit(f"if {keep} is not True and {keep} is not False: raise _not_bool()")
            self.emit(f"if {keep} is False: continue")
        self.emit(f"{out}.append({item if name == 'filter' else self.gen(bodies[-1])})")
        self._leave_body(frame)
        self.blocks -= 1
        self.indent -= 1
        return out

    def _enter(
        self,
        node: Any,
        name: str,
        slot: int,
        cost: int,
        target_tree: Any,
        var: Any,
        blocks: int,
        *inits: str,
    ) -> tuple[str, _Frame]:
        """The head of a loop over the target's items, up to its body: the target must be a list or map;
        ``inits`` run before the loop; each item is charged ``cost`` to the meter and bound to ``var``
        (in its context slot too, for the closures of the body), then the body's speculated paths from it
        are looked up (``paths.PathScope``, written by ``_leave_body``). Returns the item's name and what
        ``_leave_body`` restores."""
        items = self.store(self.gen(target_tree))
        self.emit(f"if type({items}) not in _COLLECTIONS: raise _non_collection({name!r})")
        meter, item = self.temp(), f"_s{slot}"
        self.emit(f"{meter} = ctx[1]")
        for line in inits:
            self.emit(line)
        self.emit(f"for {item} in {items}:")
        self.indent += 1
        self.blocks += blocks
        self.emit(f"{meter}.cost += {cost}")
        self.emit(f"if {meter}.cost >= {meter}.checkpoint: {meter}.charge(0)")
        self.emit(f"ctx[{slot}] = {item}")  # for the closures of the body that read the slot
        frame = _Frame(
            slot, len(self.lines) - 1, self.closures, self.scope, dict(self.bound), dict(self.paths)
        )
        self.scope = {**self.scope, str(simple_ident(var)): slot}
        self.bound[slot] = item
        self.paths[slot] = self.new_paths((id(node), slot))
        return item, frame

    def _leave_body(self, frame: _Frame) -> None:
        """After the body: the names outside the loop again; the slot is not written when no closure
        of the body reads it."""
        self.fill(self.paths[frame.slot])
        self.scope, self.bound, self.paths = frame.scope, frame.bound, frame.paths
        if self.closures == frame.closures:
            self.lines[frame.slot_line] = ""
