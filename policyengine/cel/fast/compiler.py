"""cel-python's parse tree compiled once into nested Python closures over plain values.

A compiled expression is a function of one evaluation context, ``ctx``: a list holding the bindings
(``ctx[0]``, a dict), the meter (``ctx[1]``) and one slot per comprehension variable (``ctx[2:]``, numbered
at compile time, so name resolution costs nothing at run time). Pass-through grammar rules vanish at
compile time and constant sub-expressions are folded, so evaluation visits only the operations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import lark

from policyengine.cel.budget import Meter
from policyengine.cel.fast import macros, ops, optionals
from policyengine.cel.fast.binary import (
    BINARY,
    all_strings,
    concatenation,
    equals_text,
    in_texts,
    int_fast_path,
)
from policyengine.cel.fast.functions import Library, Native
from policyengine.cel.fast.members import (
    has_other,
    select_other,
    slot_chain,
    variable_chain,
)
from policyengine.cel.fast.values import CelError, Uint, literal_value, no_overload
from policyengine.cel.port import Budget
from policyengine.cel.syntax import (
    Node,
    call_args,
    dotted_name,
    is_macro_call,
    macro_variables,
    simple_ident,
    unwrap,
)

Ctx = list[Any]
Fn = Callable[[Ctx], Any]
_FOLDING = Budget(max_cost=2**62, max_seconds=3600.0)


class _Const:
    """A closure's marker that it always returns ``value`` (for folding)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self, ctx: Ctx) -> Any:
        return self.value


def _error(message: str) -> Fn:
    def fail(ctx: Ctx) -> Any:
        raise CelError(message)

    return fail


