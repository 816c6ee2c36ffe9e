"""The background scan's core: objects that already exist -> the decisions the policy set makes on them now.

Each object is judged as the CREATE request kube-apiserver would send for it, the way ``check`` judges a
manifest (``gate.check_documents``: same request, same inventory rules), with ``oldObject`` null and an
empty ``userInfo``, as Gatekeeper's audit does. One difference in charging: an object's own pods already
hold its GPUs, so its pool's usage is read without them (``policyengine/ownusage.py``) and it reserves only
what they do not show (``charging.Ledger``), where ``check`` charges a new manifest on top of everything. Only the policies a background scan may run
are evaluated: a policy annotated ``policyengine.io/background: "false"`` (it reads who asks or what
changed) stays at admission, as Kyverno's ``background: false``. Pure: the caller hands in the objects,
the inventory and ``now``, so the CLI and the webhook's background thread share it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from policyengine.cel import DEFAULT_BUDGET, Budget
from policyengine.engine import Engine
from policyengine.gate import Checked, CheckReport, check_documents, is_object
from policyengine.inventory import from_documents
from policyengine.loader import Document
from policyengine.match import gvk_of, gvr_of
from policyengine.model import Inventory
from policyengine.policyset import PolicySet

CLUSTER_ORIGIN = "cluster"  # the file name reports give an object read from the API server


def background_engine(policy_set: PolicySet, *, budget: Budget = DEFAULT_BUDGET) -> Engine:
    """An engine running the policies a background scan may run (built once, reused for every pass)."""
    return Engine(policy_set, budget=budget, background=True)


def documents_of(objects: Iterable[Any], *, origin: str = CLUSTER_ORIGIN) -> list[Document]:
    """Objects read from the API server as documents of one file named ``origin``, in the order given."""
    return [Document(data=obj, file=origin, line=1, index=i) for i, obj in enumerate(objects)]


def select_kinds(docs: Sequence[Document], kinds: Sequence[str]) -> list[Document]:
    """The documents whose kind (``TrainJob``, ``trainjobs`` or ``trainjobs.trainer.kubeflow.org``,
    case-insensitive) is among ``kinds``; all of them when ``kinds`` is empty."""
    if not kinds:
        return list(docs)
    wanted = {k.lower() for k in kinds}
    return [d for d in docs if is_object(d.data) and _kind_names(d.data) & wanted]


def _kind_names(obj: Mapping[str, Any]) -> set[str]:
    """The names ``--kinds`` may give an object by: kind and plural, alone or with the group."""
    gvk = gvk_of(obj)
    names = {gvk.kind.lower(), gvr_of(gvk).resource.lower()}
    return names | {f"{n}.{gvk.group.lower()}" for n in names} if gvk.group else names


def scan(
    engine: Engine,
    objects: Sequence[Document],
    *,
    inventory: Inventory | None,
    now: datetime,
    after_each: Callable[[Checked], None] | None = None,
) -> CheckReport:
    """Judge every object as it stands: one ``Checked`` (document and decision) per object, in order.

    ``engine`` should come from ``background_engine``; ``inventory`` is the cluster the objects live in
    (namespaces, pods, claims, runtimes...); None takes it from the objects themselves. Objects that are
    not Kubernetes objects are listed as skipped, as ``check`` lists them. ``after_each`` is called after
    each object's decision (the webhook's background thread paces itself and stops there)."""
    world = inventory if inventory is not None else from_documents(d.data for d in objects)
    return check_documents(engine, objects, inventory=world, now=now, after_each=after_each, existing=True)


def scan_objects(
    policy_set: PolicySet | Engine,
    objects: Iterable[Any],
    inventory: Inventory | None,
    *,
    now: datetime,
    origin: str = CLUSTER_ORIGIN,
) -> CheckReport:
    """``scan`` for plain objects (dicts as the API server returns them); a PolicySet is compiled into a
    background engine first (pass the Engine to reuse one across passes)."""
    engine = policy_set if isinstance(policy_set, Engine) else background_engine(policy_set)
    return scan(engine, documents_of(objects, origin=origin), inventory=inventory, now=now)
