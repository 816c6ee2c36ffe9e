"""Which param objects the loaded policy set needs from the cluster: the paramKinds of its
ValidatingAdmissionPolicy bindings, and, per kind, the objects some binding's paramRef can select.

Only those objects are kept (a cluster holds many ConfigMaps; the policies read a few): an object is
wanted when a paramRef of its kind could select it, by namespace (when the ref names one), by name or by
label selector, as ``policyengine.params.lookup`` selects at evaluation time. A paramRef with neither a
name nor a selector selects nothing (the binding fails to configure, under its failurePolicy).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from policyengine.match import labels_of, selector_matches
from policyengine.model import ParamRef, Policy


@dataclass(frozen=True)
class ParamKind:
    """One paramKind (``apiVersion`` + ``kind``) and the paramRefs of the bindings that use it."""

    api_version: str
    kind: str
    refs: tuple[ParamRef, ...]

    @property
    def key(self) -> str:
        """The informer's resource name for this kind, e.g. ``ConfigMap.v1``."""
        return f"{self.kind}.{self.api_version}"

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    def wants(self, obj: Mapping[str, Any]) -> bool:
        """Whether some paramRef of this kind could select ``obj``."""
        meta = obj.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        for ref in self.refs:
            if ref.namespace and ref.namespace != namespace:
                continue
            if ref.name is not None and ref.name == name:
                return True
            selector = ref.selector if ref.name is None else None
            if selector is not None and selector_matches(selector, labels_of(obj)):
                return True
        return False


def param_kinds(policies: Iterable[Policy]) -> dict[str, ParamKind]:
    """The paramKinds ``policies`` read, by informer key (sorted, so equal sets compare equal)."""
    refs: dict[tuple[str, str], list[ParamRef]] = {}
    for policy in policies:
        ref = policy.param_ref
        if ref is None or (ref.name is None and ref.selector is None):
            continue
        found = refs.setdefault((ref.api_version, ref.kind), [])
        if ref not in found:
            found.append(ref)
    kinds = [ParamKind(api_version, kind, tuple(r)) for (api_version, kind), r in refs.items()]
    return {k.key: k for k in sorted(kinds, key=lambda k: k.key)}
