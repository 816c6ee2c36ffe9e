"""Speculated field paths of the generated code (``codegen``): a field path (``c.securityContext``,
``object.spec.template.spec``) selected more than once in a scope is looked up once at the scope's
start, where the lookup cannot fail: only an exact dict holding the key is read, anything else gives
``_MISS``. Each use tests that local and runs the path's own code where it holds ``_MISS``, so values,
errors and costs are those of that code. The scopes: the function, for paths from the bindings; a
generated loop's body, for paths from its variable (``loops``)."""

from __future__ import annotations

from typing import Any

from policyengine.cel.syntax import dotted_name


class PathScope:
    """The speculated field paths of one scope (the function, for paths from a binding; a generated loop's
    body, for paths from its variable): each held in a local, computed at the scope's start."""

    __slots__ = ("code", "indent", "line", "names", "owner")

    def __init__(self, owner: Any, line: int, indent: int) -> None:
        self.owner = owner  # what the uses were counted under: "V", or the id of the loop's macro node
        self.line = line  # the placeholder line their computation is written to (``fill``)
        self.indent = indent
        self.names: dict[tuple[str, ...], str] = {}  # (root, field, ...) -> its local
        self.code: list[str] = []


class Speculation:
    """The speculation methods of the generator (``codegen._Generator``), which provides the plumbing.
    ``speculate`` is None on the first pass, which counts the uses of each path (``uses``); the second
    pass speculates the paths used more than once."""

    speculate: frozenset[Any] | None
    uses: dict[tuple[Any, tuple[str, ...]], int]
    lines: list[str]
    indent: int
    top: PathScope
    spec_temps: int
    compiler: Any
    scope: dict[str, int]
    paths: dict[int, PathScope]

    def emit(self, line: str) -> None:
        raise NotImplementedError

    def temp(self) -> str:
        raise NotImplementedError

    def boolean(self, expr: str) -> str:
        raise NotImplementedError

    def _has_field(self, inner: Any) -> str:
        raise NotImplementedError

    def speculated_has(self, inner: Any) -> str | None:
        """``has(inner)`` (``inner`` a selection) from the local of its whole path, when that is
        speculated: True where it holds a value, False where the path's prefix was a map without the
        key, else the has's own code (``_has_field``). None when the path is not speculated."""
        dotted = dotted_name(inner)
        if dotted is None or dotted in self.compiler.idents:
            return None
        path = tuple(dotted.split("."))
        slot = self.scope.get(path[0])
        paths = self.top if slot is None else self.paths.get(slot)
        known = self.speculated(paths, path)
        if paths is None or known is None or known[1] < len(path) - 1:
            return None  # only the whole path's local tells whether the field is there
        result = self.temp()
        self.emit(f"if {known[0]} is not _MISS: {result} = True")
        self.emit(f"elif type({self.prefix_local(paths, path)}) is dict: {result} = False")
        self.emit("else:")
        self.indent += 1
        self.emit(f"{result} = {self._has_field(inner)}")
        self.indent -= 1
        return self.boolean(result)

    def speculated(self, paths: PathScope | None, path: tuple[str, ...]) -> tuple[str, int] | None:
        """The local holding the longest speculated prefix of ``path`` (root, field, ...) and how many
        fields it covers; None when there is none. On the counting pass: counts every prefix as used."""
        if paths is None:
            return None
        if self.speculate is None:
            for n in range(2, len(path) + 1):
                key = (paths.owner, path[:n])
                self.uses[key] = self.uses.get(key, 0) + 1
            return None
        for n in range(len(path), 1, -1):
            if (paths.owner, path[:n]) in self.speculate:
                return self._spec_name(paths, path[:n]), n - 1
        return None

    def _spec_name(self, paths: PathScope, path: tuple[str, ...]) -> str:
        name = paths.names.get(path)
        if name is not None:
            return name
        self.spec_temps += 1
        name = paths.names[path] = f"_p{self.spec_temps}"
        if len(path) == 1:  # a binding (the loop's own variable is never one: it is its local)
            root = path[0]
            paths.code.append(f"{name} = V[{root!r}] if {root!r} in V and _DOTTED not in V else _MISS")
            return name
        parent = self.prefix_local(paths, path)
        field = path[-1]
        paths.code.append(
            f"{name} = {parent}[{field!r}] if type({parent}) is dict and {field!r} in {parent} else _MISS"
        )
        return name

    def new_paths(self, owner: Any) -> PathScope:
        """The speculated paths of a scope starting here (its lookups are written here by ``fill``)."""
        self.lines.append("")
        return PathScope(owner, len(self.lines) - 1, self.indent)

    def prefix_local(self, paths: Any, path: tuple[str, ...]) -> str:
        """The local that the speculated ``path``'s own lookup read (its prefix's, or the loop's item)."""
        if len(path) > 2 or paths is self.top:
            return self._spec_name(paths, path[:-1])
        return f"_s{paths.owner[1]}"  # the loop's variable (``Loops._enter`` names it so)

    def fill(self, paths: PathScope) -> None:
        """Write the scope's speculated lookups at its start."""
        pad = "    " * paths.indent
        self.lines[paths.line] = "\n".join(pad + line for line in paths.code)
