"""The pods a TrainJob runs: those of the Kubeflow Trainer runtime it names, with its own overrides.

A TrainJob's ``spec.runtimeRef`` names a ClusterTrainingRuntime (the default kind) or a TrainingRuntime of
the TrainJob's namespace; the runtime is looked up among the objects the caller knows (``ClaimObjects``:
the checked manifests, ``--inventory`` or the cluster). Its template is a JobSet whose replicated jobs
(dataset and model initializers, the trainer's ``node`` job, an MPI launcher...) each run ``replicas x
parallelism`` pods; the TrainJob then sets the trainer job's pod count (``trainer.numNodes``, else the
runtime's ``mlPolicy.numNodes``), the trainer container's image, command, args, env and resources
(``resourcesPerNode``), the initializers' storage URIs, and placement patches (``runtimePatches``,
``podSpecOverrides``) on the jobs they name. So GPUs, images, models, data and residency are read from
every pod the TrainJob will run; values from the runtime carry its kind and name in their field paths,
``ClusterTrainingRuntime[torch-distributed].spec.template.spec.replicatedJobs[0]...``.

A runtime that cannot be found (or a reference to a kind Trainer does not run) is a ``problems`` entry at
``spec.runtimeRef``: its pods cannot be counted, which the counts-readable rule denies, never a silent 0.
At most ``MAX_RUNTIME_JOBS`` replicated jobs of a runtime are read (more is a problem too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol

from policyengine.workloads.kinds import (
    ContainerSite,
    PodTemplate,
    is_trainer_job,
    replicated_jobs,
    trainjob_placement,
)
from policyengine.workloads.models import INITIALIZER_ENV, MODEL_INITIALIZER
from policyengine.workloads.values import Problems, as_dict, as_list, count, problem, text

TRAINER_GROUPS = ("trainer.kubeflow.org", "kubeflow.org")  # kubeflow.org: Trainer v2's first group
RUNTIME = "TrainingRuntime"
CLUSTER_RUNTIME = "ClusterTrainingRuntime"
DATASET_INITIALIZER = "dataset-initializer"
# Runtimes held in one index (a cluster has tens), and replicated jobs read per runtime (Trainer's runtimes
# have up to four): past these a runtime is not found, or the rest of its jobs is a problem.
MAX_RUNTIMES = 10_000
MAX_RUNTIME_JOBS = 64
MAX_NAME = 253
_TRAINER_FIELDS = ("image", "command", "args", "env")


class Runtimes(Protocol):
    """Where runtimes are looked up by (kind, namespace, name); namespace "" for a ClusterTrainingRuntime."""

    def runtime(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None: ...


def is_runtime_object(obj: Any) -> bool:
    """A TrainingRuntime or ClusterTrainingRuntime of Kubeflow Trainer (any version)."""
    if not isinstance(obj, Mapping) or obj.get("kind") not in (RUNTIME, CLUSTER_RUNTIME):
        return False
    api_version = obj.get("apiVersion")
    return isinstance(api_version, str) and api_version.partition("/")[0] in TRAINER_GROUPS


def runtime_key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    """(kind, namespace, name) of a runtime: a cluster-scoped one has namespace ""."""
    meta = as_dict(obj.get("metadata"))
    kind = text(obj.get("kind"))
    namespace = "" if kind == CLUSTER_RUNTIME else text(meta.get("namespace") or "default")
    return kind, namespace, text(meta.get("name"))


def trainjob_templates(
    obj: Mapping[str, Any], runtimes: Runtimes, namespace: str, problems: Problems
) -> list[PodTemplate] | None:
    """The pod templates of a TrainJob that names a runtime, resolved (see the module docstring); None
    for any other object, and for a TrainJob whose runtime is not found (a problem: then only the
    TrainJob's own trainer is counted, as ``kinds`` reads it)."""
    if obj.get("kind") != "TrainJob" or not is_trainer_object(obj):
        return None
    spec = as_dict(obj.get("spec"))
    ref = spec.get("runtimeRef")
    if not isinstance(ref, Mapping):
        return None
    kind, group, name = text(ref.get("kind") or CLUSTER_RUNTIME), ref.get("apiGroup"), _shown(ref.get("name"))
    if kind not in (RUNTIME, CLUSTER_RUNTIME) or (group not in (None, "") and group not in TRAINER_GROUPS):
        message = (
            f"runtimeRef names {_shown(group)} {_shown(kind)} {name}, which is not a Kubeflow Trainer runtime"
        )
        problem(problems, "spec.runtimeRef", f"{message}: the pods it gives this TrainJob cannot be counted")
        return None
    if not isinstance(ref.get("name"), str) or not ref["name"]:
        problem(
            problems,
            "spec.runtimeRef.name",
            f"runtimeRef names no {kind}: the pods it would give this TrainJob cannot be counted",
        )
        return None
    scope = namespace if kind == RUNTIME else ""
    runtime = runtimes.runtime(kind, scope, text(ref.get("name")))
    label = f"{kind}[{scope}/{name}]" if scope else f"{kind}[{name}]"
    if runtime is None:
        where = f" in namespace {scope}" if scope else ""
        problem(
            problems,
            "spec.runtimeRef",
            f"{kind} {name}{where} not found among the checked manifests or the inventory: the pods it gives"
            " this TrainJob cannot be counted",
        )
        return None
    return _resolved(spec, runtime, label, problems)


def is_trainer_object(obj: Mapping[str, Any]) -> bool:
    api_version = obj.get("apiVersion")
    return isinstance(api_version, str) and api_version.partition("/")[0] in TRAINER_GROUPS


def _shown(value: Any) -> str:
    s = text(value)
    return s if len(s) <= MAX_NAME else f"{s[:MAX_NAME]}… ({len(s)} characters)"


def _resolved(
    spec: Mapping[str, Any], runtime: Mapping[str, Any], label: str, problems: Problems
) -> list[PodTemplate]:
    rspec = as_dict(runtime.get("spec"))
    trainer = as_dict(spec.get("trainer"))
    if trainer.get("numNodes") is not None:
        nodes = count(trainer["numNodes"], "spec.trainer.numNodes", 1, problems)
    else:
        nodes = count(
            as_dict(rspec.get("mlPolicy")).get("numNodes"), f"{label}.spec.mlPolicy.numNodes", 1, problems
        )
    base = f"{label}.spec.template.spec.replicatedJobs"
    jobs = as_list(as_dict(as_dict(rspec.get("template")).get("spec")).get("replicatedJobs"))
    if len(jobs) > MAX_RUNTIME_JOBS:
        problem(
            problems,
            base,
            f"{len(jobs)} replicated jobs, more than {MAX_RUNTIME_JOBS} are read; the pods of the rest are"
            " not counted",
        )
        jobs = jobs[:MAX_RUNTIME_JOBS]
    templates = replicated_jobs(jobs, base, problems, node_count=nodes)
    out: list[PodTemplate] = []
    trainer_found = False
    for rj, t in zip(jobs, templates, strict=True):
        t = replace(t, extra_placement=trainjob_placement(spec, t.name))
        if not trainer_found and is_trainer_job(as_dict(rj)):
            trainer_found = True
            t = replace(t, containers=_trainer_sites(t.containers, trainer))
        out.append(replace(t, containers=_initializer_sites(t.containers, spec)))
    if not trainer_found and trainer:  # nothing of the runtime runs the trainer: count the TrainJob's own
        sites = _trainer_sites((), trainer)
        out.append(
            PodTemplate(
                "node", "spec.trainer", {}, nodes, sites, extra_placement=trainjob_placement(spec, "node")
            )
        )
    return out


def _trainer_sites(sites: tuple[ContainerSite, ...], trainer: Mapping[str, Any]) -> tuple[ContainerSite, ...]:
    """The trainer job's containers with the TrainJob's ``spec.trainer`` applied to the trainer container
    (named ``node``, else the first app container): what the TrainJob sets is read at ``spec.trainer``
    (one more site, resources at ``resourcesPerNode``) and no longer from the runtime's container."""
    own: dict[str, Any] = {k: trainer[k] for k in _TRAINER_FIELDS if k in trainer}
    if "resourcesPerNode" in trainer:
        own["resources"] = trainer["resourcesPerNode"]
    index = _trainer_index(sites)
    out = list(sites)
    if index is not None:
        runtime = dict(out[index].container)
        for key in ("image", "command", "args"):
            if key in own:
                runtime.pop(key, None)
        if "resources" in own:
            runtime.pop("resources", None)
        if "env" in own:
            runtime["env"] = _without_env(runtime.get("env"), _env_names(own["env"]))
        out[index] = replace(out[index], container=runtime)
    if own:
        site = ContainerSite(own, "spec.trainer", resources_path="spec.trainer.resourcesPerNode")
        out.insert(len(out) if index is None else index + 1, site)
    return tuple(out)


def _trainer_index(sites: tuple[ContainerSite, ...]) -> int | None:
    app = [i for i, s in enumerate(sites) if not s.init]
    named = [i for i in app if _name(sites[i].container) == "node"]
    first = named or app
    return first[0] if first else None


def _env_names(env: Any) -> set[str]:
    return {e["name"] for e in as_list(env) if isinstance(e, Mapping) and isinstance(e.get("name"), str)}


def _without_env(env: Any, names: set[str]) -> list[Any]:
    """The runtime's env with the entries the TrainJob replaces emptied (indices, so paths, kept)."""
    return [{} if isinstance(e, Mapping) and _name(e) in names else e for e in as_list(env)]


def _name(container: Mapping[str, Any]) -> str:
    name = container.get("name")
    return name if isinstance(name, str) else ""


def _initializer_sites(
    sites: tuple[ContainerSite, ...], spec: Mapping[str, Any]
) -> tuple[ContainerSite, ...]:
    """An initializer whose storage URI the TrainJob sets (``spec.initializer.<model|dataset>.storageUri``,
    read there by ``references``) downloads that one, not the runtime's ``STORAGE_URI``."""
    init = as_dict(spec.get("initializer"))
    replaced = {
        name
        for name, key in ((MODEL_INITIALIZER, "model"), (DATASET_INITIALIZER, "dataset"))
        if isinstance(as_dict(init.get(key)).get("storageUri"), str)
    }
    if not replaced:
        return sites
    return tuple(
        replace(s, container={**s.container, "env": _without_env(s.container.get("env"), {INITIALIZER_ENV})})
        if _name(s.container) in replaced
        else s
        for s in sites
    )
