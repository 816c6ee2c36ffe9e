"""Where a workload's data locations, images and model references are collected: containers (images, storage
URIs in env, command and args), bucket CSI volumes (``workloads.volumes``), the ``policyengine.io/datasets`` and ``policyengine.io/models`` annotations,
the storage URIs the serving and training CRDs declare outside any container, and the references
``workloads.models`` finds (bounded by ``MAX_MODELS``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policyengine.memo import MEMO_KEY, MEMO_SIZE, remembered
from policyengine.workloads.commandline import Ref
from policyengine.workloads.deviceenv import DEVICE_NAMES
from policyengine.workloads.kinds import ContainerSite, PodTemplate
from policyengine.workloads.located import Locate, Located
from policyengine.workloads.models import (
    INITIALIZER_ENV,
    MAX_MODELS,
    MODEL_INITIALIZER,
    SCANNED_ENV,
    EnvValues,
    container_refs,
    image_volume_refs,
    kserve_block_refs,
    ray_serve_refs,
)
from policyengine.workloads.values import (
    Problems,
    as_dict,
    as_list,
    is_storage_uri,
    path_key,
    sha256_of,
    split_csv,
    storage_uris_in,
)
from policyengine.workloads.volumes import NO_STORAGE_CLASSES, StorageClasses, csi_volume_refs

DATASETS_ANNOTATION = "policyengine.io/datasets"
_BY_NAME = SCANNED_ENV | DEVICE_NAMES  # the env names the walks record by name
MODELS_ANNOTATION = "policyengine.io/models"


@dataclass
class References:
    """What a workload names: data locations, model references, images, and the model references that
    could not be read (``modelProblems``)."""

    data: list[dict[str, str]] = field(default_factory=list)
    models: list[dict[str, str]] = field(default_factory=list)
    images: list[dict[str, str]] = field(default_factory=list)
    problems: Problems = field(default_factory=list)
    # Containers whose env sets a device variable (``deviceenv``): the site and each name's last entry.
    devices: list[tuple[ContainerSite, dict[str, int]]] = field(default_factory=list)


def collect_references(
    obj: Mapping[str, Any],
    metadata: Mapping[str, Any],
    templates: Sequence[PodTemplate],
    storage_classes: StorageClasses = NO_STORAGE_CLASSES,
    located: Located | None = None,
) -> References:
    """``located``: where the env walk puts its locations' located records (``workloads.located``)."""
    out = References()
    refs: list[Ref] = []
    found: dict[str, Templates] = {}  # the locations of each distinct env value (containers repeat their env)
    for t in templates:
        for site in t.containers:
            walked = scan_container(site, out.data, out.images, found, located, out.devices)
            refs.extend(container_refs(site.container, site.path, out.problems, walked))
        refs.extend(image_volume_refs(t.spec, t.path))
    csi_volume_refs(obj, templates, out.data, storage_classes)
    annotation_refs(metadata, out.data, out.models)
    storage_refs(obj, out.data, out.models)
    if obj.get("kind") == "RayService":
        refs.extend(ray_serve_refs(as_dict(obj.get("spec")), out.problems))
    add_refs(refs, out.data, out.models, out.problems)
    return out


def scan_container(
    site: ContainerSite,
    data: list[dict[str, str]],
    images: list[dict[str, str]],
    found: dict[str, Templates] | None = None,
    located: Located | None = None,
    devices: list[tuple[ContainerSite, dict[str, int]]] | None = None,
) -> EnvValues:
    """The container's image and the data locations of its env, command and args; returns its env
    values the model-reference scanner reads by name (``models.env_values`` for ``SCANNED_ENV``), read in
    the same walk, which appends to ``devices`` the entries of device variables it finds
    (``deviceenv``). ``found``
    remembers the locations of each env value scanned, for the other containers of the workload (one
    ``found`` serves the walks of one ``located``)."""
    found = {} if found is None else found
    c = site.container
    if isinstance(c.get("image"), str):
        images.append({"image": c["image"], "path": f"{site.path}.image", "sha256": digest_of(c["image"])})
    env_map: dict[str, str] = {}
    env_at: dict[str, int] = {}
    envs = c.get("env")
    if isinstance(envs, list) and envs:
        initializer = c.get("name") == MODEL_INITIALIZER
        named: dict[str, int] = {}
        if located is not None and located.pending is not None:  # its locations when first read
            _env_names(envs, env_map, env_at, named)
            located.pending.append((len(data), envs, initializer, site.path))
        else:
            hits = _env_walk(envs, initializer, env_map, env_at, named)
            _env_locations(envs, hits, site.path, data, found, located)
        if named and devices is not None:
            devices.append((site, named))
    for key in ("command", "args"):
        for i, arg in enumerate(as_list(c.get(key))):
            if isinstance(arg, str) and "://" in arg:
                path = f"{site.path}.{key}[{i}]"
                for uri in storage_uris_in(arg):
                    data.append({"uri": uri, "path": path, "source": key, "kind": "data"})
    return env_map, env_at


