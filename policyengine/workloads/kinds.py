"""Where each workload kind keeps its pod templates, and how many pods each template produces.

One function per family of kinds turns an object into ``PodTemplate`` values: the pod spec (or the part of
the object that plays that role), its field path, the containers it runs and its pod count. Counts are
the most a workload may reach, because quotas must hold at the top of an autoscaling range:

- Pod 1; Deployment/StatefulSet/ReplicaSet ``replicas`` (1); DaemonSet 1, flagged per node; Job and
  CronJob ``parallelism`` (1), capped by ``completions`` when that is smaller (the Job controller never
  runs more pods than completions remain, as Kueue counts); unknown kinds with ``spec.template.spec``:
  ``spec.replicas`` (1).
- Kubeflow v1 jobs: each role's ``replicas``; the Worker role at least ``elasticPolicy.maxReplicas``.
- TrainJob: one trainer template (``spec.trainer``: image, command, args, env, ``resourcesPerNode``) with
  ``numNodes`` (1) pods, placed by ``runtimePatches``/``podSpecOverrides`` aimed at the ``node`` job; when
  its runtime is known, the runtime's pods with these overrides instead (``workloads.runtimes``).
  (Cluster)TrainingRuntime: each replicated job ``replicas x parallelism``; ``node`` gets
  ``mlPolicy.numNodes``.
- Ray: head 1 (when the object carries a cluster) + per worker group max(``replicas``, ``minReplicas``,
  ``maxReplicas``) x ``numOfHosts``; a RayJob's ``submitterPodTemplate`` 1.
- JobSet: ``replicas x parallelism`` (parallelism capped by ``completions``). LeaderWorkerSet: leaders ``replicas``, workers
  ``replicas x (size - 1)``; without a leader template all ``replicas x size`` pods use the worker one.
- InferenceService components: ``maxReplicas``, else max(``minReplicas``, 1) (a scale-to-zero component
  runs one pod when it serves); ``workerSpec``: ``pipelineParallelSize - 1`` per component replica.
- LLMInferenceService (and ``prefill``): ``template`` ``replicas``; ``worker`` ``replicas x (size - 1)``
  (at least 1) where size is ``data / dataLocal`` when both are set, else ``pipeline``, else 1.
- Volcano Job (``batch.volcano.sh``): each task's ``replicas`` (1). Core PodTemplate: ``template.spec``, 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from policyengine.workloads.values import (
    Problems,
    as_dict,
    as_list,
    count,
    opt_count,
    path_key,
    problem,
    text,
)


@dataclass(frozen=True)
class ContainerSite:
    """One container (or container-like block, e.g. a KServe framework spec or a TrainJob trainer)."""

    container: Mapping[str, Any]
    path: str  # e.g. spec.template.spec.containers[0]
    init: bool = False
    resources_path: str = ""  # defaults to <path>.resources


@dataclass(frozen=True)
class PodTemplate:
    name: str
    path: str  # field path of the pod spec
    spec: Mapping[str, Any]  # where nodeSelector, affinity and resourceClaims are read
    replicas: int
    containers: tuple[ContainerSite, ...] = ()
    per_node: bool = False
    # (path, pod spec) of patches whose nodeSelector/affinity also constrain these pods (TrainJob)
    extra_placement: tuple[tuple[str, Mapping[str, Any]], ...] = ()


AI_KINDS = frozenset(
    {
        "PyTorchJob",
        "TFJob",
        "PaddleJob",
        "XGBoostJob",
        "JAXJob",
        "MPIJob",
        "TrainJob",
        "TrainingRuntime",
        "ClusterTrainingRuntime",
        "RayCluster",
        "RayJob",
        "RayService",
        "InferenceService",
        "LLMInferenceService",
    }
)

# KServe component keys that are containers carrying a model (v1beta1 "framework" specs and `model`).
_KSERVE_FRAMEWORKS = (
    "model",
    "sklearn",
    "xgboost",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "pmml",
    "lightgbm",
    "paddle",
    "huggingface",
    "alibi",
    "art",
)


def pod_spec_containers(spec: Mapping[str, Any], path: str) -> tuple[ContainerSite, ...]:
    """Init containers first (they run first), then the app containers, each with its field path."""
    sites: list[ContainerSite] = []
    for key, init in (("initContainers", True), ("containers", False)):
        for i, c in enumerate(as_list(spec.get(key))):
            if isinstance(c, Mapping):
                sites.append(ContainerSite(c, f"{path}.{key}[{i}]", init=init))
    return tuple(sites)


def _template(name: str, spec: Any, path: str, replicas: int, per_node: bool = False) -> PodTemplate:
    s = as_dict(spec)
    return PodTemplate(name, path, s, replicas, pod_spec_containers(s, path), per_node=per_node)


def _standard(obj: Mapping[str, Any], problems: Problems) -> list[PodTemplate]:
    kind = obj.get("kind")
    spec = as_dict(obj.get("spec"))
    if kind == "Pod":
        return [_template("pod", spec, "spec", 1)]
    if kind == "DaemonSet":
        return [_template("pod", as_dict(spec.get("template")).get("spec"), "spec.template.spec", 1, True)]
    if kind == "CronJob":
        job = as_dict(as_dict(spec.get("jobTemplate")).get("spec"))
        n = _job_pods(job, "spec.jobTemplate.spec", problems)
        pod = as_dict(job.get("template")).get("spec")
        return [_template("pod", pod, "spec.jobTemplate.spec.template.spec", n)]
    if kind == "Job":
        n = _job_pods(spec, "spec", problems)
    else:
        n = count(spec.get("replicas"), "spec.replicas", 1, problems)
    template = spec.get("template")
    if not isinstance(template, Mapping) or not isinstance(template.get("spec"), Mapping):
        return []
    return [_template("pod", template["spec"], "spec.template.spec", n)]


def _job_pods(job: Mapping[str, Any], path: str, problems: Problems) -> int:
    """The most pods a Job runs at once: ``parallelism`` (1), no more than ``completions``."""
    n = count(job.get("parallelism"), f"{path}.parallelism", 1, problems)
    completions = opt_count(job.get("completions"), f"{path}.completions", problems)
    return n if completions is None else min(n, completions)


def _kubeflow(obj: Mapping[str, Any], problems: Problems) -> list[PodTemplate]:
    spec = as_dict(obj.get("spec"))
    elastic_max = opt_count(
        as_dict(spec.get("elasticPolicy")).get("maxReplicas"), "spec.elasticPolicy.maxReplicas", problems
    )
    out: list[PodTemplate] = []
    for key, roles in spec.items():
        if not isinstance(key, str) or not key.endswith("ReplicaSpecs") or not isinstance(roles, Mapping):
            continue
        for role, rs in roles.items():
            # Role names are the manifest's map keys: a long one is cut in the path every container
            # and field of the role repeats (the template's name keeps it whole, once).
            base = f"spec.{path_key(key)}.{path_key(role)}"
            rs = as_dict(rs)
            n = count(rs.get("replicas"), f"{base}.replicas", 1, problems)
            # Elastic training scales workers up to maxReplicas; quotas must hold at the top of that range.
            if elastic_max is not None and role == "Worker":
                n = max(n, elastic_max)
            pod = as_dict(rs.get("template")).get("spec")
            out.append(_template(text(role), pod, f"{base}.template.spec", n))
    return out


# The label Trainer puts on a runtime's replicated jobs to say which step each runs; the trainer's job is
# the one labelled ``trainer`` (older runtimes: the job named ``node``).
ANCESTOR_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"


def is_trainer_job(rj: Mapping[str, Any]) -> bool:
    """Whether a runtime's replicated job runs the trainer, whose pod count is numNodes."""
    labels = as_dict(as_dict(as_dict(rj.get("template")).get("metadata")).get("labels"))
    return rj.get("name") == "node" or labels.get(ANCESTOR_LABEL) == "trainer"


