"""Which policies a background scan skips, and the Engine it scans with.

A policy that only makes sense at admission (it reads ``request.userInfo`` or ``oldObject``) opts out with
the annotation ``policyengine.io/background: "false"`` on its document, as Kyverno's ``background: false``;
Kyverno's own switch (``Policy.background``) is honoured too. The annotation is read from the document at
the policy's source (file and line), so the scan needs nothing from the loader but what it keeps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from policyengine.cel import Budget
from policyengine.engine import Engine
from policyengine.loader import collect_documents
from policyengine.model import Policy
from policyengine.policyset import PolicySet

ANNOTATION = "policyengine.io/background"


def background_engine(policy_set: PolicySet, budget: Budget) -> Engine:
    """An Engine of ``policy_set`` without the policies that opted out, under ``budget``."""
    skipped = opted_out(policy_set.policies)
    policies = tuple(replace(p, background=False) if p.name in skipped else p for p in policy_set.policies)
    return Engine(replace(policy_set, policies=policies), budget=budget, background=True)


def opted_out(policies: Iterable[Policy]) -> frozenset[str]:
    """The names of the policies annotated ``policyengine.io/background: "false"`` (or with Kyverno's
    background switch off). A document that cannot be read again opts nothing out."""
    policies = list(policies)
    files = sorted({p.source.file for p in policies if p.source.file})
    docs, _problems = collect_documents(files)
    annotations = {(d.file, d.line): _annotations(d.data) for d in docs}
    out = {p.name for p in policies if not p.background}
    for p in policies:
        value = annotations.get((p.source.file, p.source.line), {}).get(ANNOTATION)
        if isinstance(value, str) and value.strip().lower() == "false":
            out.add(p.name)
    return frozenset(out)


def _annotations(data: object) -> Mapping[str, object]:
    meta = data.get("metadata") if isinstance(data, Mapping) else None
    found = meta.get("annotations") if isinstance(meta, Mapping) else None
    return found if isinstance(found, Mapping) else {}
