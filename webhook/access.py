"""What the webhook asks of the Kubernetes API, as RBAC rules: ``deploy/rbac.yaml`` grants exactly these.

A rule is (role, apiGroup, resource, verb): ``ClusterRole`` for what is read or written across the
cluster, ``Role`` for what lives in the webhook's own namespace. The informers list and watch their
resource tables (``webhook.cluster``) and the param objects of the paramKinds the shipped manifests
allow (``PARAM_RESOURCES``: another paramKind needs a rule of its own, or its param objects are not
listed and the webhook stays unready). The other calls go through the client's API classes and are
declared here by method (``CLIENT_CALLS``), so that a new call without its rule fails a test.
"""

from __future__ import annotations

from policyengine.scale import REPLICAS_AT
from webhook.bgcluster import DEFAULT_RESOURCES
from webhook.cluster import CORE, GROUPS, RESOURCES

CLUSTER = "ClusterRole"
NAMESPACE = "Role"  # the webhook's own namespace
Rule = tuple[str, str, str, str]  # (role, apiGroup, resource, verb)

# The paramKinds (group, resource) of ValidatingAdmissionPolicy bindings the manifests let serve --kube
# list and watch (webhook.paramwatch).
PARAM_RESOURCES = frozenset({("", "configmaps")})
# The client methods the webhook calls outside the informers, and the rule each needs.
CLIENT_CALLS: dict[str, tuple[Rule, ...]] = {
    # webhook.reservations: one ConfigMap per quota pool, in the webhook's namespace.
    "read_namespaced_config_map": ((NAMESPACE, "", "configmaps", "get"),),
    "create_namespaced_config_map": ((NAMESPACE, "", "configmaps", "create"),),
    "replace_namespaced_config_map": ((NAMESPACE, "", "configmaps", "update"),),
    # webhook.parents: the workload a scale request scales.
    "read_namespaced_replication_controller": ((CLUSTER, "", "replicationcontrollers", "get"),),
    "get_namespaced_custom_object": tuple(
        (CLUSTER, group, resource, "get") for group, resource in REPLICAS_AT if group
    ),
}
# Writers that come with the background scan: OpenReports (a Report per namespace, a ClusterReport;
# created or updated, stale ones deleted) and the Lease that elects the one replica writing them.
REPORT_WRITES = frozenset(
    (CLUSTER, "openreports.io", resource, verb)
    for resource in ("reports", "clusterreports")
    for verb in ("create", "update", "delete", "get", "list")
)
LEADER_ELECTION = frozenset(
    (NAMESPACE, "coordination.k8s.io", "leases", verb) for verb in ("create", "get", "update")
)


# The background pass (serve --kube --background-interval) lists the AI workloads --background-kinds
# names, by default these; another kind needs a list rule of its own, or the pass fails and names it. Its
# discovery reads (/api, /apis, /apis/<group>/<version>) are non-resource URLs every authenticated user
# may GET (the cluster's system:discovery ClusterRole): no rule here.
BACKGROUND_READS = frozenset((CLUSTER, group, resource, "list") for group, resource in DEFAULT_RESOURCES)


def watched() -> set[Rule]:
    """list and watch on each resource an informer reads."""
    groups = {r: "" for r in CORE} | {r: group for r, (group, _) in GROUPS.items()}
    resources = {(groups[r], r) for r in RESOURCES} | set(PARAM_RESOURCES)
    return {(CLUSTER, group, r, verb) for group, r in resources for verb in ("list", "watch")}


def required() -> set[Rule]:
    """Every rule the webhook needs: what ``deploy/rbac.yaml`` must grant, no more, no less."""
    calls = {rule for rules in CLIENT_CALLS.values() for rule in rules}
    return watched() | calls | REPORT_WRITES | LEADER_ELECTION | BACKGROUND_READS