def replicated_jobs(
    jobs: Any, base: str, problems: Problems, node_count: int | None = None
) -> list[PodTemplate]:
    """JobSet-style replicatedJobs, one template each: replicas x Job parallelism pods. In a training
    runtime the trainer's job (``is_trainer_job``) runs the runtime's numNodes pods."""
    out: list[PodTemplate] = []
    for i, rj in enumerate(as_list(jobs)):
        rj = as_dict(rj)
        path = f"{base}[{i}]"
        job = as_dict(as_dict(rj.get("template")).get("spec"))
        replicas = count(rj.get("replicas"), f"{path}.replicas", 1, problems)
        parallelism = _job_pods(job, f"{path}.template.spec", problems)
        name = text(rj.get("name", i))
        n = node_count if node_count is not None and is_trainer_job(rj) else replicas * parallelism
        pod = as_dict(job.get("template")).get("spec")
        out.append(_template(name, pod, f"{path}.template.spec.template.spec", n))
    return out


def _jobset(obj: Mapping[str, Any], problems: Problems) -> list[PodTemplate]:
    return replicated_jobs(as_dict(obj.get("spec")).get("replicatedJobs"), "spec.replicatedJobs", problems)


def _pod_template(obj: Mapping[str, Any], problems: Problems) -> list[PodTemplate]:
    """A core PodTemplate: one pod's template at ``template.spec``, run by whatever names it."""
    return [_template("template", as_dict(obj.get("template")).get("spec"), "template.spec", 1)]


