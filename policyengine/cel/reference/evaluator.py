"""cel-python's tree-walking Evaluator, metered and taught the Kubernetes call shapes.

The subclass is the one place cel-python's evaluation is changed, for four reasons:
- every node visit and comprehension iteration is charged to the evaluation's Meter, so a runaway
  expression stops with ``budget_exceeded`` instead of hanging a worker;
- namespaced functions (``lists.range(3)``, ``strings.quote(s)``, ``optional.none()``) parse as a method
  call on an identifier; they are dispatched to the function named ``lists.range`` unless the
  identifier is a bound variable;
- cel-python treats ``min`` and ``reduce`` as macros; Kubernetes has ``min()``/``max()`` list methods
  and no ``reduce``, so only the CEL macros are expanded here;
- the macros are re-implemented to short-circuit (``exists`` stops at the first true), to follow CEL's
  error rules (``[0, 1].all(x, 1 / x > 0)`` is an error, ``[0, 1].exists(x, 1 / x > 0)`` is true),
  and to accept the three-argument forms (``map(x, filter, transform)``, ``all(i, v, predicate)``),
  Kubernetes' two-variable comprehensions (``transformList``, ``transformMap``) and ``optMap``.
"""

from __future__ import annotations

import datetime
import operator
from typing import Any, cast

import lark
from celpy import celtypes
from celpy.evaluation import Activation, CELEvalError, Evaluator

from policyengine.cel.budget import Meter, concat_cost, current
from policyengine.cel.lib.dispatch import LibError
from policyengine.cel.lib.lists import sort_by_keys
from policyengine.cel.lib.optional import Optional
from policyengine.cel.reference import optionals
from policyengine.cel.syntax import (
    Node,
    call_args,
    dotted_name,
    is_macro_call,
    macro_variables,
    simple_ident,
    unwrap,
)


