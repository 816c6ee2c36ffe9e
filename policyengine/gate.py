"""The CI gate's core: manifests -> admission requests -> decisions, with the verdict and exit code.

Each manifest document becomes the CREATE request kube-apiserver would send for it, so ``check`` and the
webhook run the same decision function on the same input. Namespaces come from ``--inventory`` when
given, else from Namespace documents among the manifests; a namespace named by a manifest but defined
nowhere is taken as existing with no labels (what ``kubectl create namespace`` makes). Every namespace,
and a Namespace under review, carries the ``kubernetes.io/metadata.name`` label the API server sets.
The checked set's workloads are charged to their teams' GPU quotas together (``policyengine.charging``).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from policyengine import compact as compacting
from policyengine.codec import request_from_manifest
from policyengine.discovery import Skipped
from policyengine.engine import Engine
from policyengine.fanout import decide_all
from policyengine.inventory import as_created
from policyengine.loader import Document, PathKey
from policyengine.match import CLUSTER_SCOPED_KINDS
from policyengine.model import (
    Action,
    Decision,
    Inventory,
    Outcome,
    Policy,
    Request,
    Result,
    SourceRef,
    UserInfo,
)
from policyengine.objects import is_object as is_object
from policyengine.objects import object_meta_problems as object_meta_problems
from policyengine.parking import ParkedDocument, Unparker
from policyengine.requirements import Unconfigured
from policyengine.workloads.claims import is_claim_object
from policyengine.workloads.persistent import is_volume_object
from policyengine.workloads.runtimes import is_runtime_object
from policyengine.workloads.scheduling import is_group_object

EXIT_OK, EXIT_VIOLATION, EXIT_ERROR = 0, 1, 2


@dataclass(frozen=True)
class Checked:
    """One manifest document and the decision made on it."""

    document: Document
    decision: Decision
    baselined: tuple[Result, ...] = ()  # findings a baseline file records (check --baseline)

    def is_baselined(self, result: Result) -> bool:
        return result in self.baselined

    @property
    def denied(self) -> bool:
        """Whether this resource fails the gate: it is denied on a finding no baseline records."""
        if not self.baselined:
            return not self.decision.allowed
        return any(r.denies and r not in self.baselined for r in self.decision.results)

    @property
    def warned(self) -> bool:
        """Whether it draws a warning no baseline records (what fails the gate under --strict)."""
        if not self.baselined:
            return bool(self.decision.warnings)
        return any(
            r.action is Action.WARN and r.outcome in (Outcome.FAIL, Outcome.ERROR) and r not in self.baselined
            for r in self.decision.results
        )

    def line_of(self, result: Result) -> int:
        """The line of the field the result concerns, else of the document."""
        path = parse_field_path(result.field_path) if result.field_path else ()
        return self.document.line_of(path)

    def column_of(self, result: Result) -> int | None:
        path = parse_field_path(result.field_path) if result.field_path else ()
        return self.document.column_of(path) if path else None


@dataclass(frozen=True)
class Summary:
    resources: int
    evaluated: int
    passed: int
    failed: int
    warned: int
    errors: int
    excepted: int
    denied_resources: int
    baselined: int = 0
    fixed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "resources": self.resources,
            "evaluated": self.evaluated,
            "passed": self.passed,
            "failed": self.failed,
            "warnings": self.warned,
            "errors": self.errors,
            "excepted": self.excepted,
            "deniedResources": self.denied_resources,
            "baselined": self.baselined,
            "fixed": self.fixed,
        }


@dataclass(frozen=True)
class CheckReport:
    checked: tuple[Checked, ...]
    policy_set_digest: str = ""
    skipped: tuple[Document, ...] = field(default=())  # documents that are not Kubernetes objects
    policies: tuple[Policy, ...] = ()  # every loaded policy: reports describe them (SARIF rules)
    skipped_files: tuple[Skipped, ...] = ()  # files and Helm charts a directory walk left out
    baseline_fixed: int | None = None  # baseline entries that no longer occur; None: no baseline given
    # Policies not evaluated for want of organisation facts in the config: one notice each per run.
    unconfigured: tuple[Unconfigured, ...] = ()

    @property
    def skipped_counts(self) -> tuple[int, int]:
        """How many files were skipped as not manifests, and how many Helm charts were not rendered."""
        charts = sum(1 for s in self.skipped_files if s.kind == "chart")
        return len(self.skipped_files) - charts, charts

    def summary(self) -> Summary:
        """The counts, in one pass over the results (a large tree's results are never listed together)."""
        counts = dict.fromkeys(("evaluated", "passed", "failed", "warned", "errors", "excepted"), 0)
        denied = baselined = 0
        skip = Outcome.SKIP
        for c in self.checked:
            denied += c.denied
            baselined += len(c.baselined)
            kept = c.baselined
            for r in c.decision.results:
                # Every check made, baselined ones included: a baseline changes the verdict, not the work.
                counts["evaluated"] += r.outcome is not skip
                counted = None if kept and r in kept else _COUNTED_AS.get((r.outcome, r.action))
                if counted is not None:
                    counts[counted] += 1
        return Summary(
            resources=len(self.checked),
            denied_resources=denied,
            baselined=baselined,
            fixed=self.baseline_fixed or 0,
            **counts,
        )

    def exit_code(self, *, strict: bool = False) -> int:
        if any(c.denied for c in self.checked):
            return EXIT_VIOLATION
        if strict and any(c.warned for c in self.checked):
            return EXIT_VIOLATION
        return EXIT_OK


# The summary count a result not in the baseline adds to, by (outcome, action); none for the others.
_COUNTED_AS: dict[tuple[Outcome, Action], str] = {
    **{(Outcome.FAIL, a): n for a, n in ((Action.DENY, "failed"), (Action.WARN, "warned"))},
    **{
        (o, a): n
        for o, n in ((Outcome.PASS, "passed"), (Outcome.ERROR, "errors"), (Outcome.EXCEPTED, "excepted"))
        for a in Action
    },
}


def parse_field_path(text: str) -> PathKey:
    """ "spec.containers[0].image" -> ("spec", "containers", 0, "image"); quoted keys allowed: ['a.b']."""
    # The same few paths come back for every resource a policy judges: a short one is parsed once.
    return _parsed_path(text) if len(text) <= _CACHED_PATH else _parse_field_path(text)


_CACHED_PATH = 256  # longer texts (rare; maybe a manifest's own keys) are parsed each time, never kept


@functools.lru_cache(maxsize=4096)
def _parsed_path(text: str) -> PathKey:
    return _parse_field_path(text)


def _parse_field_path(text: str) -> PathKey:
    out: list[str | int] = []
    i, n = 0, len(text)
    token = ""
    while i < n:
        ch = text[i]
        if ch == ".":
            if token:
                out.append(token)
            token = ""
        elif ch == "[":
            if token:
                out.append(token)
            token = ""
            end = text.find("]", i)
            if end < 0:
                break
            inner = text[i + 1 : end].strip()
            if inner[:1] in "'\"" and inner[-1:] == inner[:1]:
                out.append(inner[1:-1])
            elif inner.isdigit():
                out.append(int(inner))
            else:
                out.append(inner)
            i = end
        else:
            token += ch
        i += 1
    if token:
        out.append(token)
    return tuple(out)


def request_for(doc: Document, *, operation: str = "CREATE", user: UserInfo | None = None) -> Request:
    """The admission request kube-apiserver would send to create this manifest document."""
    uid = hashlib.sha256(f"{doc.file}\0{doc.index}\0{doc.line}".encode()).hexdigest()[:32]
    return request_from_manifest(
        doc.data, operation=operation, user=user, uid=uid, source=SourceRef(doc.file, doc.line)
    )


def namespaces_from(docs: Sequence[Document]) -> dict[str, Any]:
    return {
        d.name: d.data
        for d in docs
        if is_object(d.data) and d.data.get("kind") == "Namespace" and d.data.get("apiVersion") == "v1"
    }


def with_manifest_namespaces(inventory: Inventory | None, docs: Sequence[Document]) -> Inventory:
    """The inventory to check against: the given one, else the manifests' own Namespace documents; any
    namespace a manifest names but nobody defines is added with no labels but the name label that the
    API server puts on every namespace."""
    namespaces: dict[str, Any] = (
        dict(inventory.namespaces) if inventory is not None else namespaces_from(docs)
    )
    for d in docs:
        if not is_object(d.data) or d.data.get("kind") in CLUSTER_SCOPED_KINDS:
            continue
        meta = d.data.get("metadata")
        ns = str(meta.get("namespace") or "default") if isinstance(meta, dict) else "default"
        namespaces.setdefault(ns, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    # The manifests' own ResourceClaims and templates are there for the pods that name them, beside (and
    # after, so winning over) the inventory's: check sees every document before it evaluates one. So are
    # their PodGroups and Workloads (scheduling.k8s.io), whose claims the pods of a group share, and their
    # PersistentVolumeClaims, PersistentVolumes and Fluid Datasets, the data behind claim volumes, and
    # their Kubeflow Trainer runtimes, whose pods the TrainJobs naming them run (a name defined twice: the
    # later document, in file order, wins).
    claims = cluster_objects(docs)
    return Inventory(
        namespaces={name: as_created(name, ns) for name, ns in namespaces.items()},
        objects=(inventory.objects if inventory is not None else ()) + claims,
    )


def cluster_objects(docs: Sequence[Document]) -> tuple[dict[str, Any], ...]:
    """The documents a workload's view looks up by name, as the cluster would hold them: DRA claims and
    templates, PodGroups and Workloads, claim volumes' PVCs, PVs and Fluid Datasets, Trainer runtimes."""
    return tuple(
        d.data
        for d in docs
        if is_claim_object(d.data)
        or is_group_object(d.data)
        or is_volume_object(d.data)
        or is_runtime_object(d.data)
    )


def check_documents(
    engine: Engine,
    docs: Sequence[Document],
    *,
    inventory: Inventory | None = None,
    now: datetime,
    user: UserInfo | None = None,
    skipped_files: Sequence[Skipped] = (),
    after_each: Callable[[Checked], None] | None = None,
    existing: bool = False,
    jobs: int = 1,
    compact: bool = False,
) -> CheckReport:
    """``after_each`` is called after each object's decision (a background scan paces itself there);
    ``existing``: the documents are objects the cluster holds (a scan), their pods in ``inventory``;
    ``jobs`` > 1 decides a large set in that many worker processes, with the same report; ``compact``
    keeps of each document and decision only what the reports read (``policyengine.compact``): the
    parsed objects are then not in the report."""
    world = with_manifest_namespaces(inventory, docs)
    objects = [doc for doc in docs if is_object(doc.data)]
    user = user or UserInfo()  # one for every request (a large set keeps each request to the end)
    # Every workload of the set is charged to its team in order (file, then document), as if they were
    # admitted one after another: together they cannot take more than the quota.
    requests = [request_for(doc, user=user) for doc in objects]
    parked = compact and any(isinstance(d, ParkedDocument) for d in objects)
    if parked:  # evaluated as their unpacked documents make them, they need only say who they concern
        requests = [replace(r, object=None) for r in requests]  # and the kept decisions hold these

    def each(index: int, decision: Decision) -> None:
        if after_each is not None:
            after_each(Checked(objects[index], decision))

    hook = each if after_each is not None else None
    if compact:
        checked = _decide_kept(engine, objects, requests, world, now, jobs, user, existing, parked, hook)
    else:
        decisions = decide_all(
            engine, requests, inventory=world, now=now, jobs=jobs, existing=existing, after_each=hook
        )
        checked = [Checked(doc, decision) for doc, decision in zip(objects, decisions, strict=True)]
    skipped = [doc for doc in docs if not is_object(doc.data)]
    policy_set = engine.policy_set
    return CheckReport(
        tuple(checked),
        engine.digest,
        tuple(skipped),
        policy_set.policies,
        tuple(skipped_files),
        unconfigured=policy_set.unconfigured,
    )


def _decide_kept(
    engine: Engine,
    objects: list[Document],
    requests: list[Request],
    world: Inventory,
    *how: Any,
) -> list[Checked]:
    """Each object decided, only what the reports read of it and its decision kept (``how``: now, jobs,
    user, existing, full_requests, after_each). A document is read whole (unpacked, when parked) only
    while evaluated, where what the reports need of it is picked; this process makes the kept document
    and decision of that with its own objects (identity fields, request), so a worker sends back little.
    With ``full_requests`` each request evaluated is made of its unpacked document, and ``requests``
    (without their objects) are those the kept decisions hold."""
    now, jobs, user, existing, full_requests, hook = how
    unpark = Unparker()
    shared = compacting.Results()

    def full(index: int) -> Request:
        return request_for(unpark(objects[index]), user=user)

    def keep(index: int, made: Decision) -> tuple[dict[PathKey, tuple[int, int]], Decision]:
        fields = [parse_field_path(r.field_path) for r in made.results if r.field_path]
        kept = compacting.decision(made, shared)
        if full_requests:  # this process holds the same request but for its object: it is not sent
            kept = replace(kept, request=None)  # type: ignore[arg-type]
        return compacting.positions(unpark(objects[index]), fields), kept

    def settle(index: int, kept: tuple[dict[PathKey, tuple[int, int]], Decision]) -> Checked:
        positions, made = kept
        if full_requests:
            made = replace(made, request=requests[index])
        return Checked(compacting.located(objects[index], positions), made)

    kept: dict[str, Any] = {"keep": keep, "settle": settle, "full": full if full_requests else None}
    return decide_all(
        engine, requests, inventory=world, now=now, jobs=jobs, existing=existing, after_each=hook, **kept
    )


def resource_of(obj: Mapping[str, Any], request: Request) -> dict[str, str]:
    return {
        "apiVersion": str(obj.get("apiVersion", "")) if isinstance(obj, Mapping) else "",
        "kind": request.kind.kind,
        "namespace": request.namespace,
        "name": request.name,
    }
