"""The background scan's side of the cluster (``serve --kube --background-interval``): the AI workloads
each pass reads from the API server, and the OpenReports the elected replica writes back.

The informers hold the inventory (namespaces, pods, DRA claims, runtimes...), not the workloads
themselves (TrainJobs, InferenceServices, RayClusters, JobSets... are CRD-backed). Each pass reads the
ones the scanned policies may match through discovery, paged and bounded by ``max_objects``
(``webhook.kubescan.read_cluster``). The shipped packs match every kind (``*``), so what is read is
bounded by name: ``--background-kinds``, by default ``DEFAULT_KINDS``, the AI workload kinds the engine
understands; ``deploy/rbac.yaml`` grants ``list`` on exactly these. A resource that cannot be read fails
the pass (``ClusterReadError``): publishing without it would delete its results from the reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from policyengine.model import Decision, Inventory, Policy
from policyengine.reports.openreports import build_reports
from webhook.kubescan import Applied, KubeRest, apply_reports, read_cluster

# (apiGroup, resource) of the AI workloads a background pass reads by default: Kubeflow's training
# operator and Trainer, KubeRay, KServe, JobSet, LeaderWorkerSet and Volcano. TrainingRuntimes are
# not here: the informers hold them.
DEFAULT_RESOURCES: tuple[tuple[str, str], ...] = (
    ("kubeflow.org", "pytorchjobs"),
    ("kubeflow.org", "tfjobs"),
    ("kubeflow.org", "paddlejobs"),
    ("kubeflow.org", "xgboostjobs"),
    ("kubeflow.org", "jaxjobs"),
    ("kubeflow.org", "mpijobs"),
    ("trainer.kubeflow.org", "trainjobs"),
    ("ray.io", "rayclusters"),
    ("ray.io", "rayjobs"),
    ("ray.io", "rayservices"),
    ("serving.kserve.io", "inferenceservices"),
    ("serving.kserve.io", "llminferenceservices"),
    ("jobset.x-k8s.io", "jobsets"),
    ("leaderworkerset.x-k8s.io", "leaderworkersets"),
    ("batch.volcano.sh", "jobs"),
)
DEFAULT_KINDS: tuple[str, ...] = tuple(f"{resource}.{group}" for group, resource in DEFAULT_RESOURCES)
DEFAULT_MAX_OBJECTS = 100_000


class ClusterReadError(Exception):
    """A pass could not read every resource it scans: it is not published."""


class ClusterObjects:
    """What a pass judges with --kube: the inventory's own objects (from the informers) and the workloads
    read from the API server now."""

    def __init__(self, rest: KubeRest, *, kinds: Sequence[str], max_objects: int) -> None:
        self.rest = rest
        self.kinds = tuple(kinds)
        self.max_objects = max_objects

    def __call__(self, inventory: Inventory, policies: Sequence[Policy]) -> list[Any]:
        held = [*inventory.namespaces.values(), *inventory.objects]
        budget = self.max_objects - len(held)
        if budget <= 0:
            raise ClusterReadError(f"the inventory alone holds more than {self.max_objects} objects")
        try:
            read = read_cluster(
                self.rest, policies, kinds=self.kinds, max_objects=budget, with_inventory=False
            )
        except Exception as err:  # discovery refused, --max-objects reached, the API server unreachable
            raise ClusterReadError(f"cannot read the cluster: {err}") from err
        if read.unread:
            raise ClusterReadError(f"cannot list {'; '.join(read.unread)}")
        return held + read.objects


class OpenReportsWriter:
    """A ``ReportSink`` writing a pass's results as OpenReports: created or updated, and the reports of
    namespaces with no result any more deleted (``webhook.kubescan.apply_reports``)."""

    def __init__(self, rest: KubeRest, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.rest = rest
        self.clock = clock
        self.last: Applied | None = None

    def publish(
        self, results_by_namespace: Mapping[str, Sequence[Decision]], cluster_results: Sequence[Decision]
    ) -> None:
        decisions = [d for ds in results_by_namespace.values() for d in ds] + list(cluster_results)
        self.last = apply_reports(self.rest, build_reports(decisions, now=self.clock()))
