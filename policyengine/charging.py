"""Charging admitted workloads to their quota pool before their pods exist: the reservation ledger.

A workload's pods appear seconds (or, under Kueue, hours) after it is admitted, so the pods the inventory
has seen cannot be the whole usage. ``Ledger.open`` adds to ``org.quota.gpusInUse`` the reservations of
the pool whose pods are not observed yet (``org.quota.gpusReserved``); ``Ledger.settle`` reserves, after
an allowing decision, what the request adds, atomically against the limit (``ReservationStore.reserve``).

A reservation is handed over to its pods as they appear: a pod observed since the reservation was made
(its creationTimestamp, give or take ``SKEW``) and naming the workload -- by an ownerReference (uid, or
kind and name), the Job labels (``job-name``, ``batch.kubernetes.io/job-name``, ``controller-uid``), a
ReplicaSet owner ``<deployment>-<pod-template-hash>`` for a Deployment, or the JobSet, LeaderWorkerSet and
RayCluster name labels -- takes its devices off the reservation, so no GPU is counted twice. A workload
none of its pods name from themselves (a CronJob's Jobs) keeps its reservation until the TTL, the
backstop for every case the pods cannot tell.

A scan's ledger (``existing``) charges objects that already exist: a workload's pods, whenever created,
hold its devices already, so it reserves only what they do not show (a workload still pending), and its
reservation is never handed over to pods that were counted before it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from policyengine import errors
from policyengine.inventory import pods_held
from policyengine.model import Inventory, Outcome, Policy, Request, Result
from policyengine.reservations import PoolFull, Reservation, ReservationStore, StoreError
from policyengine.results import error_result, make_result, primary_action
from policyengine.workloads.values import as_dict, as_list

__all__ = [
    "DEFAULT_TTL",
    "QUOTA_POLICY",
    "SKEW",
    "Ledger",
    "pod_identities",
    "suspended_charge",
    "workload_key",
]

QUOTA_POLICY = "gpu-team-quota"  # the policy whose pass the reservation confirms (gpu-quotas pack)
DEFAULT_TTL = timedelta(minutes=2)
SKEW = timedelta(seconds=5)  # clock difference tolerated between the API server and this process
MAX_OWNERS = 16  # ownerReferences read per pod (an informer's pod, but bounded all the same)
MAX_NAMED = 10  # reservations named in a message
# Labels naming the workload a pod belongs to, and the workload's "<group>/<Kind>".
_NAME_LABELS = {
    "job-name": "batch/Job",
    "batch.kubernetes.io/job-name": "batch/Job",
    "jobset.sigs.k8s.io/jobset-name": "jobset.x-k8s.io/JobSet",
    "leaderworkerset.sigs.k8s.io/name": "leaderworkerset.x-k8s.io/LeaderWorkerSet",
    "ray.io/cluster": "ray.io/RayCluster",
}
_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")


def workload_key(request: Request) -> str:
    """The reservation key: "<namespace>/<group>/<Kind>/<name>" (the request uid when it has no name)."""
    return f"{request.namespace}/{request.kind.group}/{request.kind.kind}/{request.name or request.uid}"


def pod_identities(pod: Mapping[str, Any]) -> set[str]:
    """Every workload key and "uid:<uid>" this pod names from itself (module docstring)."""
    meta = as_dict(pod.get("metadata"))
    ns, labels = str(meta.get("namespace") or "default"), as_dict(meta.get("labels"))
    out = {f"{ns}//Pod/{meta.get('name')}"}
    for ref in as_list(meta.get("ownerReferences"))[:MAX_OWNERS]:
        ref = as_dict(ref)
        if isinstance(ref.get("uid"), str):
            out.add("uid:" + ref["uid"])
        api, kind, name = str(ref.get("apiVersion", "")), str(ref.get("kind", "")), str(ref.get("name", ""))
        group = api.split("/")[0] if "/" in api else ""
        out.add(f"{ns}/{group}/{kind}/{name}")
        hash_ = labels.get("pod-template-hash")
        if kind == "ReplicaSet" and isinstance(hash_, str) and hash_ and name.endswith("-" + hash_):
            out.add(f"{ns}/apps/Deployment/{name[: -len(hash_) - 1]}")
    for label, kind in _NAME_LABELS.items():
        if isinstance(labels.get(label), str):
            out.add(f"{ns}/{kind}/{labels[label]}")
    out.update("uid:" + labels[label] for label in _UID_LABELS if isinstance(labels.get(label), str))
    return out


def _created(pod: Mapping[str, Any]) -> datetime | None:
    stamp = as_dict(pod.get("metadata")).get("creationTimestamp")
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if isinstance(stamp, str) else None
    except ValueError:
        return None


@dataclass(frozen=True)
class _Observed:
    """The inventory's GPU-holding pods by the identities they name: (created, devices) per pod."""

    pods: list[tuple[datetime | None, int]] = field(default_factory=list)
    by_identity: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def build(cls, inventory: Inventory, config: Mapping[str, Any]) -> _Observed:
        observed = cls()
        for _, pod, held in pods_held(inventory, config):
            devices = sum(held.values())
            if devices <= 0:
                continue
            observed.pods.append((_created(pod), devices))
            for identity in pod_identities(pod):
                observed.by_identity.setdefault(identity, []).append(len(observed.pods) - 1)
        return observed

    def held_by(self, keys: Sequence[str]) -> int:
        """Devices of the pods naming any of ``keys``, whenever created."""
        return sum(self.pods[i][1] for i in {i for k in keys for i in self.by_identity.get(k, [])})

    def handed_over(self, reservation: Reservation, since: datetime) -> int:
        """Devices of the reservation's workload's pods created since ``since``."""
        keys = [reservation.key, *("uid:" + u for u in reservation.owner_uids)]
        indices = {i for k in keys for i in self.by_identity.get(k, [])}
        return sum(
            devices
            for i in indices
            for created, devices in [self.pods[i]]
            if created is None or created.tzinfo is None or created >= since
        )


