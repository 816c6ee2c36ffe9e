"""Models named on server command lines, in the servers' environment variables, in KServe storageUris and
storage specs, in image volumes and in Ray serve configs are in the view, each with its field path; what
an attacker controls there is read within bounds."""

from __future__ import annotations

import shlex
import sys
from typing import Any

import pytest

from policyengine.workloads import describe
from policyengine.workloads.commandline import MAX_SHELL_CHARS, MAX_SHELL_DEPTH, classify, is_script
from policyengine.workloads.models import MAX_MODELS

SHA = "0123456789abcdef0123456789abcdef01234567"


def deployment(**container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "ml"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i", **container}]}}},
    }


def models(obj: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(m["uri"], m["path"], m["source"]) for m in describe(obj)["models"]]


C = "spec.template.spec.containers[0]"


@pytest.mark.parametrize(
    ("args", "uri", "index"),
    [
        (["--model", "meta-llama/Llama-3.1-8B"], "hf://meta-llama/Llama-3.1-8B", 1),
        (["--model=meta-llama/Llama-3.1-8B"], "hf://meta-llama/Llama-3.1-8B", 0),
        (["--model-id", "bigscience/bloom"], "hf://bigscience/bloom", 1),  # TGI
        (["--model_id=bigscience/bloom"], "hf://bigscience/bloom", 0),  # KServe huggingface server
        (["--model-path", "Qwen/Qwen2.5-7B"], "hf://Qwen/Qwen2.5-7B", 1),  # SGLang
        (["--model", "s3://acme-models/llama"], "s3://acme-models/llama", 1),
        (["--model", "gpt2"], "hf://gpt2", 1),  # a bare hub name is a Hugging Face id too
        (["--model", "models:/churn/3"], "models:/churn/3", 1),
    ],
)
def test_model_flags_are_references(args: list[str], uri: str, index: int) -> None:
    assert models(deployment(args=args)) == [(uri, f"{C}.args[{index}]", "args")]


def test_vllm_serve_positional_and_revision() -> None:
    obj = deployment(command=["vllm", "serve"], args=["org/m", "--revision", SHA, "--port", "8000"])
    assert models(obj) == [(f"hf://org/m:{SHA}", f"{C}.args[0]", "args")]


def test_served_model_name_and_local_paths_are_not_references() -> None:
    obj = deployment(
        args=["--served-model-name", "acme/llama", "--model", "/mnt/models", "--tokenizer", "x/y"]
    )
    assert models(obj) == []


def test_a_kubernetes_variable_is_resolved_from_the_env() -> None:
    obj = deployment(env=[{"name": "M", "value": "org/m"}], args=["--model", "$(M)"])
    assert models(obj) == [("hf://org/m", f"{C}.args[1]", "args")]


def test_an_unresolved_variable_is_reported_as_written() -> None:
    obj = deployment(
        env=[{"name": "M", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}],
        args=["--model", "$(M)"],
    )
    assert models(obj) == [("$(M)", f"{C}.args[1]", "args")]  # it cannot be approved: never a silent pass


def test_shell_lines_are_tokenised() -> None:
    line = "pip list && exec vllm serve 'org/m' --revision main; echo --model"
    assert models(deployment(command=["sh", "-c", line])) == [
        ("hf://org/m:main", f"{C}.command[2]", "command")
    ]


