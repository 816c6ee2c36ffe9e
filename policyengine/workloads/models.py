"""Model references named where serving and training stacks name them: server command lines and
environment variables, KServe ``storageUris`` and ``storage``, image volumes and Ray Serve configs.

Each reference comes with the field path it was read from. Everything read here is bounded: a shell
string is tokenised only up to ``MAX_SHELL_CHARS``, a Ray serve config is read by the loader's bounded
YAML reader, and a workload reports at most ``MAX_MODELS`` references; a bound passed is a problem.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import yaml

from policyengine.workloads.values import Problems, as_dict, as_list, path_key, problem, storage_uris_in
from policyengine.yamlnodes import Expansion, check_expansion
from policyengine.yamlreader import BoundedLoader

# A reference found: (uri, field path, source). uri "" is a model named without a URI.
Ref = tuple[str, str, str]

MAX_MODELS = 256  # references one workload reports; more is a problem, not a larger view
MAX_SHELL_CHARS = 64 * 1024  # a longer shell string is not tokenised (a problem says so)
MAX_SHELL_DEPTH = 4  # shell lines inside shell lines read for models; a deeper one is a problem
MAX_SERVE_CONFIG_CHARS = 1024 * 1024
MAX_SERVE_CONFIG_NODES = 100_000

# Flags naming the model a server loads: vLLM --model, TGI and KServe's huggingface server --model-id,
# SGLang --model-path. Underscores are read as dashes, as vLLM's and KServe's parsers do.
MODEL_FLAGS = frozenset({"--model", "--model-id", "--model-path"})
REVISION_FLAG = "--revision"
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
_SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh"})
_SEPARATORS = frozenset({";", "&&", "||", "|", "&", ";;"})

_WHITESPACE = re.compile(r"\s")
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_HUB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_VARIABLE = re.compile(
    r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)"
)


def classify(value: str, bare_name: bool) -> str | None:
    """The model reference a server reads from ``value``: a URI as written (``s3://``, ``hf://``,
    ``oci://``, MLflow ``models:/``), a Hugging Face id ``org/name`` as ``hf://org/name`` (a bare
    ``name`` too when ``bare_name``), an unresolved ``$VAR`` as written (it cannot be checked, so it
    must not pass as approved); None for a local path, which another field filled."""
    value = value.strip()
    if not value or value[0] in "/.~":
        return None
    if "://" in value or value.startswith(("models:/", "runs:/")) or "$" in value:
        return value
    if _HUB_ID.fullmatch(value) or (bare_name and _HUB_NAME.fullmatch(value)):
        return f"hf://{value}"
    return None


def with_revision(uri: str, revision: str) -> str:
    """``hf://org/name`` at a revision, written ``hf://org/name:<revision>`` (a 40-hex commit is a pin)."""
    revision = revision.strip()
    if revision and uri.startswith("hf://") and ":" not in uri[5:] and "@" not in uri[5:]:
        return f"{uri}:{revision}"
    return uri


def _resolve(value: str, env: Mapping[str, str]) -> str:
    """``$(VAR)`` (Kubernetes) and ``$VAR`` / ``${VAR}`` (shell) when the whole value is one variable
    whose literal value the container's env gives."""
    match = _VARIABLE.fullmatch(value.strip())
    if match:
        name = next(g for g in match.groups() if g)
        return env.get(name, value)
    return value


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
    token that is a whole variable reference (``_resolve``) looks one up, so most containers, and their
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
        refs.extend(_argv_refs(argv, env if walked is None else ContainerEnv(container), problems))
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


def _argv_refs(argv: list[tuple[str, str]], env: Mapping[str, str], problems: Problems) -> list[Ref]:
    """The argv as one command, and every element holding a shell line (``sh -c "vllm serve ..."``, any
    element with spaces, or a whole variable whose value is one: Kubernetes expands ``$(VAR)`` in command
    and args) as the commands of that line, with the lines inside it (``_script_refs``)."""
    words: list[tuple[str, str]] = []
    scripts: list[tuple[str, str]] = []
    read: set[str] = set()
    for token, path in argv:
        line = _line(token, env, read)
        if line is None:
            words.append((token, path))
        else:
            scripts.append((line, path))
    refs = _segment_refs(words, env)
    for line, path in scripts:
        refs.extend(_script_refs(line, path, env, problems, read, 1))
    return refs