def _training_runtime(obj: Mapping[str, Any], problems: Problems) -> list[PodTemplate]:
    spec = as_dict(obj.get("spec"))
    nodes = count(as_dict(spec.get("mlPolicy")).get("numNodes"), "spec.mlPolicy.numNodes", 1, problems)
    jobs = as_dict(as_dict(spec.get("template")).get("spec")).get("replicatedJobs")
    return replicated_jobs(jobs, "spec.template.spec.replicatedJobs", problems, node_count=nodes)


def _trainjob(obj: Mapping[str, Any], problems: Problems) -> list[PodTemplate]:
    """The trainer's pods come from the referenced runtime; the TrainJob carries their container settings
    (`spec.trainer`) and placement patches (`runtimePatches`, or `podSpecOverrides` in older versions)."""
    spec = as_dict(obj.get("spec"))
    trainer = as_dict(spec.get("trainer"))
    nodes = count(trainer.get("numNodes"), "spec.trainer.numNodes", 1, problems)
    container = {k: trainer[k] for k in ("image", "command", "args", "env") if k in trainer}
    if "resourcesPerNode" in trainer:
        container["resources"] = trainer["resourcesPerNode"]
    sites = (ContainerSite(container, "spec.trainer", resources_path="spec.trainer.resourcesPerNode"),)
    placement = trainjob_placement(spec, "node")
    return [PodTemplate("node", "spec.trainer", {}, nodes, sites, extra_placement=placement)]


def trainjob_placement(spec: Mapping[str, Any], job_name: str) -> tuple[tuple[str, Mapping[str, Any]], ...]:
    """(path, pod spec) of a TrainJob's patches aimed at one of its runtime's replicated jobs: the pod of
    that job in each ``runtimePatches`` entry, and each ``podSpecOverrides`` entry naming it."""
    placement: list[tuple[str, Mapping[str, Any]]] = []
    for i, patch in enumerate(as_list(spec.get("runtimePatches"))):
        base = f"spec.runtimePatches[{i}].trainingRuntimeSpec.template.spec.replicatedJobs"
        rt = as_dict(as_dict(patch).get("trainingRuntimeSpec"))
        jobs = as_dict(as_dict(rt.get("template")).get("spec")).get("replicatedJobs")
        for j, rj in enumerate(as_list(jobs)):
            if as_dict(rj).get("name") == job_name:
                job = as_dict(as_dict(rj).get("template")).get("spec")
                pod = as_dict(as_dict(as_dict(job).get("template")).get("spec"))
                placement.append((f"{base}[{j}].template.spec.template.spec", pod))
    for i, override in enumerate(as_list(spec.get("podSpecOverrides"))):
        targets = [as_dict(t).get("name") for t in as_list(as_dict(override).get("targetJobs"))]
        if job_name in targets:
            placement.append((f"spec.podSpecOverrides[{i}]", as_dict(override)))
    return tuple(placement)