def test_a_shell_line_is_any_element_holding_whitespace_as_str_isspace_knows_it() -> None:
    """Every code point: the one-scan test agrees with ``str.isspace`` (non-breaking and ideographic
    spaces, the line and paragraph separators, the ASCII separators 0x1c-0x1f included)."""
    spaces = [c for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    assert [c for c in range(sys.maxunicode + 1) if is_script(f"--model{chr(c)}x")] == spaces
    assert not is_script("--model=org/m")


def test_words_and_shell_lines_of_one_argv_keep_their_order() -> None:
    argv = ["--model", "org/a", "vllm serve org/b", "--revision", "main", "python -m x --model org/c"]
    assert [m[0] for m in models(deployment(args=argv))] == ["hf://org/a:main", "hf://org/b", "hf://org/c"]


@pytest.mark.parametrize(
    ("argv", "uri"),
    [
        (["vllm", "serve", "org/m", "--port", "8000"], "hf://org/m"),
        (["vllm", "serve", "--port", "8000", "org/m"], "hf://org/m"),  # argparse takes options first
        (["vllm", "serve", "--dtype", "bfloat16", "--port=8000", "gpt2"], "hf://gpt2"),
        (["vllm", "serve", "--enforce-eager", "org/m"], "hf://org/m"),  # a flag without a value
        (["vllm", "serve", "--tensor-parallel-size", "4", "--", "org/m"], "hf://org/m"),
        (["vllm", "serve", "--port", "8000", "--model", "org/m"], "hf://org/m"),
        (["sh", "-c", "(vllm serve org/m)"], "hf://org/m"),  # a subshell
        (["sh", "-c", "echo $(vllm serve org/m)"], "hf://org/m"),  # a command substitution
        (["sh", "-c", "`vllm serve --model org/m`"], "hf://org/m"),
        (["trtllm-serve", "org/m", "--tp_size", "2"], "hf://org/m"),  # TensorRT-LLM
        (["trtllm-serve", "--backend", "pytorch", "--port", "8000", "org/m"], "hf://org/m"),
        (["trtllm-serve", "embeddings", "org/m"], "hf://org/m"),
        (["lmdeploy", "serve", "api_server", "org/m", "--server-port", "23333"], "hf://org/m"),
        (["sh", "-c", "mpirun -n 2 trtllm-llmapi-launch trtllm-serve org/m"], "hf://org/m"),
    ],
)
def test_the_served_model_is_found_wherever_the_command_line_puts_it(argv: list[str], uri: str) -> None:
    view = describe(deployment(command=argv))
    assert [m["uri"] for m in view["models"]] == [uri]
    assert view["modelProblems"] == []


def test_a_served_model_that_cannot_be_told_from_option_values_is_a_problem() -> None:
    """``--enforce-eager gpt2`` or ``--port gpt2``: a bare word after an option may be its value; rather
    than guess (and pass a server whose model was never read), the view says it cannot tell."""
    view = describe(deployment(args=["vllm", "serve", "--enforce-eager", "gpt2"]))
    assert view["models"] == []
    assert view["modelProblems"] == [
        {
            "path": f"{C}.args[3]",
            "message": "the model of a `serve` command cannot be told apart from its options' values "
            "(gpt2): name it first or with --model",
        }
    ]


def nested(line: str, depth: int) -> str:
    """``line`` run by ``depth`` shells, each given the next one's line: sh -c 'sh -c '"'"'...'"'"''."""
    for _ in range(depth - 1):
        line = "sh -c " + shlex.quote(line)
    return line


@pytest.mark.parametrize("depth", range(1, MAX_SHELL_DEPTH + 1))
def test_a_shell_line_inside_a_shell_line_is_read(depth: int) -> None:
    for launch in ("vllm serve org/m", "exec python3 -m vllm.entrypoints.openai.api_server --model=org/m"):
        view = describe(deployment(command=["bash", "-c", nested(launch, depth)]))
        assert [(m["uri"], m["path"]) for m in view["models"]] == [("hf://org/m", f"{C}.command[2]")]
        assert view["modelProblems"] == []


def test_a_shell_line_nested_past_the_bound_is_a_problem_not_a_pass() -> None:
    view = describe(deployment(command=["sh", "-c", nested("vllm serve org/m", MAX_SHELL_DEPTH + 1)]))
    assert view["models"] == []
    assert view["modelProblems"] == [
        {
            "path": f"{C}.command[2]",
            "message": f"shell line nested more than {MAX_SHELL_DEPTH} deep is not read for model references",
        }
    ]


@pytest.mark.parametrize(
    ("command", "args"),
    [
        (["sh", "-c", "$RUN"], None),
        (["sh", "-c", "set -e; ${RUN}"], None),
        (["sh", "-c"], ["$(RUN)"]),  # Kubernetes expands $(RUN) in args before the shell runs
        (["/entrypoint.sh"], ["$(RUN)"]),
        (["su", "app", "-c", 'bash -c "$RUN"'], None),
    ],
)
def test_a_variable_holding_a_shell_line_is_read_as_one(command: list[str], args: list[str] | None) -> None:
    container: dict[str, Any] = {"command": command, "env": [{"name": "RUN", "value": "vllm serve org/m"}]}
    if args is not None:
        container["args"] = args
    assert [m["uri"] for m in describe(deployment(**container))["models"]] == ["hf://org/m"]


def test_a_line_of_a_thousand_unreadable_commands_is_one_problem_of_each_kind() -> None:
    """Hostile: thousands of ambiguous ``serve`` commands and thousands of lines past the depth bound in
    one container: each kind is reported once, so the view's problems stay as small as a benign one's."""
    ambiguous = "; ".join(["vllm serve --enforce-eager gpt2"] * 1_000)
    deep = nested("; ".join(["run 'serve x'"] * 2_000), MAX_SHELL_DEPTH)
    view = describe(deployment(command=["sh", "-c", ambiguous], args=[deep]))
    assert view["models"] == []
    assert sorted(p["message"].split(" ")[0] + " " + p["path"] for p in view["modelProblems"]) == [
        f"shell {C}.args[0]",
        f"the {C}.command[2]",
    ]


def test_a_variable_named_many_times_is_tokenised_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hostile: a 60 KB line in one variable, named 10,000 times by nested lines and the argv. Every
    character tokenised is the container's own text or the variable's value read once, within the
    depth bound: nothing multiplies what the object holds."""
    run = "vllm serve org/m " + " ".join(f"--flag-{i}" for i in range(5_000))
    names = " ".join(["$RUN"] * 10_000)
    argv = ["sh", "-c", nested(names, 3), *(["$(RUN)"] * 1_000)]
    tokenised: list[int] = []
    real = shlex.shlex

    def counting(text: str, *args: Any, **kwargs: Any) -> shlex.shlex:
        tokenised.append(len(text))
        return real(text, *args, **kwargs)

    monkeypatch.setattr(shlex, "shlex", counting)
    view = describe(deployment(command=argv, env=[{"name": "RUN", "value": run}]))
    assert [m["uri"] for m in view["models"]] == ["hf://org/m"]
    own = sum(len(a) for a in argv)
    assert sum(tokenised) <= MAX_SHELL_DEPTH * own + len(run)


@pytest.mark.parametrize(
    "line",
    ['vllm serve "org/m --port 1', "vllm serve org/m 'unclosed", "python -m x --model \\", '"""', "--model"],
)
def test_odd_quoting_never_fails(line: str) -> None:
    view = describe(deployment(command=["bash", "-c", line]))
    assert view["modelProblems"] == []
    assert all(m["path"] == f"{C}.command[2]" for m in view["models"])


