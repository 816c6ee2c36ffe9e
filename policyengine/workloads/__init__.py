"""The workload model: where pods, containers, GPUs, regions, data and models live in each workload kind.

``describe(obj, config)`` turns any Kubernetes object into the JSON view that CEL sees as ``workload``.
It never raises on odd input: what cannot be read is listed under ``problems`` with its field path. Its
size is a constant factor of the object's: numbers are read within Kubernetes' ranges (counts int32,
GPU quantities int64, totals saturating there), and map keys are cut in field paths (``path_key``).

Shape (every key is always present; lists keep manifest order)::

    {
      "kind": "PyTorchJob", "apiVersion": "kubeflow.org/v1", "name": "...", "namespace": "...",
      "isTemplate": false,         # only describes pods another object runs (Trainer runtimes, core
                                   # PodTemplate): checked, but its charges are 0 (workloads.charge)
      "isAiWorkload": true,        # an AI kind (Kubeflow, TrainJob, Ray, KServe), or accelerators (any
                                   # well-known name, counted or not), or a model
      "perNode": false,            # DaemonSet: pods are per node, counted as 1
      "pods": 3,                   # sum of podTemplates[].replicas
      "podTemplates": [{
        "name": "Worker",          # role / group / component name
        "path": "spec.pytorchReplicaSpecs.Worker.template.spec",
        "replicas": 2,             # pods this template produces (the maximum of any range)
        "perNode": false,
        "containers": ["spec.pytorchReplicaSpecs.Worker.template.spec.containers[0]"],
        "gpus": {"perPod": 1, "byResource": {"nvidia.com/gpu": 1}},   # containers' and claims' GPUs
        "regions": {"pinned": true, "allowed": ["eu-west-1"], "excluded": [], "path": "..."},
        "gpuProducts": {"pinned": false, "allowed": [], "excluded": [], "path": "...",
                        "byLabel": {},   # each pinned product label (nvidia.com/gpu.product, GKE TPU,
                                         # instance type) and its own constraint
                        # the first DRA GPU request nothing pins, why, and the selector not read ("" if none)
                        "request": "ResourceClaimTemplate t request gpu (spec.spec.devices.requests[0].exactly)",
                        "reason": "no term compares the product attribute with == or in",
                        "unread": "device.attributes['gpu.nvidia.com'].productName.matches('H100')"},
        "resourceClaims": [{                                 # spec.resourceClaims (DRA), resolved
          "name": "gpu", "path": "...resourceClaims[0]",
          "resourceClaimTemplateName": "t",                  # or "resourceClaimName": "shared-claim"
          "source": "ResourceClaimTemplate t",               # "" when neither name is set
          "shared": false,                                   # a ResourceClaim: one set for all pods
          "group": "",                                       # "PodGroup <n>"/"spec.scheduling": charged there
          "gpus": 8,                                         # GPU devices of the claim (per pod if a template)
          "devices": [{"request": "gpus", "path": "spec.spec.devices.requests[0].exactly",
                       "deviceClass": "gpu.nvidia.com", "resource": "nvidia.com/gpu", "gpu": true,
                       "allocationMode": "ExactCount", "count": 8,
                       "selectors": ["device.attributes['gpu.nvidia.com'].productName == '...'"],
                       "firstAvailable": 0}]             # alternatives; request is "<req>/<alternative>"
        }]
      }],
      "containers": [{
        "name": "pytorch", "path": "...containers[0]", "template": "<podTemplates[].path>",
        "init": false, "sidecar": false,
        "image": "repo/img@sha256:..." or "", "resourcesPath": "...containers[0].resources",
        "gpus": {"requests": {"nvidia.com/gpu": 1}, "limits": {"nvidia.com/gpu": 1},
                 "byResource": {"nvidia.com/gpu": 1}, "count": 1},
        "claims": ["gpu"]          # resources.claims names (DRA)
      }],
      "gpus": {"total": 2, "maxPerPod": 1, "byResource": {"nvidia.com/gpu": 2},
               "claims": [{"template": "<podTemplates[].path>", "claim": "gpu",   # or a group's: "spec"
                           "source": "ResourceClaimTemplate t", "deviceClasses": ["gpu.nvidia.com"],
                           "count": 8, "pods": 16, "total": 128, "shared": false}],
               # what this request adds to the team's usage: all of it here; on UPDATE (the engine's
               # view, with oldObject) total = max(0, new total - old total) and each resource
               # max(0, new - old) of it (keys: those of byResource), policyengine/workloads/charge.py
               "byProduct": {"NVIDIA-H100-80GB-HBM3": 2}, "unpinned": [{"template", "gpus", "excluded"}], # byproduct.py
               "charge": {"total": 2, "byResource": {"nvidia.com/gpu": 2}, "byProduct": {...}}},
      "gpuMemory": {"total": 85899345920, ...},  # GPU memory (bytes), per template too: workloads.memory
      "usesDra": false,
      "draAdminAccess": [{"request": "mon", "path": "...exactly.adminAccess"}],  # engine view: adminaccess.py
      "regions": {"allPinned": true, "allowed": ["eu-west-1"]},   # union over templates
      "dataLocations": [{"uri": "s3://b/x", "path": "...env[0].value", "source": "env",
                         "kind": "data"}],                   # kind: data | model; csiVolume
                                                             # entries add driver (and unknown)
      "models": [{"uri": "hf://org/m", "path": "spec.predictor.model.storageUri",
                  "source": "storageUri", "sha256": ""}],     # sha256: hex of a trailing @sha256:
                  # source: storageUri | storage | annotation | imageVolume | command | args | env
                  #         | serveConfigV2; uri "" for a model named without a URI (KServe storage)
      "images": [{"image": "...", "path": "...containers[0].image", "sha256": ""}],
      "problems": [{"path": "...", "message": "..."}],     # GPU quantities and pod counts not read
      "modelProblems": [{"path": "...", "message": "..."}],  # model references not read (serve config,
                                                             # over-long shell line, too many references)
      "dataProblems": [{"path": "...volumes[0]", "message": "..."}]  # claim volumes not located
                                                             # (workloads.persistent)
    }

Sources of data locations: the ``policyengine.io/datasets`` annotation (source ``annotation``), KServe
``storageUri`` and LLMInferenceService ``spec.model.uri``, TrainJob initializer ``storageUri``
(``storageUri``), and storage URIs inside container ``env[].value``, ``args`` and ``command``
(``env``/``args``/``command``), inline CSI volumes of the bucket drivers of
``workloads.volumes.BUCKET_DRIVERS`` (``csiVolume``: ``s3://bucket/prefix/``, ``gs://bucket/dir/``,
``az://account/container/``, with ``driver``; a bucket the manifest does not name is ``<scheme>://?``
with ``unknown`` saying why, and its region is always unknown), and ``persistentVolumeClaim`` volumes: the
bucket of the PersistentVolume the claim is bound to (``claim``) and the mounts of the Fluid Dataset of
the same name (``dataset``); a claim or volume not found is a ``dataProblems`` entry, a claim provisioned
from a StorageClass a new disk (see ``workloads.persistent``). Model references come from KServe framework ``storageUri``,
``storageUris[].uri`` and ``storage`` (no URI: reported with uri ""), LLMInferenceService
``spec.model.uri``, TrainJob model initializer ``storageUri``, the ``policyengine.io/models``
annotation, image volumes (``oci://<reference>``), server flags in command and args, also inside shell
lines (``vllm serve <model>``, ``--model``, ``--model-id``, ``--model-path``, with ``--revision``), the
servers' environment variables and RayService ``spec.serveConfigV2`` (see ``workloads.models``); a bare
``org/name`` is ``hf://org/name``, at a revision ``hf://org/name:<revision>``. At most ``MAX_MODELS``
references are read from containers, volumes and serve configs; more, an over-long shell line or an
unreadable serve config is a ``modelProblems`` entry (denied by model-references-readable). Model references are also data locations (kind ``model``) when
they are storage URIs, since the weights are data that lives somewhere. GPUs ("accelerators": whatever their kind) count the
config's ``spec.gpu.resources`` when it gives one, else the default list of ``workloads.accelerators``
(NVIDIA, AMD, TPU, Neuron, Gaudi, Intel device-plugin names), and every ``nvidia.com/mig-*``, plus the
devices that the pods' DRA claims
ask for in a GPU device class of ``spec.gpu.deviceClasses``, under the resource name that maps the class
to (``gpu.nvidia.com`` counts as ``nvidia.com/gpu``; ``mig.nvidia.com`` MIG slices as
``mig.nvidia.com``, except that a request in a class mapped to ``mig.nvidia.com`` whose CEL selectors pin
exactly one profile, ``device.attributes['gpu.nvidia.com'].profile == '1g.5gb'``, counts as the device
plugin's ``nvidia.com/mig-1g.5gb``; several or no profiles stay ``mig.nvidia.com``). A claim template's devices count per pod; a shared ResourceClaim's count in
``perPod`` of each template naming it but once in the workload's ``total``; ``firstAvailable`` at its
largest GPU alternative. ``allocationMode: All`` on a GPU class, a claim or template not among
``claims`` in the namespace, and an old ``v1alpha2`` claim are problems.
DRA extended resources count under their class's GPU name, once (``workloads.extended``, listed in
``containers[].gpus.draExtendedResources``); claims and requests carry ``resourceQuotaCharge`` (``All``: 32).
A group's claims (PodGroup, Job ``spec.scheduling``) count once where made (``workloads.scheduling``).
``config`` may be the GovernanceConfig document or its spec.

``gpuProducts`` says which GPU products a template's GPUs may be (``workloads.products``): device-plugin
GPUs are pinned by the node label ``nvidia.com/gpu.product`` (nodeSelector, required node affinity); a DRA
GPU request by that label or by its own selectors, read from the CEL parse tree (``productName ==
'<name>'`` on either side, ``productName in [...]``, through ``&&``, ``||`` of such terms and several
selectors; names take the node-label form, "NVIDIA H100 80GB HBM3" is ``NVIDIA-H100-80GB-HBM3``). The
template is pinned when every GPU is; ``allowed`` is, per GPU, what both routes allow, unioned over its
GPUs; ``path`` is the node selector's when it pins, else the first claim's. At most
``selectors.MAX_PARSED`` characters of selectors are parsed per workload; selectors past it select nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policyengine.workloads.accelerators import asks_for_accelerator
from policyengine.workloads.byproduct import product_gpus
from policyengine.workloads.charge import is_template, no_charge, whole_charge
from policyengine.workloads.claims import NO_CLAIMS, ClaimObjects, DeviceClasses
from policyengine.workloads.deviceenv import device_problems
from policyengine.workloads.dra import PodClaims, Resolver, breakdown
from policyengine.workloads.extended import add_extended, container_extended, extended_resources
from policyengine.workloads.kinds import AI_KINDS, ContainerSite, PodTemplate, find_templates
from policyengine.workloads.located import Located
from policyengine.workloads.memory import workload_memory
from policyengine.workloads.persistent import claim_locations
from policyengine.workloads.pods import (
    REGION_LABEL,
    GpuRules,
    container_gpus,
    label_constraint,
    placement,
    pod_gpus,
    product_constraint,
)
from policyengine.workloads.products import gpu_products
from policyengine.workloads.references import DATASETS_ANNOTATION, MODELS_ANNOTATION, collect_references
from policyengine.workloads.runtimes import trainjob_templates
from policyengine.workloads.scheduling import add_group_claims, mark_group_claims
from policyengine.workloads.slices import NO_SLICES, DeviceMemory
from policyengine.workloads.values import (
    Problems,
    as_dict,
    as_list,
    clamp,
    text,
)
from policyengine.workloads.volumes import NO_STORAGE_CLASSES, StorageClasses

__all__ = [
    "DATASETS_ANNOTATION",
    "MODELS_ANNOTATION",
    "ClaimObjects",
    "DeviceMemory",
    "GpuRules",
    "describe",
    "describe_rules",
]


def describe(
    obj: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    claims: ClaimObjects = NO_CLAIMS,
    namespace: str = "",
    slices: DeviceMemory = NO_SLICES,
    storage_classes: StorageClasses = NO_STORAGE_CLASSES,
    *,
    config_rules: tuple[GpuRules, DeviceClasses] | None = None,
    located: Located | None = None,
) -> dict[str, Any]:
    """The ``workload`` view of one object (see the module docstring for its shape). ``claims``: the
    ResourceClaims and templates its pods may name, looked up in ``namespace`` (default: the object's);
    ``storage_classes``: the inventory's, for bucket drivers' generic ephemeral volumes; ``config_rules``:
    ``describe_rules(config)`` kept by the caller; ``located``: what locates (``workloads.located``)."""
    obj, problems = _object(obj)
    rules, classes = config_rules if config_rules is not None else describe_rules(config)
    metadata = as_dict(obj.get("metadata"))
    resolver = _resolver(metadata, classes, claims, namespace)
    templates = _templates(obj, claims, resolver.namespace, problems)

    containers: list[dict[str, Any]] = []
    views: list[dict[str, Any]] = []
    pod_claims: list[PodClaims] = []
    for t in templates:
        view, dra = _template_view(t, rules, problems, containers, resolver)
        views.append(view)
        pod_claims.append(mark_group_claims(obj, t.spec, t.path, claims, resolver.namespace, problems, dra))
    found = collect_references(obj, metadata, templates, storage_classes, located)
    device_problems(found.devices, containers, problems)  # devices its env gives: ``deviceenv``
    data, models = found.data, found.models
    data_problems: Problems = []
    claim_locations(templates, claims, resolver.namespace, data, data_problems)

    gpus = add_group_claims(_gpus_view(templates, views, pod_claims), obj, resolver, problems)
    allowed = sorted({r for v in views for r in v["regions"]["allowed"]})
    kind, template = text(obj.get("kind", "")), is_template(obj)
    memory = workload_memory(templates, views, claims, resolver.namespace, slices, resolver.budget)
    return {
        "kind": kind,
        "apiVersion": text(obj.get("apiVersion", "")),
        "name": text(metadata.get("name") or metadata.get("generateName") or ""),
        "namespace": text(metadata.get("namespace") or ""),
        "isTemplate": template,
        "isAiWorkload": _is_ai(kind, gpus["total"] or gpus["maxPerPod"], models, templates),
        "perNode": any(t.per_node for t in templates),
        "pods": clamp(sum(t.replicas for t in templates)),
        "podTemplates": views,
        "containers": containers,
        "gpus": {**gpus, "charge": no_charge(gpus) if template else whole_charge(gpus)},
        "gpuMemory": {**memory, "charge": 0} if template else memory,
        "usesDra": any(v["resourceClaims"] for v in views) or any(c["claims"] for c in containers),
        "regions": {"allPinned": all(v["regions"]["pinned"] for v in views), "allowed": allowed},
        "dataLocations": data,
        "models": models,
        "images": found.images,
        "problems": problems,
        "modelProblems": found.problems,  # model references not read: a provenance matter, not a count
        "dataProblems": data_problems,  # claim volumes whose data cannot be located: a residency matter
    }


def _templates(
    obj: Mapping[str, Any], claims: ClaimObjects, namespace: str, problems: Problems
) -> list[PodTemplate]:
    """A TrainJob runs the pods of the runtime it names, with its own overrides (``workloads.runtimes``)."""
    resolved = trainjob_templates(obj, claims, namespace, problems)
    return find_templates(obj, problems) if resolved is None else resolved


def _is_ai(kind: str, gpu_total: int, models: list[dict[str, str]], templates: list[PodTemplate]) -> bool:
    """An AI kind, accelerators counted, a model, or a container asking for a well-known accelerator
    even when the config's list does not count it."""
    if kind in AI_KINDS or gpu_total > 0 or models:
        return True
    return asks_for_accelerator(site.container for t in templates for site in t.containers)


def _object(obj: Any) -> tuple[Mapping[str, Any], Problems]:
    """The object to describe, and the problems list it starts with (a non-mapping is one)."""
    if isinstance(obj, Mapping):
        return obj, []
    return {}, [{"path": "", "message": "the object is not a mapping"}]


def describe_rules(config: Mapping[str, Any] | None) -> tuple[GpuRules, DeviceClasses]:
    """What ``describe`` reads from the config: which resources are GPUs and which device classes."""
    return GpuRules.from_config(config), DeviceClasses.from_config(config)


def _resolver(
    metadata: Mapping[str, Any], classes: DeviceClasses, claims: ClaimObjects, namespace: str
) -> Resolver:
    """Claims resolve in the request's namespace, else the object's own, else ``default``."""
    own = metadata.get("namespace")
    namespace = namespace or (own if isinstance(own, str) and own else "default")
    return Resolver(claims, classes, namespace)


def _gpus_view(
    templates: list[PodTemplate], views: list[dict[str, Any]], pod_claims: list[PodClaims]
) -> dict[str, Any]:
    total_by = {name: clamp(n) for name, n in _total_gpus(templates, views, pod_claims).items()}
    return {
        "total": clamp(sum(total_by.values())),
        "maxPerPod": max((v["gpus"]["perPod"] for v in views), default=0),
        "byResource": dict(sorted(total_by.items())),
        "claims": [
            c
            for t, v in zip(templates, views, strict=True)
            for c in breakdown(t.path, t.replicas, v["resourceClaims"])
        ],
        **product_gpus(templates, views, pod_claims),
    }


def _total_gpus(
    templates: list[PodTemplate], views: list[dict[str, Any]], pod_claims: list[PodClaims]
) -> dict[str, int]:
    """GPUs of the whole workload by resource: each template's per-pod GPUs times its pods, except that a
    shared ResourceClaim is one set of devices however many pods (and templates) name it."""
    total_by: dict[str, int] = {}
    shared: dict[str, dict[str, int]] = {}
    for t, v, dra in zip(templates, views, pod_claims, strict=True):
        own = dict(v["gpus"]["byResource"])
        for claim, by_resource in dra.shared.items():
            shared[claim] = by_resource
            for name, n in by_resource.items():
                own[name] = own.get(name, 0) - n
        for by_resource in dra.elsewhere.values():  # a group's claims: charged on the group
            for name, n in by_resource.items():
                own[name] = own.get(name, 0) - n
        for name, n in own.items():
            if n > 0:
                total_by[name] = total_by.get(name, 0) + n * t.replicas
    for by_resource in shared.values():
        for name, n in by_resource.items():
            total_by[name] = total_by.get(name, 0) + n
    return total_by


def _template_view(
    t: PodTemplate, rules: GpuRules, problems: Problems, containers: list[dict[str, Any]], resolver: Resolver
) -> tuple[dict[str, Any], PodClaims]:
    counted: list[tuple[ContainerSite, dict[str, int]]] = []
    extended = extended_resources(resolver.claims, resolver.classes)  # one look-up for every container
    for site in t.containers:
        resources_path = site.resources_path or f"{site.path}.resources"
        gpus = container_gpus(site.container, resources_path, rules, problems)
        gpus = add_extended(
            gpus, container_extended(site.container, resources_path, rules, extended, problems)
        )
        counted.append((site, gpus["byResource"]))
        image = site.container.get("image")
        claims = as_list(as_dict(site.container.get("resources")).get("claims"))
        containers.append(
            {
                "name": text(site.container.get("name", "")),
                "path": site.path,
                "template": t.path,
                "init": site.init,
                "sidecar": site.init and site.container.get("restartPolicy") == "Always",
                "image": image if isinstance(image, str) else "",
                "resourcesPath": resources_path,
                "gpus": gpus,
                "claims": [text(as_dict(c).get("name", "")) for c in claims] if claims else [],
            }
        )
    by_resource = pod_gpus(counted)
    device_plugin_gpus = bool(by_resource)
    dra = resolver.pod(t.spec, t.path, problems)
    for name, n in dra.per_pod.items():
        by_resource[name] = clamp(by_resource.get(name, 0) + n)
    by_resource = dict(sorted(by_resource.items()))
    placed = placement(t)
    view = {
        "name": t.name,
        "path": t.path,
        "replicas": t.replicas,
        "perNode": t.per_node,
        "containers": [s.path for s in t.containers],
        "gpus": {"perPod": clamp(sum(by_resource.values())), "byResource": by_resource},
        "regions": label_constraint(t, REGION_LABEL, placed),
        "gpuProducts": gpu_products(
            product_constraint(t, placed), device_plugin_gpus, dra.views, resolver.budget
        ),
        "resourceClaims": dra.views,
    }
    return view, dra
