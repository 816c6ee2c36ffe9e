"""The ``policyengine_violations{policy,action,namespace}`` gauge of the last background pass, with its
label cardinality bounded.

Policies and actions are bounded by the policy set the operator loads; namespaces are not (anyone who can
create namespaces adds one). So at most ``max_namespaces`` namespaces get series of their own: those with
the most violations (ties by name, so a pass's labels are stable); every other namespace's violations are
summed under ``namespace="_other"``, and cluster-scoped objects' under ``namespace="_cluster"``. A pass
therefore exports at most policies x actions x (max_namespaces + 2) series, whatever the cluster holds.
A violation is a result whose outcome is ``fail``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from policyengine.model import Decision, Outcome

DEFAULT_MAX_NAMESPACES = 100
OTHER = "_other"
CLUSTER = "_cluster"

Key = tuple[str, str, str]  # policy, action, namespace label


def count(
    by_namespace: Mapping[str, Sequence[Decision]],
    cluster: Sequence[Decision],
    max_namespaces: int = DEFAULT_MAX_NAMESPACES,
) -> dict[Key, int]:
    """Failed results per (policy, action, namespace label), namespaces capped as the module says."""
    per_namespace = {ns: _fails(decisions) for ns, decisions in by_namespace.items()}
    ranked = sorted(
        (ns for ns, fails in per_namespace.items() if fails),
        key=lambda ns: (-sum(per_namespace[ns].values()), ns),
    )
    kept = set(ranked[:max_namespaces])
    out: Counter[Key] = Counter()
    for ns, fails in per_namespace.items():
        label = ns if ns in kept else OTHER
        for (policy, action), n in fails.items():
            out[(policy, action, label)] += n
    for (policy, action), n in _fails(cluster).items():
        out[(policy, action, CLUSTER)] += n
    return dict(out)


def _fails(decisions: Iterable[Decision]) -> Counter[tuple[str, str]]:
    fails: Counter[tuple[str, str]] = Counter()
    for decision in decisions:
        for r in decision.results:
            if r.outcome is Outcome.FAIL:
                fails[(r.policy, str(r.action))] += 1
    return fails


class ViolationGauge:
    """The counts of the last pass, read by ``/metrics`` (a pass replaces them whole)."""

    def __init__(self, max_namespaces: int = DEFAULT_MAX_NAMESPACES) -> None:
        if max_namespaces < 0:
            raise ValueError("max_namespaces must not be negative")
        self.max_namespaces = max_namespaces
        self._counts: dict[Key, int] = {}
        self._lock = threading.Lock()

    def update(self, by_namespace: Mapping[str, Sequence[Decision]], cluster: Sequence[Decision]) -> None:
        counts = count(by_namespace, cluster, self.max_namespaces)
        with self._lock:
            self._counts = counts

    def samples(self) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            counts = self._counts
        return [
            (float(n), {"policy": policy, "action": action, "namespace": ns})
            for (policy, action, ns), n in sorted(counts.items())
        ]