@pytest.mark.parametrize(
    ("env", "uri"),
    [
        ({"MODEL_ID": "tiiuae/falcon-7b", "REVISION": SHA}, f"hf://tiiuae/falcon-7b:{SHA}"),  # TGI
        ({"HF_MODEL_ID": "org/m", "HF_MODEL_REVISION": "v1"}, "hf://org/m:v1"),
        (
            {"NIM_MODEL_PATH": "hf://meta-llama/Llama-3.1-8B-Instruct"},
            "hf://meta-llama/Llama-3.1-8B-Instruct",
        ),
        ({"NIM_MODEL_NAME": "ngc://nim/meta/llama3-8b-instruct:hf"}, "ngc://nim/meta/llama3-8b-instruct:hf"),
        ({"MODEL_NAME": "org/m"}, "hf://org/m"),
    ],
)
def test_server_environment_variables(env: dict[str, str], uri: str) -> None:
    obj = deployment(env=[{"name": k, "value": v} for k, v in env.items()])
    assert models(obj) == [(uri, f"{C}.env[0].value", "env")]


def test_model_name_that_is_a_served_name_is_not_a_reference() -> None:
    assert models(deployment(env=[{"name": "MODEL_NAME", "value": "llama"}])) == []


def test_kserve_storage_uris_and_storage_spec() -> None:
    obj = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "i"},
        "spec": {
            "predictor": {
                "model": {"storageUris": [{"uri": "hf://a/b", "mountPath": "/m"}, {"uri": "s3://b/l"}]},
                "sklearn": {"storage": {"key": "localMinIO", "path": "sklearn"}},
            }
        },
    }
    assert models(obj) == [
        ("hf://a/b", "spec.predictor.model.storageUris[0].uri", "storageUri"),
        ("s3://b/l", "spec.predictor.model.storageUris[1].uri", "storageUri"),
        ("", "spec.predictor.sklearn.storage", "storage"),
    ]


def test_image_volumes_are_oci_models() -> None:
    digest = "a" * 64
    obj = deployment()
    obj["spec"]["template"]["spec"]["volumes"] = [
        {"name": "m", "image": {"reference": f"quay.io/acme/granite@sha256:{digest}"}},
        {"name": "e", "emptyDir": {}},
    ]
    (m,) = describe(obj)["models"]
    assert (m["uri"], m["path"], m["source"], m["sha256"]) == (
        f"oci://quay.io/acme/granite@sha256:{digest}",
        "spec.template.spec.volumes[0].image.reference",
        "imageVolume",
        digest,
    )


def ray_service(config: str) -> dict[str, Any]:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": "r"},
        "spec": {"serveConfigV2": config},
    }