# Kept across requests (``policyengine.memo``, bounded there): the storage URIs of env values (reading a
# value for URIs costs ~20x a look-up) and the sha256 digests of image references (~15x).
_MEMO_SIZE, _MEMO_VALUE = MEMO_SIZE, MEMO_KEY
_URIS_OF: dict[str, tuple[str, ...]] = {}
_DIGESTS: dict[str, str] = {}


def _uris(value: str) -> tuple[str, ...]:
    return tuple(storage_uris_in(value))


def uris_of(value: str) -> tuple[str, ...]:
    """``storage_uris_in(value)``, remembered for a short value."""
    return remembered(_URIS_OF, value, _uris)


def digest_of(image: str) -> str:
    """``sha256_of(image)``, remembered for a short reference."""
    return remembered(_DIGESTS, image, sha256_of)


# The tail of an env value's path (``[i].value``) for the first entries of every env list, built once:
# formatting the index per entry of every container is a large share of a long env's walk.
_ENV_VALUE_TAILS = tuple(f"{i}].value" for i in range(1024))
_N_TAILS = len(_ENV_VALUE_TAILS)


def _env_walk(
    envs: list[Any],
    model_initializer: bool,
    env_map: dict[str, str],
    env_at: dict[str, int],
    devices: dict[str, int] | None = None,
) -> list[int]:
    """One walk of a container's env: the literal values the model scanner reads by name (``SCANNED_ENV``;
    the last entry wins) into ``env_map`` and ``env_at``, and into ``devices`` the last entry of each
    device variable (``deviceenv``), literal or not; returns the indexes of the entries whose value
    is a plain string holding ``://`` (the initializer's model reference aside: ``workloads.models``),
    whose data locations ``_env_locations`` writes, now or when first read. This loop runs once per env
    entry of every container, so each step is the cheapest form of itself (a type test before an ABC
    one, ``in`` before a method call)."""
    hits: list[int] = []
    scanned = _BY_NAME
    name: Any  # whatever the manifest holds
    for i, env in enumerate(envs):
        entry = env if type(env) is dict else as_dict(env)
        name, value = entry.get("name"), entry.get("value")
        if type(value) is str:
            if "://" in value and not (model_initializer and name == INITIALIZER_ENV):
                hits.append(i)
        elif not isinstance(value, str):
            if devices is not None and type(name) is str and name in DEVICE_NAMES:
                devices[name] = i  # a valueFrom: what it gives cannot be read here
            continue  # a str subclass is read by name below, never for locations
        # A plain str name is looked up directly; any other (a subclass, an unhashable value) is tested first.
        if name in scanned if type(name) is str else isinstance(name, str) and name in scanned:
            env_map[name] = value
            env_at[name] = i
            if devices is not None and name in DEVICE_NAMES:
                devices[name] = i
    return hits


def _env_names(
    envs: list[Any], env_map: dict[str, str], env_at: dict[str, int], devices: dict[str, int]
) -> None:
    """What ``_env_walk`` reads by name, and only that: the walk of an env whose locations are put off
    (most requests never read them, and this costs a fraction of the whole walk)."""
    scanned = _BY_NAME
    for i, env in enumerate(envs):
        entry = env if type(env) is dict else as_dict(env)
        name: Any = entry.get("name")
        if isinstance(name, str) and name in scanned:
            if name in DEVICE_NAMES:
                devices[name] = i
            value = entry.get("value")
            if isinstance(value, str):
                env_map[name] = value
                env_at[name] = i


def _env_locations(
    envs: list[Any],
    hits: list[int],
    container_path: str,
    data: list[dict[str, str]],
    found: dict[str, Templates],
    located: Located | None = None,
) -> None:
    """The data locations of the env entries ``hits`` (``_env_walk``) appended to ``data``, with
    ``located``, each location's located record too, as a run of them. A location is a copy of its
    value's template with the path set (a copy costs less than building the dict)."""
    at = f"{container_path}.env["
    append = data.append
    start = len(data)
    run: list[dict[str, Any]] = []
    tails = _ENV_VALUE_TAILS
    for i in hits:
        value = envs[i]["value"]  # a dict's plain str value: _env_walk read it so
        kept = found.get(value)
        if kept is None:
            kept = found[value] = _kept_templates(value, located)
        if kept:
            path = at + tails[i] if i < _N_TAILS else f"{at}{i}].value"  # shared by the value's URIs
            for template, located_template in kept:
                record = template.copy()
                record["path"] = path
                append(record)
                if located_template is not None:
                    record = located_template.copy()
                    record["path"] = path
                    run.append(record)
    if located is not None and run:
        located.runs.append((start, run))


def with_env_locations(data: list[dict[str, str]], located: Located) -> list[dict[str, str]]:
    """``data`` with the env locations the walks ``located.pending`` put off, each where an eager walk
    writes it (``collect_references``), located as they are found; the walks are done."""
    pending, located.pending = located.pending or [], None
    out: list[dict[str, str]] = []
    found: dict[str, Templates] = {}
    done = 0
    for at, envs, initializer, path in pending:
        out.extend(data[done:at])
        done = at
        _env_locations(envs, _env_walk(envs, initializer, {}, {}), path, out, found, located)
    out.extend(data[done:])
    return out


