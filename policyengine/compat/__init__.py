"""Kubernetes ValidatingAdmissionPolicy and Gatekeeper documents -> the same model as native policies.

``convert`` receives every document that is not a native kind and claims the ones it understands:
``vap`` takes ValidatingAdmissionPolicies, their bindings and the param objects of their paramKinds;
``gatekeeper`` takes ConstraintTemplates and their constraints; ``kyverno`` takes Kyverno's
ValidatingPolicies and PolicyExceptions. What nobody claims is reported by the
loader as an unknown kind. ``notes`` say what loaded but does nothing (a policy nobody binds, a template
without constraints), for ``check --verbose``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from policyengine.errors import Problem
from policyengine.loader import Document
from policyengine.model import Policy, PolicyException


@dataclass
class Converted:
    policies: list[Policy] = field(default_factory=list)
    exceptions: list[PolicyException] = field(default_factory=list)
    claimed: set[int] = field(default_factory=set)  # id() of every document consumed
    param_objects: tuple[Any, ...] = ()
    notes: list[str] = field(default_factory=list)


def convert(docs: Sequence[Document], problems: list[Problem]) -> Converted:
    """Claim and convert the ValidatingAdmissionPolicy and Gatekeeper documents among ``docs``."""
    from policyengine.compat.gatekeeper import convert as convert_gatekeeper
    from policyengine.compat.kyverno import convert as convert_kyverno
    from policyengine.compat.vap import convert as convert_vap

    out = Converted()
    convert_vap(docs, problems, out)
    convert_gatekeeper([d for d in docs if id(d) not in out.claimed], problems, out)
    convert_kyverno([d for d in docs if id(d) not in out.claimed], problems, out)
    return out


__all__ = ["Converted", "convert"]