class Compiler(optionals.OptionalSyntax):
    """Compiles one expression tree; ``slots`` is how many comprehension variables it needs."""

    def __init__(self, library: Library, natives: dict[str, Native], idents: dict[str, Any]) -> None:
        self.library = library
        self.natives = natives
        self.idents = idents  # type names (``int``, ``net.IP``) that bindings may shadow
        self.scope: dict[str, int] = {}
        self.slots = 0
        self.nodes = 0
        # What each node compiled to, by id (the tree outlives the compilation), and each macro call's
        # slots and per-iteration cost: read by ``codegen`` to generate the same program.
        self.compiled: dict[int, tuple[Any, Fn]] = {}
        self.macros: dict[int, tuple[tuple[int, ...], int]] = {}
        self._last_macro: tuple[tuple[int, ...], int] = ((), 0)

    def compile(self, tree: Any) -> Fn:
        self.nodes += 1
        node = unwrap(tree)
        method = getattr(self, "_" + node.data, None)
        if method is None:
            return _error(f"unsupported expression: {node.data}")
        fn = cast(Fn, method(node))
        self.compiled[id(node)] = (node, fn)  # the node kept: its id stays its own
        return fn

    # -- logic ---------------------------------------------------------------------------------------

    def _expr(self, node: Node) -> Fn:
        cond, left, right = (self.compile(c) for c in node.children)

        def ternary(ctx: Ctx) -> Any:
            chosen = cond(ctx)
            if chosen is True:
                return left(ctx)
            if chosen is False:
                return right(ctx)
            raise no_overload("_?_:_", chosen)

        return ternary

    def _conditionalor(self, node: Node) -> Fn:
        return self._logic(node, True)

    def _conditionaland(self, node: Node) -> Fn:
        return self._logic(node, False)

    def _logic(self, node: Node, absorbing: bool) -> Fn:
        """``||`` (absorbing true) and ``&&`` (absorbing false), flattened (``a || b || c`` is one
        closure; CEL's logical operators are associative): an operand's error or non-bool is the
        result only if no other operand decides it, whichever side fails."""
        operands = tuple(self.compile(c) for c in _operands(node))
        name = "_||_" if absorbing else "_&&_"
        other = not absorbing

        def logic(ctx: Ctx) -> Any:
            pending: CelError | None = None
            for operand in operands:
                try:
                    value = operand(ctx)
                except CelError as err:
                    pending = pending or err
                    continue
                if value is absorbing:
                    return absorbing
                if value is not other and pending is None:
                    pending = no_overload(name, value)
            if pending is not None:
                raise pending
            return other

        return logic

    # -- operators -----------------------------------------------------------------------------------

    def _binary(self, node: Node) -> Fn:
        op_node, right_tree = node.children
        kind = op_node.data
        left, right = self.compile(op_node.children[0]), self.compile(right_tree)
        if kind == "relation_ne":
            return lambda ctx: not ops.eq(left(ctx), right(ctx))
        if kind == "relation_eq" and isinstance(right, _Const) and type(right.value) is str:
            return equals_text(left, right.value)
        if kind == "relation_in" and isinstance(right, _Const) and all_strings(right.value):
            return in_texts(left, right.value)
        if kind == "addition_add":
            return self._fold(concatenation(left, right), left, right)
        op = BINARY[kind]
        fn: Fn = int_fast_path(kind, left, right) or (lambda ctx: op(left(ctx), right(ctx)))
        return self._fold(fn, left, right)

    _relation = _addition = _multiplication = _binary

    def _unary(self, node: Node) -> Fn:
        op_node, operand_tree = node.children
        operand = self.compile(operand_tree)
        if op_node.data == "unary_not":

            def negate(ctx: Ctx) -> bool:
                value = operand(ctx)
                if value is True:
                    return False
                if value is False:
                    return True
                raise no_overload("!_", value)

            return self._fold(negate, operand)
        return self._fold(lambda ctx: ops.neg(operand(ctx)), operand)

    def _fold(self, fn: Fn, *parts: Fn) -> Fn:
        if all(isinstance(p, _Const) for p in parts):
            try:
                # Constants come from the source text: what folding them costs is not the request's.
                return _Const(fn([{}, Meter(_FOLDING)]))
            except CelError:
                return fn
        return fn

    # -- members -------------------------------------------------------------------------------------

    def _member_dot(self, node: Node) -> Fn:
        dotted = dotted_name(node)
        if dotted is not None:
            if dotted in self.idents:
                return self._ident_named(dotted.split(".")[0], self.idents[dotted], dotted)
            root, *fields = dotted.split(".")
            slot = self.scope.get(root)
            if slot is not None:
                return slot_chain(slot, fields)
            return variable_chain(root, fields)
        target, field = self.compile(node.children[0]), str(node.children[1])

        def select(ctx: Ctx) -> Any:
            value = target(ctx)
            if type(value) is dict:
                try:
                    return value[field]
                except KeyError:
                    raise CelError(f"no such member in mapping: {field!r}") from None
            return select_other(value, field, ctx)

        return select

    def _member_object(self, node: Node) -> Fn:
        return _error("message construction is not supported")

    def _member_dot_arg(self, node: Node) -> Fn:
        target_tree, name = node.children[0], str(node.children[1])
        args = call_args(node, 2)
        namespace = simple_ident(target_tree)
        qualified = f"{namespace}.{name}"
        if namespace is not None and namespace not in self.scope and qualified in self.library.table:
            function = self._call(qualified, [self.compile(a) for a in args])
            method = self._call(name, [self.compile(target_tree), *(self.compile(a) for a in args)])
            # ``lists.range(3)`` is a function unless ``lists`` is a bound variable.
            return lambda ctx: method(ctx) if namespace in ctx[0] else function(ctx)
        if is_macro_call(name, args):
            fn = self._macro(target_tree, name, args)
            self.macros[id(node)] = self._last_macro
            return fn
        if name in ("or", "orValue") and len(args) == 1:
            return optionals.or_else(self.compile(target_tree), self.compile(args[0]), name == "orValue")
        return self._call(name, [self.compile(target_tree), *(self.compile(a) for a in args)])

    # -- primaries -----------------------------------------------------------------------------------

    def _ident(self, node: Node) -> Fn:
        name = str(node.children[0])
        slot = self.scope.get(name)
        if slot is not None:
            return lambda ctx: ctx[slot]
        if name in self.idents:
            return self._ident_named(name, self.idents[name], name)

        def variable(ctx: Ctx) -> Any:
            try:
                return ctx[0][name]
            except KeyError:
                raise CelError(f"undeclared reference to '{name}'") from None

        return variable

    def _ident_named(self, root: str, constant: Any, dotted: str) -> Fn:
        """A type name (``int``, ``net.IP``) unless a binding of the same root name shadows it."""
        if root != dotted:
            rest = dotted.split(".")[1:]

            def shadowed(ctx: Ctx) -> Any:
                if root not in ctx[0]:
                    return constant
                value = ctx[0][root]
                for field in rest:
                    value = (
                        ops.index(value, field) if type(value) is dict else select_other(value, field, ctx)
                    )
                return value

            return shadowed
        return lambda ctx: ctx[0].get(root, constant)

    def _dot_ident(self, node: Node) -> Fn:
        return self._ident(lark.Tree("ident", [node.children[0]]))

    def _ident_arg(self, node: Node) -> Fn:
        name = str(node.children[0])
        args = call_args(node, 1)
        if name == "has" and len(args) == 1:
            return self._has(args[0])
        return self._call(name, [self.compile(a) for a in args])

    _dot_ident_arg = _ident_arg

    def _has(self, arg: Any) -> Fn:
        node = unwrap(arg)
        if not (isinstance(node, lark.Tree) and node.data == "member_dot"):
            inner = self.compile(arg)

            def evaluates(ctx: Ctx) -> bool:
                try:
                    inner(ctx)
                except CelError:
                    return False
                return True

            return evaluates
        target, field = self.compile(node.children[0]), str(node.children[1])

        def has(ctx: Ctx) -> bool:
            value = target(ctx)
            if type(value) is dict:
                return field in value
            return has_other(value, field)

        return has

    def _paren_expr(self, node: Node) -> Fn:
        return self.compile(node.children[0])

    def _list_lit(self, node: Node) -> Fn:
        children = call_args(node, 0)
        if optionals.has_entries(children):
            return self._optional_list(children)
        items = [self.compile(c) for c in children]
        if all(isinstance(i, _Const) for i in items):
            values = [cast(_Const, i).value for i in items]
            return _Const(values)
        return lambda ctx: [item(ctx) for item in items]

    def _map_lit(self, node: Node) -> Fn:
        children = call_args(node, 0)
        if optionals.has_entries(children[0::2]):
            return self._optional_map(children)
        pairs = [
            (self.compile(k), self.compile(v)) for k, v in zip(children[0::2], children[1::2], strict=True)
        ]

        def build(ctx: Ctx) -> dict[Any, Any]:
            out: dict[Any, Any] = {}
            for key_fn, value_fn in pairs:
                key = key_fn(ctx)
                if type(key) not in (str, int, Uint, bool):
                    raise CelError(f"unsupported key type: {type(key).__name__}")
                if ops.lookup(out, key) is not ops.MISSING:
                    raise CelError(f"Failed with repeated key: {key}")
                out[key] = value_fn(ctx)
            return out

        return self._fold(build, *(f for pair in pairs for f in pair))

    def _literal(self, node: Node) -> Fn:
        token = cast(lark.Token, node.children[0])
        try:
            value = literal_value(token)
        except ValueError as err:
            return _error(str(err.args[0]) if err.args else "invalid literal")
        return _Const(value)

    # -- calls and macros ----------------------------------------------------------------------------

    def _call(self, name: str, args: list[Fn]) -> Fn:
        native = self.natives.get(name)
        library = self.library
        if native is not None:
            impl = native
        else:
            impl = lambda values, meter: library.call(name, values, meter)  # noqa: E731
        if len(args) == 1:
            (only,) = args
            return lambda ctx: impl([only(ctx)], ctx[1])
        if len(args) == 2:
            first, second = args
            return lambda ctx: impl([first(ctx), second(ctx)], ctx[1])
        return lambda ctx: impl([a(ctx) for a in args], ctx[1])

    def _macro(self, target_tree: Any, name: str, args: list[Any]) -> Fn:
        target = self.compile(target_tree)
        variables = macro_variables(name, args)
        saved = dict(self.scope)
        slots = []
        for var in variables:
            self.slots += 1
            slots.append(self.slots + 1)
            self.scope[var] = self.slots + 1
        before = self.nodes
        bodies = [self.compile(a) for a in args[len(variables) :]]
        cost = self.nodes - before + 1
        self.scope = saved
        slot_tuple = tuple(slots)
        self._last_macro = (slot_tuple, cost)
        body = bodies[-1]
        if name in ("all", "exists"):
            return macros.quantifier(target, slot_tuple, body, cost, name == "all")
        if name in ("exists_one", "existsOne"):
            return macros.exists_one(target, slot_tuple, body, cost, name)
        if name == "sortBy":
            return macros.sort_by(target, slot_tuple, body, cost)
        if name in ("optMap", "optFlatMap"):
            return macros.opt_map(target, slot_tuple[0], body, name == "optFlatMap")
        if name == "filter":
            return macros.collect(target, slot_tuple, body, None, cost, name)
        predicate = bodies[0] if len(bodies) == 2 else None
        return macros.collect(target, slot_tuple, predicate, body, cost, name)


def _operands(node: Node) -> list[Any]:
    """The operands of a chain of one logical operator: ``a || b || c`` parses as ``(a || b) || c``."""
    left = unwrap(node.children[0])
    head = (
        _operands(left)
        if isinstance(left, lark.Tree) and left.data == node.data and len(left.children) == 2
        else [left]
    )
    return [*head, node.children[1]]