# The records of one env value's URIs, to copy with each path: the workload's location and, when the
# walk locates, the same with its region. A walk's ``found`` holds them per distinct value.
Templates = tuple[tuple[dict[str, str], dict[str, str] | None], ...]


# Templates kept across requests (``Located.templates``, bounded by ``policyengine.memo``): only for a
# value naming at most _KEPT_URIS URIs. A template is never in a view itself, only copied into one, so
# requests can share it.
_KEPT_URIS = 2


def _few(made: Templates) -> bool:
    return len(made) <= _KEPT_URIS


def _kept_templates(value: str, located: Located | None) -> Templates:
    """``_templates(value, ...)``, remembered by the rules that locate when the value is short."""
    if located is None:
        return _templates(value, None)
    locate = located.locate
    if located.templates is None:
        return _templates(value, locate)
    return remembered(located.templates, value, lambda v: _templates(v, locate), _few)


def _templates(value: str, locate: Locate | None) -> Templates:
    out = []
    for uri in uris_of(value):
        template = {"uri": uri, "path": "", "source": "env", "kind": "data"}
        out.append((template, None if locate is None else {**template, "region": locate(uri)}))
    return tuple(out)


def _add_model(
    uri: str, path: str, source: str, data: list[dict[str, str]], models: list[dict[str, str]]
) -> None:
    models.append({"uri": uri, "path": path, "source": source, "sha256": sha256_of(uri)})
    if is_storage_uri(uri):
        data.append({"uri": uri, "path": path, "source": source, "kind": "model"})


def add_refs(
    refs: list[Ref], data: list[dict[str, str]], models: list[dict[str, str]], problems: Problems
) -> None:
    """Model references found in containers, volumes and serve configs, each (uri, path) once, at most
    MAX_MODELS in all: past that the view would grow with the manifest, so the rest is a problem."""
    seen = {(m["uri"], m["path"]) for m in models}
    for uri, path, source in refs:
        if (uri, path) in seen:
            continue
        if len(models) >= MAX_MODELS:
            problems.append(
                {"path": path, "message": f"more than {MAX_MODELS} model references; the rest are not read"}
            )
            return
        seen.add((uri, path))
        _add_model(uri, path, source, data, models)


def annotation_refs(
    metadata: Mapping[str, Any], data: list[dict[str, str]], models: list[dict[str, str]]
) -> None:
    annotations = as_dict(metadata.get("annotations"))
    path = f"metadata.annotations[{DATASETS_ANNOTATION}]"
    for uri in split_csv(annotations.get(DATASETS_ANNOTATION)):
        data.append({"uri": uri, "path": path, "source": "annotation", "kind": "data"})
    path = f"metadata.annotations[{MODELS_ANNOTATION}]"
    for uri in split_csv(annotations.get(MODELS_ANNOTATION)):
        _add_model(uri, path, "annotation", data, models)


def storage_refs(obj: Mapping[str, Any], data: list[dict[str, str]], models: list[dict[str, str]]) -> None:
    """Storage URIs that the serving and training CRDs declare outside any container."""
    kind = obj.get("kind")
    spec = as_dict(obj.get("spec"))
    if kind == "InferenceService":
        for comp in ("predictor", "transformer", "explainer"):
            for fw, block in as_dict(spec.get(comp)).items():
                uri = as_dict(block).get("storageUri")
                if isinstance(uri, str) and uri:
                    _add_model(uri, f"spec.{comp}.{path_key(fw)}.storageUri", "storageUri", data, models)
                for ref in kserve_block_refs(as_dict(block), f"spec.{comp}.{path_key(fw)}"):
                    _add_model(*ref, data, models)
    elif kind == "LLMInferenceService":
        uri = as_dict(spec.get("model")).get("uri")
        if isinstance(uri, str) and uri:
            _add_model(uri, "spec.model.uri", "storageUri", data, models)
    elif kind == "TrainJob":
        init = as_dict(spec.get("initializer"))
        # v1alpha1 before the initializer block used datasetConfig / modelConfig.input.
        datasets = [
            ("spec.initializer.dataset.storageUri", as_dict(init.get("dataset")).get("storageUri")),
            ("spec.datasetConfig.storageUri", as_dict(spec.get("datasetConfig")).get("storageUri")),
        ]
        for path, uri in datasets:
            if isinstance(uri, str) and uri:
                data.append({"uri": uri, "path": path, "source": "storageUri", "kind": "data"})
        model_input = as_dict(as_dict(spec.get("modelConfig")).get("input")).get("storageUri")
        for path, uri in (
            ("spec.initializer.model.storageUri", as_dict(init.get("model")).get("storageUri")),
            ("spec.modelConfig.input.storageUri", model_input),
        ):
            if isinstance(uri, str) and uri:
                _add_model(uri, path, "storageUri", data, models)
