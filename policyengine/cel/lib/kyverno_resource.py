"""Kyverno's ``resource.Get`` / ``resource.List`` (kyverno/sdk ``extensions/cel/libs/resource``), read
from the objects the caller hands in (``--inventory``, ``serve --kube``), never from a live API server.

The library holds no objects itself: the engine sets, for the time of one evaluation, a ``Finder`` over
its inventory (``reading``). Without one (no inventory at hand) every call is an error, as a failed
read is in Kyverno. A List returns at most ``MAX_ITEMS`` objects; its size is charged to the budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from celpy.adapter import json_to_cel

from policyengine.cel.budget import charge_elements
from policyengine.cel.lib.dispatch import ANY, MAP, STRING, Function, LibError, overload, table

MAX_ITEMS = 10_000
# (apiVersion, resource, namespace ("" for all), name or None) -> the matching objects, plain JSON
Finder = Callable[[str, str, str, str | None], list[Mapping[str, Any]]]
_FINDER: ContextVar[Finder | None] = ContextVar("kyverno_resource_finder", default=None)


@contextmanager
def reading(finder: Finder) -> Iterator[None]:
    token = _FINDER.set(finder)
    try:
        yield
    finally:
        _FINDER.reset(token)


def _find(api_version: str, resource: str, namespace: str, name: str | None) -> list[Mapping[str, Any]]:
    finder = _FINDER.get()
    if finder is None:
        raise LibError(f"failed to get resource: no inventory to read {resource} from")
    return finder(str(api_version), str(resource), str(namespace), None if name is None else str(name))


@overload(ANY, STRING, STRING, STRING, STRING)
def _get(_ctx: Any, api_version: str, resource: str, namespace: str, name: str) -> Any:
    found = _find(api_version, resource, namespace, name)
    if not found:
        raise LibError(f'failed to get resource: {resource} "{name}" not found')
    return json_to_cel(dict(found[0]))


def _as_list(api_version: str, found: list[Mapping[str, Any]]) -> Any:
    if len(found) > MAX_ITEMS:
        raise LibError(f"failed to list resource: more than {MAX_ITEMS} objects")
    charge_elements(len(found))
    kind = str(found[0].get("kind", "")) + "List" if found else "List"
    return json_to_cel({"apiVersion": api_version, "kind": kind, "metadata": {}, "items": list(found)})


@overload(ANY, STRING, STRING, STRING)
def _list(_ctx: Any, api_version: str, resource: str, namespace: str) -> Any:
    return _as_list(str(api_version), _find(api_version, resource, namespace, None))


@overload(ANY, STRING, STRING, STRING, MAP)
def _list_selected(_ctx: Any, api_version: str, resource: str, namespace: str, labels: Any) -> Any:
    wanted = {str(k): str(v) for k, v in labels.items()}
    found = [
        obj
        for obj in _find(api_version, resource, namespace, None)
        if all(_labels(obj).get(k) == v for k, v in wanted.items())
    ]
    return _as_list(str(api_version), found)


def _labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    return labels if isinstance(labels, Mapping) else {}


def functions() -> dict[str, list[Function]]:
    return table(("Get", _get), ("get", _get), ("List", _list), ("list", _list), ("List", _list_selected),
                 ("list", _list_selected))  # fmt: skip


__all__ = ["MAX_ITEMS", "Finder", "functions", "reading"]