@dataclass
class Charge:
    """What ``open`` learnt about one request, for ``settle``."""

    request: Request
    pool: str
    key: str
    limit: int | None  # org.quota.limits.quota; None: the pool has no quota
    adds: int  # workload.gpus.charge.total
    observed: int  # the pods' usage, less what held reservations already handed over
    own: int = 0  # this workload's own pending reservation (an UPDATE adds to it)
    shown: int = 0  # a scan's existing workload: the devices its own pods hold (not reserved again)
    pending: list[tuple[Reservation, int]] = field(default_factory=list)
    failure: str | None = None  # the store could not be read


class Ledger:
    """Reservations of one store, applied to the ``org`` view and settled after each decision."""

    def __init__(
        self, store: ReservationStore, *, ttl: timedelta = DEFAULT_TTL, existing: bool = False
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.existing = existing  # a scan: every object judged exists already (module docstring)
        self._lock = threading.Lock()
        self._last: tuple[Inventory, Mapping[str, Any], _Observed] | None = None

    def _observed(self, inventory: Inventory, config: Mapping[str, Any]) -> _Observed:
        with self._lock:
            if self._last is not None and self._last[0] is inventory and self._last[1] is config:
                return self._last[2]
        observed = _Observed.build(inventory, config)
        with self._lock:
            self._last = (inventory, config, observed)
        return observed

    def open(
        self,
        request: Request,
        bindings: dict[str, Any],
        inventory: Inventory,
        config: Mapping[str, Any],
        now: datetime,
    ) -> Charge | None:
        """Add the pool's pending reservations to ``org.quota`` in ``bindings``; None without the views."""
        quota, gpus = as_dict(bindings.get("org")).get("quota"), as_dict(bindings.get("workload"))
        if not isinstance(quota, dict) or type(quota.get("gpusInUse")) is not int:
            return None
        if not isinstance(quota.get("team"), str):
            return None
        limit = as_dict(quota.get("limits")).get("quota")
        adds = as_dict(as_dict(gpus.get("gpus")).get("charge")).get("total")
        charge = Charge(
            request=request,
            pool=quota["team"],
            key=workload_key(request),
            limit=limit if type(limit) is int else None,
            adds=adds if type(adds) is int else 0,
            observed=quota["gpusInUse"],
        )
        quota["gpusReserved"] = 0
        if request.operation not in ("CREATE", "UPDATE") or charge.adds <= 0 or charge.limit is None:
            return charge  # nothing to reserve: the store is not asked (one read per GPU admission)
        try:
            held = self.store.held(charge.pool, now)
        except StoreError as err:
            charge.failure = str(err)
            return charge
        observed = self._observed(inventory, config)
        if self.existing:
            charge.shown = observed.held_by([charge.key, *("uid:" + u for u in _uids(request))])
        for r in held:
            # A scan's reservations are what no pod shows: none is handed over.
            moved = 0 if self.existing else min(r.gpus, observed.handed_over(r, r.expires - self.ttl - SKEW))
            charge.observed -= moved  # counted by its pods: the store counts the whole reservation
            if r.key == charge.key:
                charge.own = r.gpus - moved
                if request.operation == "CREATE":
                    continue  # a CREATE replaces its own (an earlier attempt the API server dropped)
            if r.gpus > moved:
                charge.pending.append((r, r.gpus - moved))
        reserved = sum(n for _, n in charge.pending)
        quota["gpusReserved"] = reserved
        quota["gpusInUse"] += reserved
        return charge

    def settle(
        self, charge: Charge, results: list[Result], policies: Mapping[str, Policy], now: datetime
    ) -> list[Result]:
        """After the policies: release on DELETE; reserve what an allowed request adds; a refusal is a
        failure of the quota policy, a store that cannot decide an error of it (failurePolicy decides)."""
        request, policy = charge.request, policies.get(QUOTA_POLICY)
        if request.dry_run or any(r.denies for r in results):
            return results
        if request.operation == "DELETE":
            self._release(charge)
            return results
        own = [r for r in results if r.policy == QUOTA_POLICY]
        if policy is None or charge.limit is None or charge.adds <= 0 or not own:
            return results
        if any(r.outcome is not Outcome.PASS for r in own):
            return results  # denied, excepted or errored by the policy itself: nothing to reserve
        refused = self._reserve(charge, policy, now)
        if refused is None:
            return results
        # The refusal takes the place of the quota comparison's pass (the policy's last validation).
        last = results.index(own[-1])
        return [*results[:last], replace(refused, validation=own[-1].validation), *results[last + 1 :]]

    def settled(
        self, charge: Charge, results: list[Result], policies: Sequence[Policy], now: datetime
    ) -> list[Result]:
        """``settle``, then the quota policy's failures name the reservations they counted."""
        return explain(charge, self.settle(charge, results, {p.name: p for p in policies}, now))

    def unjudged(
        self,
        request: Request,
        inventory: Inventory,
        views: Callable[[Request, Inventory, Mapping[str, Any], datetime], Mapping[str, Any]],
        config: Mapping[str, Any],
        now: datetime,
    ) -> None:
        """A DELETE no policy judges still ends the workload's reservation (``views`` finds its pool)."""
        if request.operation != "DELETE" or request.dry_run:
            return
        try:
            bindings = dict(views(request, inventory, config, now))
        except Exception:  # the TTL ends the reservation of an object the views cannot read
            return
        charge = self.open(request, bindings, inventory, config, now)
        if charge is not None:
            self.settle(charge, [], {}, now)

    def _release(self, charge: Charge) -> None:
        # The TTL ends it if the store cannot: a deletion is never refused for the ledger's sake.
        with contextlib.suppress(StoreError):
            self.store.release(charge.pool, charge.key)

    def _reserve(self, charge: Charge, policy: Policy, now: datetime) -> Result | None:
        """None when reserved; else the quota policy's failure or error."""
        action = primary_action(policy.actions)
        if charge.failure is not None:
            return self._error(policy, charge.failure)
        gpus = charge.own + charge.adds if charge.request.operation == "UPDATE" else charge.adds
        if charge.shown >= gpus:
            return None  # a scan's running workload: its pods hold all of it, counted in use already
        reservation = Reservation(
            key=charge.key,
            pool=charge.pool,
            gpus=gpus - charge.shown,
            expires=now + self.ttl,
            owner_uids=_uids(charge.request),
        )
        try:
            if self.store.reserve(reservation, charge.limit or 0, max(0, charge.observed), now):
                return None
            held = self.store.held(charge.pool, now)
        except PoolFull as err:
            return make_result(policy, action, Outcome.FAIL, f"{err}; retry once some of them are running")
        except StoreError as err:
            return self._error(policy, str(err))
        taken = [r for r in held if r.key != charge.key]
        total = charge.observed + sum(r.gpus for r in taken)
        message = (
            f"pool {charge.pool}: {total} GPUs in use or reserved ({max(0, charge.observed)} by running "
            f"pods, {describe(taken)}) + {charge.adds} this workload adds = {total + charge.adds} > "
            f"quota {charge.limit}; another admission took them first"
        )
        return make_result(policy, action, Outcome.FAIL, message)

    @staticmethod
    def _error(policy: Policy, why: str) -> Result:
        message = f"the GPU reservation store cannot decide: {why}"
        return error_result(policy, message[:300], code=errors.EVAL_RESERVATION)


def describe(held: Sequence[Reservation] | Sequence[tuple[Reservation, int]]) -> str:
    """ "reserved by a (24), b (24)": the reservations named, at most MAX_NAMED of them."""
    pairs = [(h, h.gpus) if isinstance(h, Reservation) else h for h in held]
    if not pairs:
        return "none reserved"
    named = ", ".join(f"{r.key} ({n})" for r, n in pairs[:MAX_NAMED])
    more = f" and {len(pairs) - MAX_NAMED} more" if len(pairs) > MAX_NAMED else ""
    return f"{sum(n for _, n in pairs)} reserved by {named}{more}"


def explain(charge: Charge | None, results: list[Result]) -> list[Result]:
    """The quota policy's failures name the reservations in the running total they compared."""
    if charge is None or not charge.pending:
        return results
    note = f" (reservations counted: {describe(charge.pending)})"
    return [
        replace(r, message=r.message + note)
        if r.policy == QUOTA_POLICY and r.outcome is Outcome.FAIL and note not in r.message
        else r
        for r in results
    ]


def _uids(request: Request) -> tuple[str, ...]:
    uid = as_dict(as_dict(request.object).get("metadata")).get("uid")
    return (uid,) if isinstance(uid, str) and uid else ()


def _counts_suspended(config: Mapping[str, Any]) -> bool:
    spec = as_dict(config.get("spec")) if "gpu" not in config else config
    return as_dict(spec.get("gpu")).get("countSuspended") is not False


def is_suspended(obj: Any) -> bool:
    """spec.suspend (Job, JobSet, RayJob: how Kueue holds a workload) or spec.runPolicy.suspend
    (Kubeflow training jobs) is true."""
    spec = as_dict(as_dict(obj).get("spec"))
    return spec.get("suspend") is True or as_dict(spec.get("runPolicy")).get("suspend") is True


def suspended_charge(
    request: Request, workload: dict[str, Any], before: dict[str, Any] | None, config: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Under ``spec.gpu.countSuspended: false`` a suspended workload is charged 0 (Kueue's quota admits
    it, and unsuspending it is an UPDATE charged in full). Returns the ``before`` figures the charge by
    product is computed from (the workload itself: nothing added; None: all of it)."""
    if _counts_suspended(config) or request.operation not in ("CREATE", "UPDATE"):
        return before
    gpus = workload["gpus"]
    if is_suspended(request.object):
        gpus["charge"] = {"total": 0, "byResource": {name: 0 for name in gpus["byResource"]}}
        return dict(gpus)
    if request.operation == "UPDATE" and is_suspended(request.old_object):
        gpus["charge"] = {"total": gpus["total"], "byResource": dict(gpus["byResource"])}
        return None
    return before
