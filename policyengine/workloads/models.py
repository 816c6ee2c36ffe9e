"""Model references named where serving and training stacks name them: server command lines
(``commandline``) and environment variables, KServe ``storageUris`` and ``storage``, image volumes and
Ray Serve configs.

Each reference comes with the field path it was read from. Everything read here is bounded: shell lines
as ``commandline`` says, a Ray serve config by the loader's bounded YAML reader, and a workload reports
at most ``MAX_MODELS`` references; a bound passed is a problem.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from policyengine.workloads.commandline import Ref, argv_refs, classify, with_revision
from policyengine.workloads.values import Problems, as_dict, as_list, path_key, problem, storage_uris_in
from policyengine.yamlnodes import Expansion, check_expansion
from policyengine.yamlreader import BoundedLoader

MAX_MODELS = 256  # references one workload reports; more is a problem, not a larger view
MAX_SERVE_CONFIG_CHARS = 1024 * 1024
MAX_SERVE_CONFIG_NODES = 100_000

# Environment variables the servers read the model from. MODEL_ID: TGI; HF_MODEL_ID: Hugging Face's
# SageMaker and inference containers; NIM_MODEL_NAME (NIM 1.x) and NIM_MODEL_PATH (NIM 2.x): NVIDIA NIM.
MODEL_ENV = frozenset({"MODEL_ID", "HF_MODEL_ID", "NIM_MODEL_NAME", "NIM_MODEL_PATH"})
# MODEL_NAME is often the name a model is served under: a reference only when it reads as one.
NAMED_ENV = frozenset({"MODEL_NAME"})
REVISION_ENV = ("REVISION", "HF_MODEL_REVISION")  # TGI; Hugging Face containers
# Kubeflow Trainer's initializers read what they download from STORAGE_URI: the model-initializer's is a
# model (hf://org/name, s3://...), the dataset-initializer's a data location (``references``).
INITIALIZER_ENV = "STORAGE_URI"
MODEL_INITIALIZER = "model-initializer"
# The env names whose values can be model references (their paths are written only for these).
_REFERENCE_ENV = MODEL_ENV | NAMED_ENV | {INITIALIZER_ENV}
_MODEL_NAMES = MODEL_ENV | NAMED_ENV  # the names _env_refs reads a model from
# Every env name ``container_refs`` reads by name: a scanner walking the env anyway keeps only these.
SCANNED_ENV = _REFERENCE_ENV | frozenset(REVISION_ENV)


# --- containers -------------------------------------------------------------------------------------


# A container's literal env values by name, and the index of the entry each comes from (the last one
# wins, as in Kubernetes); ``env_values`` reads it, or a scanner walking the env anyway fills it for the
# names of SCANNED_ENV (the only ones read from it).
EnvValues = tuple[dict[str, str], dict[str, int]]


def env_values(container: Mapping[str, Any]) -> EnvValues:
    env: dict[str, str] = {}
    env_at: dict[str, int] = {}  # the entry each name's value comes from (its path is written on use)
    for i, entry in enumerate(as_list(container.get("env"))):
        entry = entry if type(entry) is dict else as_dict(entry)
        name, value = entry.get("name"), entry.get("value")
        if isinstance(name, str) and isinstance(value, str):
            env[name] = value
            env_at[name] = i
    return env, env_at


class ContainerEnv(Mapping[str, str]):
    """A container's literal env values by name (``env_values``), read on first use: only a command-line
    token that is a whole variable reference (``commandline.resolve``) looks one up, so most containers, and their
    long env lists, are never read into a map for it."""

    __slots__ = ("_container", "_values")

    def __init__(self, container: Mapping[str, Any]) -> None:
        self._container = container
        self._values: dict[str, str] | None = None

    def _read(self) -> dict[str, str]:
        if self._values is None:
            self._values = env_values(self._container)[0]
        return self._values

    def __getitem__(self, name: str) -> str:
        return self._read()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())


def container_refs(
    container: Mapping[str, Any], path: str, problems: Problems, walked: EnvValues | None = None
) -> list[Ref]:
    """References in a container's env, command and args; ``walked``: its ``env_values`` when known (at
    least the names of SCANNED_ENV)."""
    env, env_at = walked if walked is not None else env_values(container)
    # Most containers name no model in their env: no paths to write.
    paths = (
        {name: f"{path}.env[{env_at[name]}].value" for name in _REFERENCE_ENV.intersection(env)}
        if env
        else {}
    )
    refs = _env_refs(env, paths)
    if container.get("name") == MODEL_INITIALIZER and INITIALIZER_ENV in env:
        uri = classify(env[INITIALIZER_ENV], bare_name=False)
        if uri is not None:
            refs.append((uri, paths[INITIALIZER_ENV], "env"))
    argv: list[tuple[str, str]] = []
    for key in ("command", "args"):
        for i, arg in enumerate(as_list(container.get(key))):
            if isinstance(arg, str):
                argv.append((arg, f"{path}.{key}[{i}]"))
    if argv:  # a variable a token names may be any env entry, not only those ``walked`` holds
        refs.extend(argv_refs(argv, env if walked is None else ContainerEnv(container), problems))
    return refs


def _env_refs(env: Mapping[str, str], paths: Mapping[str, str]) -> list[Ref]:
    refs: list[Ref] = []
    if _MODEL_NAMES.isdisjoint(env):  # the usual case, found in a few lookups instead of a walk
        return refs
    revision = next((env[n] for n in REVISION_ENV if n in env), "")
    for name, value in env.items():
        if name in MODEL_ENV:
            uri = classify(value, bare_name=True)
        elif name in NAMED_ENV:
            uri = classify(value, bare_name=False)
            uri = None if uri is not None and uri.startswith("$") else uri
        else:
            continue
        if uri is not None:
            refs.append((with_revision(uri, revision), paths[name], "env"))
    return refs


# --- KServe, volumes, Ray -------------------------------------------------------------------------


def kserve_block_refs(block: Mapping[str, Any], path: str) -> list[Ref]:
    """``storageUris[].uri`` and ``storage: {key, path}`` of a KServe predictor framework block. The
    storage spec names a model through a storage secret key, not a URI: it is reported with uri ""."""
    refs: list[Ref] = []
    for i, entry in enumerate(as_list(block.get("storageUris"))):
        uri = as_dict(entry).get("uri")
        if isinstance(uri, str) and uri:
            refs.append((uri, f"{path}.storageUris[{i}].uri", "storageUri"))
    if isinstance(block.get("storage"), Mapping):
        refs.append(("", f"{path}.storage", "storage"))
    return refs


def image_volume_refs(pod_spec: Mapping[str, Any], path: str) -> list[Ref]:
    """Image volumes (``volumes[].image.reference``), as KServe modelcars and ModelPack / KitOps
    artifacts use them: ``oci://<reference>``."""
    refs: list[Ref] = []
    for i, volume in enumerate(as_list(pod_spec.get("volumes"))):
        ref = as_dict(as_dict(volume).get("image")).get("reference")
        if isinstance(ref, str) and ref.strip():
            refs.append((f"oci://{ref.strip()}", f"{path}.volumes[{i}].image.reference", "imageVolume"))
    return refs