def _script_refs(
    script: str, path: str, env: Mapping[str, str], problems: Problems, read: set[str], depth: int
) -> list[Ref]:
    """A shell line's references: each simple command's, and those of every shell line a command is
    given (``sh -c "bash -c 'vllm serve ...'"``, ``su -c "$RUN"``), up to ``MAX_SHELL_DEPTH`` lines deep.
    Each nested line is a part of its parent's text or a variable's value read once (``_line``), so a
    container's lines are tokenised in at most ``MAX_SHELL_DEPTH`` times its own text."""
    refs: list[Ref] = []
    for segment in _shell_segments(script, path, problems):
        refs.extend(_segment_refs([(t, path) for t in segment], env))
        lines = [line for line in (_line(t, env, read) for t in segment) if line is not None]
        if lines and depth >= MAX_SHELL_DEPTH:
            message = f"shell line nested more than {MAX_SHELL_DEPTH} deep is not read for model references"
            problem(problems, path, message)
            continue
        for line in lines:
            refs.extend(_script_refs(line, path, env, problems, read, depth + 1))
    return refs


def _line(token: str, env: Mapping[str, str], read: set[str]) -> str | None:
    """The shell line ``token`` is: itself when it holds whitespace, or the value of the variable it
    wholly names when that value does (each variable once per container, in ``read``: a line naming
    ``$RUN`` a thousand times tokenises its value once); None for a plain word."""
    if is_script(token):
        return token
    if "$" not in token:
        return None
    match = _VARIABLE.fullmatch(token.strip())
    if match is None:
        return None
    name = next(g for g in match.groups() if g)
    value = env.get(name)
    if value is None or name in read or not is_script(value):
        return None
    read.add(name)
    return value


def is_script(token: str) -> bool:
    """Whether an argv element holds whitespace (a shell line): one regex scan, not a generator over
    its characters (``\\s`` matches exactly the characters ``str.isspace`` does)."""
    return _WHITESPACE.search(token) is not None


def _shell_segments(script: str, path: str, problems: Problems) -> list[list[str]]:
    """The simple commands of a shell line, split at ``;``, ``&&``, ``|``...; odd quoting never fails."""
    if "model" not in script.lower() and "serve" not in script and "$" not in script:
        return []  # no server invocation, nor a variable that may hold one: not worth tokenising
    if len(script) > MAX_SHELL_CHARS:
        message = (
            f"shell command line of {len(script)} characters is not read for model references "
            f"(at most {MAX_SHELL_CHARS})"
        )
        problem(problems, path, message)
        return []
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        tokens = list(lexer)
    except ValueError:  # an unclosed quote: read the words as they stand
        tokens = re.split(r"(;|&&|\|\||\||&)|\s+", script.replace('"', " ").replace("'", " "))
        tokens = [t for t in tokens if t]
    segments: list[list[str]] = [[]]
    for token in tokens:
        if token in _SEPARATORS:
            segments.append([])
        else:
            segments[-1].append(token)
    return [s for s in segments if s]


def _segment_refs(tokens: Sequence[tuple[str, str]], env: Mapping[str, str]) -> list[Ref]:
    """References of one simple command: model flags, ``vllm serve <model>``, and ``--revision``."""
    found: list[tuple[str, str]] = []
    revision = ""
    i = 0
    while i < len(tokens):
        token, path = tokens[i]
        name, eq, value = token.partition("=")
        flag = name.replace("_", "-") if name.startswith("--") else ""
        if flag in MODEL_FLAGS or flag == REVISION_FLAG:
            if not eq:
                if i + 1 >= len(tokens):
                    break
                value, path = tokens[i + 1]
                i += 1
            value = _resolve(value, env)
            if flag == REVISION_FLAG:
                revision = value
            else:
                found.append((value, path))
        elif _program(token) in ("vllm", "sglang") and i + 2 < len(tokens) and tokens[i + 1][0] == "serve":
            positional, ppath = tokens[i + 2]
            if not positional.startswith("-"):
                found.append((_resolve(positional, env), ppath))
                i += 2
        i += 1
    refs: list[Ref] = []
    for value, path in found:
        uri = classify(value, bare_name=True)
        if uri is not None:
            source = "command" if ".command[" in path else "args"
            refs.append((with_revision(uri, revision), path, source))
    return refs


def _program(token: str) -> str:
    return token.rsplit("/", 1)[-1]


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