def test_ray_serve_llm_configs_and_runtime_env() -> None:
    config = """
applications:
- name: a
  runtime_env: {working_dir: "s3://acme-code/app.zip", env_vars: {X: "gs://acme-models/w"}}
  args:
    llm_configs:
    - model_loading_config: {model_id: only-an-id/but-a-hub-id}
    - model_loading_config: {model_id: served, model_source: {bucket_uri: "s3://acme-models/m"}}
    - model_loading_config: {model_id: served, model_source: org/m}
      engine_kwargs: {revision: main}
"""
    base = "spec.serveConfigV2.applications[0]"
    assert models(ray_service(config)) == [
        ("s3://acme-code/app.zip", f"{base}.runtime_env.working_dir", "serveConfigV2"),
        ("gs://acme-models/w", f"{base}.runtime_env.env_vars.X", "serveConfigV2"),
        (
            "hf://only-an-id/but-a-hub-id",
            f"{base}.args.llm_configs[0].model_loading_config.model_id",
            "serveConfigV2",
        ),
        (
            "s3://acme-models/m",
            f"{base}.args.llm_configs[1].model_loading_config.model_source.bucket_uri",
            "serveConfigV2",
        ),
        ("hf://org/m:main", f"{base}.args.llm_configs[2].model_loading_config.model_source", "serveConfigV2"),
    ]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("applications: [unclosed", "not valid YAML"),
        (
            "a: &a [1]\n"
            + "".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
                for i in range(9)
            ),
            "excessive aliasing",
        ),
        ("[" * 200 + "]" * 200, "nesting deeper"),
        ("x: " + "1" * 5000, "integer of 5000 characters"),
        ("- a\n" * 100_001, "YAML nodes"),
    ],
    ids=["broken", "billion-laughs", "deep", "long-int", "too-many-nodes"],
)
def test_a_hostile_serve_config_is_a_problem_with_its_path(config: str, message: str) -> None:
    view = describe(ray_service(config))
    assert view["problems"] == []  # not a GPU count: the provenance pack's model-references-readable
    assert [p["path"] for p in view["modelProblems"]] == ["spec.serveConfigV2"]
    assert message in view["modelProblems"][0]["message"]
    assert view["models"] == []


def test_a_serve_config_past_its_size_bound_is_a_problem() -> None:
    view = describe(ray_service("a: b\n" * 300_000))
    assert view["modelProblems"] == [
        {"path": "spec.serveConfigV2", "message": "serve config of 1500000 characters (at most 1048576)"}
    ]


def test_a_megabyte_args_list_reports_at_most_max_models() -> None:
    args = ["--model", "org/m"] * 80_000  # ~1 MB of arguments, each pair a distinct field path
    view = describe(deployment(args=args))
    assert len(view["models"]) == MAX_MODELS
    assert (
        view["modelProblems"][-1]["message"]
        == f"more than {MAX_MODELS} model references; the rest are not read"
    )


def test_a_shell_line_past_its_bound_is_a_problem_not_tokenised() -> None:
    line = "vllm serve org/m " + "x " * MAX_SHELL_CHARS
    view = describe(deployment(command=["sh", "-c", line]))
    assert view["models"] == []
    assert view["modelProblems"] == [
        {
            "path": f"{C}.command[2]",
            "message": f"shell command line of {len(line)} characters is not read for model references "
            f"(at most {MAX_SHELL_CHARS})",
        }
    ]


def test_a_huge_env_is_read_once() -> None:
    env = [{"name": f"V{i}", "value": "x" * 10} for i in range(100_000)]
    env.append({"name": "MODEL_ID", "value": "org/m"})
    assert models(deployment(env=env)) == [("hf://org/m", f"{C}.env[100000].value", "env")]


def test_classify() -> None:
    assert classify("./local", bare_name=True) is None
    assert classify("a/b/c", bare_name=True) is None  # a relative path, not a hub id
    assert classify("llama", bare_name=False) is None
    assert classify("hf://a/b", bare_name=False) == "hf://a/b"


class _CountedEnv(list[Any]):
    """An env list that counts how often it is walked."""

    walks = 0

    def __iter__(self) -> Any:
        type(self).walks += 1
        return super().__iter__()


def test_a_containers_env_is_walked_once_for_data_locations_and_model_references() -> None:
    env = _CountedEnv(
        [
            {"name": "MODEL_ID", "value": "meta-llama/Llama-3.1-8B"},
            {"name": "DATA", "value": "s3://bucket/train/"},
            {"name": "MODEL_ID", "value": "Qwen/Qwen2.5-7B"},  # the last entry of a name wins
        ]
    )
    _CountedEnv.walks = 0
    view = describe(deployment(env=env))
    assert _CountedEnv.walks == 1
    assert [(m["uri"], m["path"]) for m in view["models"]] == [("hf://Qwen/Qwen2.5-7B", f"{C}.env[2].value")]
    data = [(d["uri"], d["path"]) for d in view["dataLocations"] if d["kind"] == "data"]
    assert data == [("s3://bucket/train/", f"{C}.env[1].value")]
