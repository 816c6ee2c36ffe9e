"""The fast backend's hot shapes as generated Python source: one function per expression instead of a
tree of closures, for the operators policies are made of (``&&``, ``||``, ``!``, ``?:``, ``has``, field
chains, ``all``/``exists``, comparisons and calls of the native functions).

It runs after the closure compiler and reads what that compiled (``Compiler.compiled``, its macros' slots
and costs), so the generated program is the same program: every node it does not generate is the closure
the compiler made for it, called in place. Semantics are those of the closures line for line: operands
run in the same order (each operand of a call or operator is stored before the next runs), the same
errors are raised, a comprehension charges the same cost per iteration to the same meter, and iteration
variables are stored in the same context slots the closures read. Nothing from the expression's source
reaches the generated text except through ``repr`` of a string or a constant held by reference. A field
path selected more than once in a scope is looked up once (``paths``); an operand that can only be a bool
is not checked for being one. When an
expression would nest too deeply for Python's compiler, or anything fails, the closure is used instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lark

from policyengine.cel.budget import ELEMENT_COST_DIVISOR
from policyengine.cel.fast.binary import BINARY, all_strings
from policyengine.cel.fast.compiler import _Const, _operands
from policyengine.cel.fast.generated import GLOBALS
from policyengine.cel.fast.loops import MAX_BLOCKS as _MAX_BLOCKS
from policyengine.cel.fast.loops import Loops
from policyengine.cel.fast.loops import Unsupported as _Unsupported
from policyengine.cel.fast.paths import PathScope, Speculation
from policyengine.cel.syntax import call_args, dotted_name, is_macro_call, simple_ident, unwrap

Ctx = list[Any]
Fn = Callable[[Ctx], Any]

_MAX_DEPTH = 40  # nested nodes generated; deeper sub-trees stay closures
_MAX_LINES = 4000
_INT_COMPARISONS = {
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
}


# The inline paths of ``functions.natives`` for plain strings, as expressions.
_STRING_METHODS = {
    "startsWith": "{a}.startswith({b})",
    "endsWith": "{a}.endswith({b})",
    "contains": "({b} in {a})",
}


def generate(tree: Any, compiler: Any) -> Fn | None:
    """The expression as one generated function, or None to keep the compiler's closure. Generated twice:
    the first pass counts which field paths it selects more than once (``_Generator.speculated``)."""
    try:
        counting = _Generator(compiler)
        counting.gen(tree)
        gen = _Generator(compiler, frozenset(k for k, n in counting.uses.items() if n > 1))
        result = gen.gen(tree)
        gen.emit(f"return {result}")
        gen.fill(gen.top)
        body = "\n".join(line for line in gen.lines if line)
        if body.count("\n") >= _MAX_LINES:
            return None
        source = "def _cel(ctx):\n    V = ctx[0]\n" + body + "\n"
        namespace = dict(GLOBALS, **gen.consts)
        exec(compile(source, "<cel>", "exec"), namespace)
    except (_Unsupported, RecursionError, SyntaxError, MemoryError, ValueError):
        return None
    fn: Fn = namespace["_cel"]
    return fn


class _Generator(Speculation, Loops):
    def __init__(self, compiler: Any, speculate: frozenset[Any] | None = None) -> None:
        self.compiler = compiler
        self.consts: dict[str, Any] = {}
        self.speculate = speculate  # the paths looked up once per scope (``paths``); None: counting uses
        self.uses: dict[tuple[Any, tuple[str, ...]], int] = {}
        self.lines: list[str] = [""]
        self.top = PathScope("V", 0, 1)
        self.paths: dict[int, PathScope] = {}  # slot -> the paths of the generated loop binding it
        self.spec_temps = 0
        # Generated expressions (and locals) whose value can only be True or False: the checks that an
        # operand of ``&&``, ``||``, ``!`` or a predicate is a bool are left out for them.
        self.bools: set[str] = set()
        self.indent = 1
        self.blocks = 0
        self.depth = 0
        self.temps = 0
        self.closures = 0  # closures called in place so far (they read iteration variables from ctx)
        self.bound: dict[int, str] = {}  # slot -> the local holding it inside a generated loop
        self.scope: dict[str, int] = {}  # comprehension variables in scope, as the compiler had them

    def boolean(self, expr: str) -> str:
        """``expr``, noted as one whose value is a bool."""
        self.bools.add(expr)
        return expr

    # -- plumbing ------------------------------------------------------------------------------------

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.indent + line)

    def temp(self) -> str:
        self.temps += 1
        return f"_t{self.temps}"

    def const(self, value: Any) -> str:
        name = f"_k{len(self.consts)}"
        self.consts[name] = value
        return name

    def store(self, expr: str) -> str:
        """``expr`` evaluated now, into a fresh local (so later operands run after it, as closures do);
        a name (a constant, or a local assigned once) is already that."""
        if expr.isidentifier():
            return expr
        name = self.temp()
        self.emit(f"{name} = {expr}")
        return name

    def compiled(self, node: Any) -> Fn:
        entry = self.compiler.compiled.get(id(node))
        if entry is None or entry[0] is not node:
            raise _Unsupported
        fn: Fn = entry[1]
        return fn

    def closure(self, node: Any) -> str:
        fn = self.compiled(node)
        if isinstance(fn, _Const):
            return self.const(fn.value)
        self.closures += 1
        return f"{self.const(fn)}(ctx)"

    # -- dispatch ------------------------------------------------------------------------------------

    def gen(self, tree: Any) -> str:
        node = unwrap(tree)
        fn = self.compiled(node)
        if isinstance(fn, _Const) or self.depth >= _MAX_DEPTH:
            return self.closure(node)
        method = getattr(self, "_" + node.data, None)
        self.depth += 1
        try:
            return method(node) if method is not None else self.closure(node)
        finally:
            self.depth -= 1

    # -- logic ---------------------------------------------------------------------------------------

    def _conditionalor(self, node: Any) -> str:
        return self._logic(node, True)

    def _conditionaland(self, node: Any) -> str:
        return self._logic(node, False)

    def _logic(self, node: Any, absorbing: bool) -> str:
        if self.blocks + 1 > _MAX_BLOCKS:
            return self.closure(node)
        name = "_||_" if absorbing else "_&&_"
        result, pending, value = self.temp(), self.temp(), self.temp()
        self.emit(f"{result} = None")
        self.emit(f"{pending} = None")
        self.blocks += 1
        for i, operand in enumerate(_operands(node)):
            if i:
                self.emit(f"if {result} is None:")
                self.indent += 1
            self.emit("try:")
            self.indent += 1
            operand_value = self.gen(operand)
            self.emit(f"{value} = {operand_value}")
            self.indent -= 1
            self.emit("except _CelError as _e:")
            self.emit(f"    if {pending} is None: {pending} = _e")
            self.emit("else:")
            self.emit(f"    if {value} is {absorbing}: {result} = {absorbing}")
            if operand_value not in self.bools:
                self.emit(
                    f"    elif {value} is not {not absorbing} and {pending} is None: "
                    f"{pending} = _no_overload({name!r}, {value})"
                )
            if i:
                self.indent -= 1
        self.blocks -= 1
        self.emit(f"if {result} is None:")
        self.emit(f"    if {pending} is not None: raise {pending}")
        self.emit(f"    {result} = {not absorbing}")
        return self.boolean(result)

    def _expr(self, node: Any) -> str:
        cond, left, right = node.children
        chosen = self.store(self.gen(cond))
        result = self.temp()
        self.emit(f"if {chosen} is True:")
        self.indent += 1
        self.emit(f"{result} = {self.gen(left)}")
        self.indent -= 1
        self.emit(f"elif {chosen} is False:")
        self.indent += 1
        self.emit(f"{result} = {self.gen(right)}")
        self.indent -= 1
        self.emit(f"else: raise _no_overload('_?_:_', {chosen})")
        return result

    def _unary(self, node: Any) -> str:
        op_node, operand = node.children
        if op_node.data != "unary_not":
            return self.closure(node)
        operand_value = self.gen(operand)
        value = self.store(operand_value)
        if operand_value in self.bools:
            return self.boolean(f"(not {value})")
        return self.boolean(
            f"((not {value}) if ({value} is True or {value} is False) else _raise(_no_overload('!_', {value})))"
        )

    def _paren_expr(self, node: Any) -> str:
        return self.gen(node.children[0])

    # -- operators -----------------------------------------------------------------------------------

    def _binary(self, node: Any) -> str:
        op_node, right_tree = node.children
        kind = op_node.data
        if kind not in BINARY and kind != "relation_ne":
            return self.closure(node)
        left = self.store(self.gen(op_node.children[0]))
        if kind == "addition_add":  # charged by its size before it is built, as the closure does
            right = self.store(self.gen(right_tree))
            return self._concatenation(left, right)
        right_fn = self.compiled(unwrap(right_tree))
        if isinstance(right_fn, _Const):
            constant = right_fn.value
            if kind == "relation_eq" and type(constant) is str:
                return self.boolean(f"(type({left}) is str and {left} == {constant!r})")
            if kind == "relation_in" and all_strings(constant):
                members, texts = self.const(frozenset(constant)), self.const(constant)
                return self.boolean(
                    f"(({left} in {members}) if type({left}) is str else _in({left}, {texts}))"
                )
        right = self.store(self.gen(right_tree))
        left_fn = self.compiled(unwrap(op_node.children[0]))
        if kind == "relation_in" and isinstance(left_fn, _Const) and type(left_fn.value) is str:
            # Not in the list by Python's == means no string element equals it either; in it, the first
            # equal element being a plain str decides it (``ops.in_`` line for line).
            return self.boolean(
                f"(((True if type({right}[{right}.index({left})]) is str else _in({left}, {right})) "
                f"if {left} in {right} else False) if type({right}) is list else _in({left}, {right}))"
            )
        if kind == "relation_ne":
            return self.boolean(f"(not _eq({left}, {right}))")
        generic = self.const(BINARY[kind])
        symbol = _INT_COMPARISONS.get(kind)
        if symbol is None:
            return f"{generic}({left}, {right})"
        return (
            f"(({left} {symbol} {right}) if type({left}) is int and type({right}) is int "
            f"else {generic}({left}, {right}))"
        )

    _relation = _addition = _multiplication = _binary

    def _concatenation(self, left: str, right: str) -> str:
        """``+``: two strings (a message being built) concatenated inline, charged as ``_add`` charges
        them (``concat_cost``, then ``Meter.charge`` as the macros inline it); anything else by ``_add``."""
        result, meter = self.temp(), self.temp()
        self.emit(f"if type({left}) is str and type({right}) is str:")
        self.emit(f"    {meter} = ctx[1]")
        self.emit(f"    {meter}.cost += (len({left}) + len({right})) // {ELEMENT_COST_DIVISOR}")
        self.emit(f"    if {meter}.cost >= {meter}.checkpoint: {meter}.charge(0)")
        self.emit(f"    {result} = {left} + {right}")
        self.emit(f"else: {result} = _add({left}, {right}, ctx)")
        return result

    # -- members -------------------------------------------------------------------------------------

    def _member_dot(self, node: Any) -> str:
        dotted = dotted_name(node)
        if dotted is None:
            value = self.store(self.gen(node.children[0]))
            return self._fields(value, [str(node.children[1])])
        if dotted in self.compiler.idents:
            return self.closure(node)
        root, *fields = dotted.split(".")
        slot = self.scope.get(root)
        if slot is None and self.blocks + 1 > _MAX_BLOCKS:
            return self.closure(node)
        paths = self.top if slot is None else self.paths.get(slot)
        known = self.speculated(paths, (root, *fields))
        if known is None:
            return self._chain(node, root, fields, slot)
        name, n = known
        result = self.temp()
        self.emit(f"if {name} is not _MISS:")
        self.indent += 1
        self.emit(f"{result} = {self._fields(name, fields[n:])}")
        self.indent -= 1
        self.emit("else:")
        self.indent += 1
        self.emit(f"{result} = {self._chain(node, root, fields, slot)}")
        self.indent -= 1
        return result

    def _chain(self, node: Any, root: str, fields: list[str], slot: int | None) -> str:
        """``root.fields...`` selected step by step (from a comprehension variable's ``slot``, or from
        the bindings)."""
        if slot is not None:
            return self._fields(self.slot_value(slot), fields)
        # With dotted bindings (``a.b`` bound as one name) the closure resolves the qualified name.
        result = self.temp()
        self.emit(f"if _DOTTED in V: {result} = {self.closure(node)}")
        self.emit("else:")
        self.indent += 1
        self.emit(f"{result} = V[{root!r}] if {root!r} in V else _undeclared({root!r})")
        self.emit(f"{result} = {self._fields(result, fields)}")
        self.indent -= 1
        return result

    def _fields(self, value: str, fields: list[str]) -> str:
        current = value
        for field in fields:
            name = self.temp()
            self.emit(
                f"{name} = {current}[{field!r}] if type({current}) is dict and {field!r} in {current} "
                f"else _select({current}, {field!r}, ctx)"
            )
            current = name
        return current

    def slot_value(self, slot: int) -> str:
        return self.bound.get(slot, f"ctx[{slot}]")

    def _ident(self, node: Any) -> str:
        name = str(node.children[0])
        slot = self.scope.get(name)
        if slot is not None:
            return self.slot_value(slot)
        if name in self.compiler.idents:
            return self.closure(node)
        return f"(V[{name!r}] if {name!r} in V else _undeclared({name!r}))"

    # -- calls and macros ----------------------------------------------------------------------------

    def _ident_arg(self, node: Any) -> str:
        name = str(node.children[0])
        args = call_args(node, 1)
        if name == "has" and len(args) == 1:
            return self._has(node, args[0])
        return self._call(node, name, args)

    def _has(self, node: Any, arg: Any) -> str:
        inner = unwrap(arg)
        if not (isinstance(inner, lark.Tree) and inner.data == "member_dot"):
            return self.closure(node)
        return self.speculated_has(inner) or self._has_field(inner)

    def _has_field(self, inner: Any) -> str:
        target = self.store(self.gen(inner.children[0]))
        field = str(inner.children[1])
        return self.boolean(
            f"(({field!r} in {target}) if type({target}) is dict else _has_other({target}, {field!r}))"
        )

    def _member_dot_arg(self, node: Any) -> str:
        target_tree, name = node.children[0], str(node.children[1])
        args = call_args(node, 2)
        namespace = simple_ident(target_tree)
        if (
            namespace is not None
            and namespace not in self.scope
            and f"{namespace}.{name}" in self.compiler.library.table
        ) or name in ("or", "orValue"):
            return self.closure(node)
        if is_macro_call(name, args):
            return self._macro(node, target_tree, name, args)
        return self._call(node, name, [target_tree, *args])

    def _call(self, node: Any, name: str, args: list[Any]) -> str:
        native = self.compiler.natives.get(name)
        if native is None:
            return self.closure(node)
        values = [self.store(self.gen(a)) for a in args]
        call = f"{self.const(native)}([{', '.join(values)}], ctx[1])"
        inline = _STRING_METHODS.get(name)
        if inline is not None and len(values) == 2:  # the native's own inline path, without the call
            a, b = values
            return f"({inline.format(a=a, b=b)} if type({a}) is str and type({b}) is str else {call})"
        if name == "size" and len(values) == 1:
            return f"(len({values[0]}) if type({values[0]}) in _SIZED else {call})"
        return call
