"""`policyengine init`: a starter GovernanceConfig and .policyengine.yaml from a repository's manifests or an
inventory, every guessed value marked for review, that `check` then loads and applies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from policyengine import schema
from policyengine.cli import configfile
from policyengine.loader import parse_text
from tests.helpers import run_cli, run_json, write

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "init-repo"
STARTER = "governance-config.yaml"


def copy_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(FIXTURE, root / "k8s")
    (root / ".git").mkdir()
    return root


def schema_problems(path: Path) -> list[str]:
    docs = parse_text(path.read_text(encoding="utf-8"), str(path))
    return [p.render() for d in docs for p in schema.validate(d, "governance-config.json")]


def test_init_writes_the_repository_facts_each_marked_for_review(tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = copy_repo(tmp_path)
    monkeypatch.chdir(root)
    code, out, err = run_cli(["init", "k8s"], capsys, monkeypatch)
    assert code == 0, err
    text = (root / STARTER).read_text(encoding="utf-8")
    assert schema_problems(root / STARTER) == []
    spec = yaml.safe_load(text)["spec"]
    teams = spec["gpu"]["teams"]
    assert teams["vision"]["quota"] == 2 and teams["serving"]["quota"] == 1
    assert teams["vision"]["products"] == ["NVIDIA-H100-80GB-HBM3"]
    assert spec["residency"]["zones"]["eu"]["regions"] == ["eu-west-1"]
    locations = {d["prefix"]: d["region"] for d in spec["residency"]["dataLocations"]}
    # Data read by a workload pinned to one region is guessed to live there; model weights at a hub are
    # not: their region is "" (an unknown location, denied while unknownLocation is deny) until reviewed.
    assert locations == {"s3://vision-data/": "eu-west-1", "hf://meta-llama/": ""}
    assert spec["models"]["approvedSources"] == ["hf://meta-llama/"]
    lines = text.splitlines()

    def comment_of(fragment: str) -> str:
        return next(line for line in lines if fragment in line).split("#", 1)[1]

    assert "review: guessed from k8s/namespaces.yaml:6" in comment_of('"vision":')
    assert "review: guessed from k8s/train-job.yaml:" in comment_of("quota: 2")
    assert "review: guessed from k8s/isvc.yaml:13" in comment_of('- "hf://meta-llama/"')
    assert "review: guessed from k8s/isvc.yaml:9" in comment_of('- "eu-west-1"')
    assert "placeholder" in comment_of('region: ""')
    assert "nvidia.com/gpu" in text  # the GPU resources in use are named
    # The config file names the starter config and the paths read.
    settings = configfile.load(str(root / configfile.FILE_NAME), configfile.DEFAULT_LIMITS)
    assert settings["config"] == [STARTER] and settings["paths"] == ["k8s"]
    assert f"wrote {STARTER}" in out and "review" in out


def test_check_loads_the_written_config_and_applies_its_quota_and_sources(
    tmp_path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    root = copy_repo(tmp_path)
    monkeypatch.chdir(root)
    assert run_cli(["init", "k8s"], capsys, monkeypatch)[0] == 0
    code, report = run_json(["check"], capsys, monkeypatch)  # .policyengine.yaml gives paths and config
    assert code == 1  # images and models are not pinned: rules that need no organisation facts
    denied = {r["policy"] for r in report["results"]}
    assert not denied & {"gpu-team-quota", "model-approved-source"}, report["results"]
    # One more GPU in team vision goes over the quota init guessed; a model from elsewhere is not approved.
    more = (FIXTURE / "train-job.yaml").read_text().replace("name: train", "name: more")
    write(root / "k8s" / "more.yaml", more.replace("nvidia.com/gpu: 2", "nvidia.com/gpu: 3"))
    write(root / "k8s" / "other.yaml", (FIXTURE / "isvc.yaml").read_text().replace("meta-llama", "someone"))
    code, report = run_json(["check"], capsys, monkeypatch)
    messages = {r["policy"]: r["message"] for r in report["results"]}
    assert "Job more adds 3: 3 is over the quota of 2" in messages["gpu-team-quota"]
    assert "hf://someone/" in messages["model-approved-source"]
    assert "approved: hf://meta-llama/" in messages["model-approved-source"]


def test_existing_files_are_not_overwritten_without_force(tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = copy_repo(tmp_path)
    monkeypatch.chdir(root)
    write(root / STARTER, "# mine\n")
    code, out, err = run_cli(["init", "k8s"], capsys, monkeypatch)
    assert code == 2 and STARTER in err and "--force" in err
    assert (root / STARTER).read_text() == "# mine\n" and not (root / configfile.FILE_NAME).exists()
    write(root / configfile.FILE_NAME, "paths: [k8s]\n")  # the user's own settings are never replaced
    code, out, err = run_cli(["init", "k8s", "--force"], capsys, monkeypatch)
    assert code == 0, err
    assert "vision" in (root / STARTER).read_text()
    assert (root / configfile.FILE_NAME).read_text() == "paths: [k8s]\n"
    assert f"kept {configfile.FILE_NAME}" in out and STARTER in out


def test_output_dir_and_paths_outside_it(tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = copy_repo(tmp_path)
    monkeypatch.chdir(root)
    out_dir = root / "policy"
    code, out, err = run_cli(["init", "k8s", "--output-dir", str(out_dir)], capsys, monkeypatch)
    assert code == 0, err
    # k8s is outside policy/: a config file may name only paths inside its folder, so it names none.
    settings = configfile.load(str(out_dir / configfile.FILE_NAME), configfile.DEFAULT_LIMITS)
    assert "paths" not in settings and "outside" in out
    assert schema_problems(out_dir / STARTER) == []


def test_init_from_an_inventory(tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    inventory = write(
        tmp_path / "inventory.yaml",
        """
        apiVersion: v1
        kind: Namespace
        metadata:
          name: research
          labels: {policyengine.io/team: research, policyengine.io/residency: us}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: p, namespace: research}
        spec:
          nodeSelector: {topology.kubernetes.io/region: us-east-1}
          containers:
            - name: c
              image: x
              args: ["--model", "hf://org-a/model-x"]
              resources: {limits: {nvidia.com/gpu: 4}}
        """,
    )
    monkeypatch.chdir(tmp_path)
    code, _out, err = run_cli(["init", "--inventory", str(inventory)], capsys, monkeypatch)
    assert code == 0, err
    text = (tmp_path / STARTER).read_text(encoding="utf-8")
    spec = yaml.safe_load(text)["spec"]
    assert spec["gpu"]["teams"]["research"]["quota"] == 4
    assert spec["residency"]["zones"]["us"]["regions"] == ["us-east-1"]
    assert spec["models"]["approvedSources"] == ["hf://org-a/"]
    assert f"review: guessed from inventory {inventory}" in text
    assert schema_problems(tmp_path / STARTER) == []


def test_nothing_to_read_is_a_usage_error(tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    code, _out, err = run_cli(["init"], capsys, monkeypatch)
    assert code == 2 and "PATH" in err and not (tmp_path / STARTER).exists()


def test_input_problems_are_listed_and_nothing_is_written(tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path / "k8s" / "bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {v: 1.0}}\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["init", "k8s"], capsys, monkeypatch)
    assert code == 2 and "k8s/bad.yaml:3" in err and "quote it" in err
    assert not (tmp_path / STARTER).exists() and not (tmp_path / configfile.FILE_NAME).exists()


def test_a_link_in_place_of_the_starter_is_replaced_not_written_through(
    tmp_path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    root = copy_repo(tmp_path)
    victim = write(tmp_path / "victim.txt", "keep\n")
    (root / STARTER).symlink_to(victim)
    monkeypatch.chdir(root)
    assert run_cli(["init", "k8s"], capsys, monkeypatch)[0] == 2  # it exists
    assert run_cli(["init", "k8s", "--force"], capsys, monkeypatch)[0] == 0
    assert victim.read_text() == "keep\n" and not (root / STARTER).is_symlink()
    assert sorted(p.name for p in root.iterdir()) == [".git", configfile.FILE_NAME, STARTER, "k8s"]


HOSTILE = [
    'evil\nspec: {models: {approvedSources: ["s3://"]}}',
    "team # comment: x",
    'q\'"uotes" and \\ backslash',
    "<<",
    "- [a, b]: {c: d}",
    "\u2028line\x85sep\ttab\x00nul",
    "x" * 5000,
    "yes",
    "null",
]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_labels_and_uris_inject_nothing(tmp_path, capsys, monkeypatch, value: str) -> None:  # type: ignore[no-untyped-def]
    docs = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": value,
                "labels": {"policyengine.io/team": value, "policyengine.io/residency": value},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": value},
            "spec": {
                "nodeSelector": {"topology.kubernetes.io/region": value},
                "containers": [
                    {
                        "name": "c",
                        "image": "i",
                        "resources": {"limits": {"nvidia.com/gpu": 1}},
                        "env": [{"name": "D", "value": "s3://" + value + "/x"}],
                        "args": ["--model", "hf://" + value + "/m"],
                    }
                ],
            },
        },
    ]
    # JSON is YAML: the hostile strings reach the manifest reader as they are.
    write(tmp_path / "k8s" / "m.json", "\n".join(json.dumps(d) for d in docs[:1]))
    write(tmp_path / "k8s" / "p.json", json.dumps(docs[1]))
    monkeypatch.chdir(tmp_path)
    code, _out, err = run_cli(["init", "k8s"], capsys, monkeypatch)
    assert code == 0, err
    text = (tmp_path / STARTER).read_text(encoding="utf-8")
    assert schema_problems(tmp_path / STARTER) == []
    loaded = yaml.safe_load(text)
    assert set(loaded) == {"apiVersion", "kind", "metadata", "spec"}
    spec = loaded["spec"]
    # Each value is written as data and read back as exactly itself, or left out with a note.
    assert set(spec) <= {"gpu", "residency", "models"}
    assert set(spec["gpu"]) == {"teams"} and set(spec["gpu"]["teams"]) <= {value, "default"}
    assert spec.get("models", {}).get("approvedSources", []) in ([], ["hf://" + value + "/"])
    for line in text.splitlines():  # no line of the file is anything but a comment, a key, an item
        assert (
            line.strip() == ""
            or line.lstrip().startswith(("#", "-", '"'))
            or line.split(":")[0].strip().isidentifier()
        )
    if len(value) > 1000:
        assert "left out" in text and value not in text
    else:  # kept, and read back as exactly itself
        assert spec["gpu"]["teams"][value]["quota"] == 1 and value in spec["residency"]["zones"]
    # Only printable ASCII: no character of a value can end a comment's line or start a new one.
    assert all(ch == "\n" or " " <= ch <= "~" for ch in text)


@pytest.mark.shared
def test_init_on_the_upstream_corpus_writes_a_config_that_validates(
    shared, tmp_path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    out_dir = tmp_path / "out"  # the corpus is read-only: everything is written here
    code, _out, err = run_cli(
        ["init", str(shared / "corpus" / "upstream"), "--output-dir", str(out_dir)], capsys, monkeypatch
    )
    assert code == 0, err
    assert schema_problems(out_dir / STARTER) == []
    spec = yaml.safe_load((out_dir / STARTER).read_text(encoding="utf-8"))["spec"]
    assert spec["models"]["approvedSources"]  # the corpus serves models from hubs and buckets
    code, report = run_json(
        ["check", str(shared / "corpus" / "upstream"), "--config", str(out_dir / STARTER)],
        capsys,
        monkeypatch,
    )
    assert code in (0, 1) and report["summary"]["resources"] > 0


def test_teams_zones_and_prefixes_are_capped_with_a_note(tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from policyengine.starter import MAX_ENTRIES

    count = MAX_ENTRIES + 6
    docs = []
    for i in range(count):
        labels = {"policyengine.io/team": f"team-{i}", "policyengine.io/residency": f"zone-{i}"}
        docs.append(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"ns-{i}", "labels": labels}}
        )
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "namespace": f"ns-{i}"},
                "spec": {"containers": [{"name": "c", "image": "i", "args": ["--model", f"hf://org-{i}/m"]}]},
            }
        )
    write(tmp_path / "k8s" / "all.yaml", "\n---\n".join(json.dumps(d) for d in docs))
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["init", "k8s"], capsys, monkeypatch)
    assert code == 0, err
    text = (tmp_path / STARTER).read_text(encoding="utf-8")
    spec = yaml.safe_load(text)["spec"]
    assert len(spec["gpu"]["teams"]) == MAX_ENTRIES and len(spec["residency"]["zones"]) == MAX_ENTRIES
    assert len(spec["models"]["approvedSources"]) == MAX_ENTRIES
    assert len(spec["residency"]["dataLocations"]) == MAX_ENTRIES
    for what in ("team names", "residency zones", "model source prefixes", "data location prefixes"):
        assert f"# Note: left out 6 {what} past the first {MAX_ENTRIES}" in text, what
    assert "left out 6 team names" in out
    assert schema_problems(tmp_path / STARTER) == []