class MeteredEvaluator(Evaluator):
    """An Evaluator charging its Meter for each node visited and each comprehension iteration."""

    def __init__(self, ast: Node, activation: Activation, meter: Meter) -> None:
        super().__init__(ast=ast, activation=activation)
        self.meter = meter

    def sub_evaluator(self, ast: Node) -> MeteredEvaluator:
        return MeteredEvaluator(ast, self.activation, self.meter)

    def _visit_tree(self, tree: Node) -> Any:
        self.meter.charge()
        return super()._visit_tree(tree)

    def addition(self, tree: Node) -> Any:
        # ``+`` itself charges a concatenation by its size, before building it (metered_add).
        return _as_cel(super().addition(tree))

    def multiplication(self, tree: Node) -> Any:
        return _as_cel(super().multiplication(tree))

    def unary(self, tree: Node) -> Any:
        return _as_cel(super().unary(tree))

    def _is_variable(self, name: str) -> bool:
        try:
            self.activation.identifiers.resolve_name(self.activation.package, name)
        except KeyError:
            return False
        return True

    def member_dot_arg(self, tree: Node) -> Any:
        member_tree, name_token = tree.children[0], cast(lark.Token, tree.children[1])
        name = str(name_token)
        args = call_args(tree, 2)
        namespace = simple_ident(member_tree)
        if namespace is not None:
            qualified = f"{namespace}.{name}"
            if qualified in self.activation.functions and not self._is_variable(namespace):
                values = [self.visit(arg) for arg in args]
                return self.function_eval(lark.Token("IDENT", qualified), values)
        if is_macro_call(name, args):
            return self._comprehension(member_tree, name, args)
        if name in ("or", "orValue") and len(args) == 1:
            return optionals.or_else(self.visit(member_tree), lambda: self.visit(args[0]), name)
        target = self.visit(member_tree)
        values = [self.visit(arg) for arg in args]
        for value in values:
            if isinstance(value, CELEvalError):
                return value
        return self.method_eval(target, name_token, celtypes.ListType(values))

    # -- optional syntax (cel-go OptionalTypes) --------------------------------------------------

    def member_dot_opt(self, tree: Node) -> Any:
        target = self.visit(tree.children[0])
        return optionals.select(target, str(tree.children[1]))

    def member_index_opt(self, tree: Node) -> Any:
        target, key = self.visit(tree.children[0]), self.visit(tree.children[1])
        return optionals.index(target, key, self.activation.resolve_function("_[_]"))

    def member_dot(self, tree: Node) -> Any:
        if dotted_name(tree) is not None:
            # A name chain: cel-python's qualified-name resolution.
            return super().member_dot(tree)
        target = self.visit(tree.children[0])
        return optionals.select_member(target, str(tree.children[1]))

    def member_index(self, tree: Node) -> Any:
        target, key = self.visit(tree.children[0]), self.visit(tree.children[1])
        return optionals.index_member(target, key, self.activation.resolve_function("_[_]"))

    def macro_has_eval(self, exprlist: Node) -> Any:
        arg = unwrap(exprlist.children[0]) if exprlist.children else None
        if isinstance(arg, lark.Tree) and arg.data == "member_dot" and dotted_name(arg) is None:
            target = self.visit(arg.children[0])
            if isinstance(target, Optional):
                # cel-go: has() through an optional tests presence (an absent optional has nothing).
                return optionals.has(target, str(arg.children[1]))
        return super().macro_has_eval(exprlist)

    def opt_entry(self, tree: Node) -> Any:
        return optionals.Entry(self.visit(tree.children[0]))

    def exprlist(self, tree: Node) -> Any:
        return optionals.list_of(self.visit_children(tree))

    def mapinits(self, tree: Node) -> Any:
        return optionals.map_of(self.visit_children(tree))

    def _run(self, body: Node, bindings: dict[str, Any]) -> Any:
        self.meter.charge()
        # A nested activation chains to this one instead of cloning it, as Evaluator.evaluate would.
        scope = self.activation.nested_activation(vars=bindings)
        try:
            return MeteredEvaluator(body, scope, self.meter).visit(body)
        except CELEvalError as err:
            return err

    def _comprehension(self, member_tree: Node, name: str, args: list[Any]) -> Any:
        target = self.visit(member_tree)
        if isinstance(target, CELEvalError):
            return target
        if name in ("optMap", "optFlatMap"):
            return self._opt_map(target, name == "optFlatMap", args)
        if not isinstance(target, list | dict):
            return CELEvalError(f"no such overload: {name} on a non-collection")
        names = macro_variables(name, args)
        two_vars = len(names) == 2
        if two_vars:
            first, second = names
            if isinstance(target, dict):
                pairs = [(k, dict.__getitem__(target, k)) for k in target]
            else:
                pairs = [(celtypes.IntType(i), v) for i, v in enumerate(target)]
            scopes = [{first: a, second: b} for a, b in pairs]
        else:
            scopes = [{names[0]: item} for item in target]
        body = args[-1]
        if name == "sortBy":
            return self._sort_by(target, scopes, body)
        if name in ("all", "exists"):
            return self._quantifier(scopes, body, name == "all")
        if name in ("exists_one", "existsOne"):
            count = 0
            for scope in scopes:
                result = self._run(body, scope)
                if not isinstance(result, celtypes.BoolType):
                    return _not_bool(result)
                count += bool(result)
            return celtypes.BoolType(count == 1)
        variables = 2 if two_vars else 1
        if name == "filter" or len(args) == variables + 2:
            kept = []
            for scope in scopes:
                keep = self._run(args[variables], scope)
                if not isinstance(keep, celtypes.BoolType):
                    return _not_bool(keep)
                if keep:
                    kept.append(scope)
            if name == "filter":
                return celtypes.ListType(next(iter(scope.values())) for scope in kept)
            scopes = kept
        values = self._collect(scopes, body)
        if name == "transformMap" and not isinstance(values, CELEvalError):
            return celtypes.MapType({next(iter(s.values())): v for s, v in zip(scopes, values, strict=True)})
        return values

    def _opt_map(self, target: Any, flat: bool, args: list[Any]) -> Any:
        if not isinstance(target, Optional) or len(args) != 2:
            return CELEvalError("no such overload: optMap needs an optional value")
        if not target.present:
            return target
        result = self._run(args[1], {str(simple_ident(args[0])): target.value})
        if isinstance(result, CELEvalError) or flat:
            return result
        return Optional(True, result)

    def _sort_by(self, target: Any, scopes: list[dict[str, Any]], body: Node) -> Any:
        if not isinstance(target, list):
            return CELEvalError("no such overload: sortBy on a map")
        keys = self._collect(scopes, body)
        if isinstance(keys, CELEvalError):
            return keys
        try:
            return sort_by_keys(list(target), list(keys))
        except (LibError, TypeError) as err:
            return CELEvalError(str(err))

    def _quantifier(self, scopes: list[dict[str, Any]], body: Node, universal: bool) -> Any:
        error: Any = None
        for scope in scopes:
            result = self._run(body, scope)
            if not isinstance(result, celtypes.BoolType):
                error = error or _not_bool(result)
            elif bool(result) is not universal:
                return celtypes.BoolType(not universal)
        return error if error is not None else celtypes.BoolType(universal)

    def _collect(self, scopes: list[dict[str, Any]], body: Node) -> Any:
        out = celtypes.ListType()
        for scope in scopes:
            value = self._run(body, scope)
            if isinstance(value, CELEvalError):
                return value
            out.append(value)
        return out


# cel-python's operators sometimes return plain Python values ('a' + 'b' is a str, list + list a list).
_PLAIN_TO_CEL: dict[type, type] = {
    str: celtypes.StringType,
    bytes: celtypes.BytesType,
    float: celtypes.DoubleType,
    list: celtypes.ListType,
}


def _as_cel(value: Any) -> Any:
    kind = _PLAIN_TO_CEL.get(type(value))
    if kind is not None:
        return kind(value)
    if type(value) is datetime.timedelta:
        return celtypes.DurationType(
            seconds=value.days * 86400 + value.seconds, nanos=value.microseconds * 1000
        )
    return value


def _not_bool(value: Any) -> CELEvalError:
    if isinstance(value, CELEvalError):
        return value
    return CELEvalError("no such overload: a macro predicate must be a bool")


def metered_add(left: Any, right: Any) -> Any:
    """cel-python's ``_+_``, charging a string or list concatenation to the evaluation's meter before
    building it (the reference backend's evaluation holds its meter in the context variable)."""
    cost = concat_cost(left, right)
    meter = current()
    if cost and meter is not None:
        meter.charge(cost)
    return operator.add(left, right)


def evaluate(ast: Node, base: Activation, values: dict[str, Any], meter: Meter) -> Any:
    """Evaluate ``ast`` with ``values`` bound on top of ``base``; raises celpy's CELEvalError."""
    return MeteredEvaluator(ast, base, meter).evaluate(values)