def _ray(obj: Mapping[str, Any], problems: Problems) -> list[PodTemplate]:
    spec = as_dict(obj.get("spec"))
    # A RayJob may run on an existing cluster (clusterSelector): then it brings no cluster pods.
    key = {"RayJob": "rayClusterSpec", "RayService": "rayClusterConfig"}.get(text(obj.get("kind")))
    base = f"spec.{key}" if key else "spec"
    cluster = as_dict(spec.get(key)) if key else spec
    out: list[PodTemplate] = []
    if isinstance(cluster.get("headGroupSpec"), Mapping):
        head = as_dict(cluster["headGroupSpec"].get("template")).get("spec")
        out.append(_template("head", head, f"{base}.headGroupSpec.template.spec", 1))
    for i, group in enumerate(as_list(cluster.get("workerGroupSpecs"))):
        group = as_dict(group)
        path = f"{base}.workerGroupSpecs[{i}]"
        keys = ("replicas", "minReplicas", "maxReplicas")
        sizes = [opt_count(group.get(k), f"{path}.{k}", problems) for k in keys]
        known = [s for s in sizes if s is not None]
        replicas = max(known) if known else 1
        hosts = count(group.get("numOfHosts"), f"{path}.numOfHosts", 1, problems)
        pod = as_dict(group.get("template")).get("spec")
        name = text(group.get("groupName", f"worker-{i}"))
        out.append(_template(name, pod, f"{path}.template.spec", replicas * hosts))
    submitter = as_dict(spec.get("submitterPodTemplate"))
    if isinstance(submitter.get("spec"), Mapping):
        out.append(_template("submitter", submitter["spec"], "spec.submitterPodTemplate.spec", 1))
    return out


def _lws(obj: Mapping[str, Any], problems: Problems) -> list[PodTemplate]:
    spec = as_dict(obj.get("spec"))
    lwt = as_dict(spec.get("leaderWorkerTemplate"))
    groups = count(spec.get("replicas"), "spec.replicas", 1, problems)
    size = max(count(lwt.get("size"), "spec.leaderWorkerTemplate.size", 1, problems), 1)
    base = "spec.leaderWorkerTemplate"
    worker = as_dict(lwt.get("workerTemplate")).get("spec")
    leader = lwt.get("leaderTemplate")
    if not isinstance(leader, Mapping):
        # Without a leader template the leader is made from the worker template too.
        return [_template("worker", worker, f"{base}.workerTemplate.spec", groups * size)]
    return [
        _template("leader", leader.get("spec"), f"{base}.leaderTemplate.spec", groups),
        _template("worker", worker, f"{base}.workerTemplate.spec", groups * (size - 1)),
    ]


def _kserve(obj: Mapping[str, Any], problems: Problems) -> list[PodTemplate]:
    """Each component is an inlined pod spec plus an optional framework container; a scale-to-zero
    component (minReplicas 0, no maxReplicas) still runs one pod when it serves, so it counts one."""
    spec = as_dict(obj.get("spec"))
    out: list[PodTemplate] = []
    for comp in ("predictor", "transformer", "explainer"):
        if not isinstance(spec.get(comp), Mapping):
            continue
        c, path = spec[comp], f"spec.{comp}"
        most = opt_count(c.get("maxReplicas"), f"{path}.maxReplicas", problems)
        least = opt_count(c.get("minReplicas"), f"{path}.minReplicas", problems)
        replicas = most if most else max(least or 0, 1)
        sites = list(pod_spec_containers(c, path))
        for fw in _KSERVE_FRAMEWORKS:
            if isinstance(c.get(fw), Mapping):
                sites.append(ContainerSite(c[fw], f"{path}.{fw}"))
        out.append(PodTemplate(comp, path, c, replicas, tuple(sites)))
        worker = c.get("workerSpec")
        if isinstance(worker, Mapping):
            pp_path = f"{path}.workerSpec.pipelineParallelSize"
            pp = opt_count(worker.get("pipelineParallelSize"), pp_path, problems)
            per_replica = pp - 1 if pp and pp >= 2 else 1
            out.append(_template(f"{comp}-worker", worker, f"{path}.workerSpec", replicas * per_replica))
    return out