def ray_serve_refs(spec: Mapping[str, Any], problems: Problems) -> list[Ref]:
    """Models of a RayService ``spec.serveConfigV2`` (a YAML string): each LLM config's
    ``model_loading_config`` (``model_source``, or ``model_id`` as a Hugging Face id when no source is
    given) and every storage URI inside a ``runtime_env``."""
    text = spec.get("serveConfigV2")
    base = "spec.serveConfigV2"
    if not isinstance(text, str) or not text.strip():
        return []
    config = _read_serve_config(text, base, problems)
    refs: list[Ref] = []
    for node, where in _walk(config, base):
        loading = node.get("model_loading_config")
        if isinstance(loading, Mapping):
            refs.extend(_llm_config_refs(node, loading, f"{where}.model_loading_config"))
        runtime_env = node.get("runtime_env")
        if isinstance(runtime_env, Mapping | list):
            for value, vpath in _walk_strings(runtime_env, f"{where}.runtime_env"):
                refs.extend((uri, vpath, "serveConfigV2") for uri in storage_uris_in(value))
    return refs


def _read_serve_config(text: str, path: str, problems: Problems) -> Any:
    if len(text) > MAX_SERVE_CONFIG_CHARS:
        problem(problems, path, f"serve config of {len(text)} characters (at most {MAX_SERVE_CONFIG_CHARS})")
        return None
    try:
        loader = BoundedLoader(text, MAX_SERVE_CONFIG_NODES)
    except ValueError:
        problem(problems, path, "serve config is not text YAML can read")
        return None
    try:
        node = loader.get_node() if loader.check_node() else None  # the first document, as Ray reads it
        if node is None:
            return None
        bounded = check_expansion(path, node, Expansion())
        if bounded is not None:
            problem(problems, path, f"serve config cannot be read: {bounded.message}")
            return None
        return loader.construct_document(node)
    except (yaml.YAMLError, ValueError, TypeError, ArithmeticError, RecursionError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0][:200]
        problem(problems, path, f"serve config is not valid YAML: {first}")
        return None
    finally:
        loader.dispose()


def _llm_config_refs(config: Mapping[str, Any], loading: Mapping[str, Any], path: str) -> list[Ref]:
    source = loading.get("model_source")
    revision = as_dict(config.get("engine_kwargs")).get("revision")
    revision = revision if isinstance(revision, str) else ""
    if isinstance(source, Mapping):  # a cloud mirror config
        bucket = source.get("bucket_uri")
        if isinstance(bucket, str) and bucket:
            return [(bucket, f"{path}.model_source.bucket_uri", "serveConfigV2")]
        return [("", f"{path}.model_source", "serveConfigV2")]
    value, where = (
        (source, f"{path}.model_source")
        if source is not None
        else (loading.get("model_id"), f"{path}.model_id")
    )
    if not isinstance(value, str):
        return [("", where, "serveConfigV2")]
    uri = classify(value, bare_name=True)
    return [] if uri is None else [(with_revision(uri, revision), where, "serveConfigV2")]


def _walk(root: Any, base: str) -> Iterator[tuple[Mapping[str, Any], str]]:
    """Every mapping under ``root`` with its path; a mapping shared through an alias is visited once."""
    seen: set[int] = set()
    stack: list[tuple[Any, str]] = [(root, base)]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, Mapping):
            yield node, path
            children = [(v, f"{path}.{path_key(k)}") for k, v in node.items()]
        elif isinstance(node, list):
            children = [(v, f"{path}[{i}]") for i, v in enumerate(node)]
        else:
            continue
        stack.extend(c for c in reversed(children) if isinstance(c[0], Mapping | list))


def _walk_strings(root: Any, base: str) -> Iterator[tuple[str, str]]:
    for node, path in _walk(root, base):
        for k, v in node.items():
            if isinstance(v, str):
                yield v, f"{path}.{path_key(k)}"
            elif isinstance(v, list):
                yield from ((s, f"{path}.{path_key(k)}[{i}]") for i, s in enumerate(v) if isinstance(s, str))
