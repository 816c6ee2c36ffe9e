"""Kubernetes ValidatingAdmissionPolicy and Gatekeeper documents -> the same model as native policies.

``convert`` receives every document that is not a native kind and claims the ones it understands.
What nobody claims is reported by the loader as an unknown kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from policyengine.errors import Problem
from policyengine.loader import Document
from policyengine.model import Policy


@dataclass
class Converted:
    policies: list[Policy] = field(default_factory=list)
    claimed: set[int] = field(default_factory=set)  # id() of every document consumed
    param_objects: tuple[Any, ...] = ()


def convert(docs: Sequence[Document], problems: list[Problem]) -> Converted:
    """Claim and convert the documents this layer understands (none yet)."""
    return Converted()