def _llm_group(spec: Mapping[str, Any], base: str, problems: Problems) -> list[PodTemplate]:
    """An LLMInferenceService (or its prefill part): `template` runs once per replica; with `worker` each
    replica is a multi-node group whose size is data/dataLocal (data parallel) or the pipeline size."""
    replicas = count(spec.get("replicas"), f"{base}.replicas", 1, problems)
    par = as_dict(spec.get("parallelism"))
    ppath = f"{base}.parallelism"
    data = opt_count(par.get("data"), f"{ppath}.data", problems)
    local = opt_count(par.get("dataLocal"), f"{ppath}.dataLocal", problems)
    pipeline = opt_count(par.get("pipeline"), f"{ppath}.pipeline", problems)
    size = data // local if data and local else (pipeline or 1)
    out: list[PodTemplate] = []
    prefix = "" if base == "spec" else "prefill-"
    if isinstance(spec.get("template"), Mapping):
        out.append(_template(f"{prefix}main", spec["template"], f"{base}.template", replicas))
    if isinstance(spec.get("worker"), Mapping):
        workers = replicas * max(size - 1, 1)
        out.append(_template(f"{prefix}worker", spec["worker"], f"{base}.worker", workers))
    return out


def _llmisvc(obj: Mapping[str, Any], problems: Problems) -> list[PodTemplate]:
    spec = as_dict(obj.get("spec"))
    out = _llm_group(spec, "spec", problems)
    if isinstance(spec.get("prefill"), Mapping):
        out += _llm_group(spec["prefill"], "spec.prefill", problems)
    return out


def _volcano(obj: Mapping[str, Any], problems: Problems) -> list[PodTemplate]:
    out: list[PodTemplate] = []
    for i, task in enumerate(as_list(as_dict(obj.get("spec")).get("tasks"))):
        task = as_dict(task)
        n = count(task.get("replicas"), f"spec.tasks[{i}].replicas", 1, problems)
        pod = as_dict(task.get("template")).get("spec")
        out.append(_template(text(task.get("name", i)), pod, f"spec.tasks[{i}].template.spec", n))
    return out


Finder = Callable[[Mapping[str, Any], Problems], list[PodTemplate]]

_BY_GROUP_KIND: dict[tuple[str, str], Finder] = {
    ("", "PodTemplate"): _pod_template,
    ("batch.volcano.sh", "Job"): _volcano,
    ("jobset.x-k8s.io", "JobSet"): _jobset,
    ("leaderworkerset.x-k8s.io", "LeaderWorkerSet"): _lws,
}
_BY_KIND: dict[str, Finder] = {
    **{k: _kubeflow for k in ("PyTorchJob", "TFJob", "PaddleJob", "XGBoostJob", "JAXJob", "MPIJob")},
    "TrainJob": _trainjob,
    "TrainingRuntime": _training_runtime,
    "ClusterTrainingRuntime": _training_runtime,
    **{k: _ray for k in ("RayCluster", "RayJob", "RayService")},
    "JobSet": _jobset,
    "LeaderWorkerSet": _lws,
    "InferenceService": _kserve,
    "LLMInferenceService": _llmisvc,
}


def find_templates(obj: Mapping[str, Any], problems: Problems) -> list[PodTemplate]:
    """The pod templates of any object; kinds this module does not know use `spec.template.spec`."""
    kind = text(obj.get("kind", ""))
    api_version = obj.get("apiVersion")
    group = api_version.rpartition("/")[0] if isinstance(api_version, str) else ""
    finder = _BY_GROUP_KIND.get((group, kind)) or _BY_KIND.get(kind) or _standard
    if not isinstance(obj.get("spec", {}), Mapping):
        problem(problems, "spec", "spec is not an object")
        return []
    return finder(obj, problems)
