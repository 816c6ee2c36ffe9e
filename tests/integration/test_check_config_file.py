"""`.policyengine.yaml`: found upward from the working directory up to the repository root (or named with
--config-file), flags win over it, relative paths are the file's, `--print-config` says where each value
came from, and a bad or hostile file is exit 2 naming its line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import run_cli, run_json, write
from tests.integration.test_check_cli import POLICIES, deployment
from tests.integration.test_check_inputs import HANG_GUARD, run_capped

REPOSITORY = Path(__file__).resolve().parents[2]
CONFIG = """
paths: [k8s]
policies: [policies]
noDefaultPolicies: true
"""


def repo(root: Path, config: str = CONFIG) -> Path:
    """A repository: a .git folder, policies, one denied and one clean manifest, and the config file."""
    (root / ".git").mkdir(parents=True)
    write(root / "policies" / "p.yaml", POLICIES)
    write(root / "k8s" / "big.yaml", deployment("big", 10))  # over the cap of 4: denied
    write(root / "other" / "ok.yaml", deployment("ok", 2))
    write(root / ".policyengine.yaml", config)
    return root


def test_a_config_file_in_a_parent_is_found_and_a_flag_overrides_it(
    tmp_path: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    root = repo(tmp_path / "repo")
    deeper = root / "a" / "b"
    deeper.mkdir(parents=True)
    monkeypatch.chdir(deeper)
    code, report = run_json(["check"], capsys, monkeypatch)
    assert code == 1 and report["summary"]["resources"] == 1
    assert [r["source"]["file"] for r in report["results"]] == [os.path.join("..", "..", "k8s", "big.yaml")]
    # A PATH on the command line replaces the file's paths; its other keys still apply.
    code, report = run_json(["check", str(root / "other")], capsys, monkeypatch)
    assert code == 0 and report["summary"]["resources"] == 1
    # --policies given replaces the file's list (the replica cap is gone; the packs stay off).
    empty = write(tmp_path / "elsewhere" / "none.yaml", POLICIES.split("---")[1]).parent
    code, report = run_json(["check", "--policies", str(empty)], capsys, monkeypatch)
    assert code == 0 and {r["policy"] for r in report["results"]} <= {"memory-limit"}


def test_the_search_stops_at_the_repository_root(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path / ".policyengine.yaml", "paths: [nowhere]\n")  # above the repository: never read
    inner = tmp_path / "repo"
    write(inner / ".git", "gitdir: /elsewhere\n")  # a worktree's .git is a file: still the root
    monkeypatch.chdir(inner)
    code, out, err = run_cli(["check", "--print-config", "json"], capsys, monkeypatch)
    printed = json.loads(out)
    assert code == 0 and printed["configFile"] is None
    assert printed["settings"]["paths"] == {"value": [], "source": "default"}
    code, out, err = run_cli(["check"], capsys, monkeypatch)
    assert code == 2 and "give at least one PATH" in err


def test_config_file_flag_and_no_config_file(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = repo(tmp_path / "repo")
    named = write(root / "ci" / "gate.yaml", "paths: [manifests]\n")
    write(root / "ci" / "manifests" / "ok.yaml", deployment("ok", 2))
    monkeypatch.chdir(root)
    code, out, _ = run_cli(["check", "--config-file", str(named), "--print-config"], capsys, monkeypatch)
    printed = yaml.safe_load(out)
    assert code == 0 and printed["configFile"] == str(named)
    assert printed["settings"]["paths"]["value"] == [os.path.join("ci", "manifests")]
    assert printed["settings"]["policies"] == {"value": [], "source": "default"}  # no search: not the repo's
    code, _, err = run_cli(["check", "--no-config-file"], capsys, monkeypatch)
    assert code == 2 and "give at least one PATH" in err
    code, _, err = run_cli(["check", "--config-file", str(tmp_path / "missing.yaml")], capsys, monkeypatch)
    assert code == 2 and "missing.yaml:1: file_not_found" in err


def test_relative_paths_are_the_file_directorys(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    config = CONFIG + "formats:\n  - {format: json, output: reports/r.json}\n  - {format: text}\n"
    root = repo(tmp_path / "repo", config)
    (root / "reports").mkdir()
    (root / "sub").mkdir()
    monkeypatch.chdir(root / "sub")
    code, out, err = run_cli(["check"], capsys, monkeypatch)
    assert code == 1, err
    assert "FAIL: 1 resources" in out
    report = json.loads((root / "reports" / "r.json").read_text(encoding="utf-8"))
    assert report["summary"]["resources"] == 1


def test_print_config_says_where_each_value_came_from(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = repo(
        tmp_path / "repo", CONFIG + "maxInputSize: 2MiB\nformats: [{format: sarif, output: r.sarif}]\n"
    )
    monkeypatch.chdir(root)
    argv = ["check", "--strict", "--max-documents", "7", "--print-config", "json"]
    code, out, err = run_cli(argv, capsys, monkeypatch)
    assert code == 0, err
    printed = json.loads(out)
    settings = printed["settings"]
    origin = "file:.policyengine.yaml"
    assert printed["configFile"] == ".policyengine.yaml"
    assert settings["paths"] == {"value": ["k8s"], "source": origin}
    assert settings["noDefaultPolicies"] == {"value": True, "source": origin}
    assert settings["strict"] == {"value": True, "source": "flag"}
    assert settings["maxDocuments"] == {"value": 7, "source": "flag"}
    assert settings["maxInputSize"] == {"value": 2 << 20, "source": origin}
    assert settings["exclude"] == {"value": [], "source": "default"}
    assert settings["formats"] == {"value": [{"format": "sarif", "output": "r.sarif"}], "source": origin}
    assert not (root / "r.sarif").exists()  # printing the settings runs nothing
    code, out, _ = run_cli(["check", "--print-config"], capsys, monkeypatch)
    assert code == 0 and yaml.safe_load(out)["settings"]["maxDocuments"] == {
        "value": 10000,
        "source": "default",
    }


def test_schema_errors_and_unknown_keys_name_the_file_and_line(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bad = "paths: [k8s]\nstrict: maybe\nformats:\n  - {format: pdf}\nexlude: [tests/**]\n"
    root = repo(tmp_path / "repo", bad)
    monkeypatch.chdir(root)
    code, out, err = run_cli(["check"], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert ".policyengine.yaml:2: schema_invalid: 'maybe' is not of type 'boolean' (at strict)" in err
    assert ".policyengine.yaml:4: schema_invalid: 'pdf' is not one of" in err
    assert ".policyengine.yaml:5: schema_invalid: unknown key 'exlude'" in err
    write(root / ".policyengine.yaml", "paths: [k8s]\nexclude: ['!x']\nmaxInputSize: 3 parsecs\n")
    code, _, err = run_cli(["check"], capsys, monkeypatch)
    assert code == 2 and ".policyengine.yaml:2: invalid_value:" in err and "(at exclude[0])" in err
    assert ".policyengine.yaml:3: schema_invalid:" in err or ".policyengine.yaml:3: invalid_value:" in err


def test_a_config_naming_paths_outside_its_directory_is_refused(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    outside = write(tmp_path / "secret" / "inventory.yaml", "kind: List\nitems: []\n")
    config = (
        f"paths: [k8s, ../secret]\ninventory: {outside}\n"
        "formats: [{format: text, output: ../../home/.profile}]\nbaseline: link/b.json\n"
    )
    root = repo(tmp_path / "repo", config)
    (root / "link").symlink_to(tmp_path / "secret")  # a link out of the repository is outside too
    monkeypatch.chdir(root)
    code, out, err = run_cli(["check"], capsys, monkeypatch)
    assert code == 2 and out == ""
    for line, at in ((1, "paths[1]"), (2, "inventory"), (3, "formats[0].output")):
        assert f".policyengine.yaml:{line}: invalid_value:" in err and f"(at {at})" in err
    if (
        "baseline"
        in json.loads(
            run_cli(["check", "--print-config", "json", "--no-config-file"], capsys, monkeypatch)[1]
        )["settings"]
    ):
        assert "(at baseline)" in err
    # The same places named with flags are the user's choice.
    code, _, err = run_cli(
        ["check", "--no-config-file", "--inventory", str(outside), "--print-config"], capsys, monkeypatch
    )
    assert code == 0


def test_a_huge_config_file_is_refused_by_the_input_limit(tmp_path: Path) -> None:
    root = repo(tmp_path / "repo", "paths: [k8s]\n# " + "x" * (2 << 20) + "\n")
    proc = run_capped(["check", "--max-input-size", "1MiB"], cwd=root)
    assert proc.returncode == 2
    assert ".policyengine.yaml:1: read_error: larger than the input size limit of 1 MiB" in proc.stderr


def test_a_deeply_nested_config_file_is_an_error_not_a_crash(tmp_path: Path) -> None:
    root = repo(tmp_path / "repo", "paths: " + "[" * 50_000 + "]" * 50_000 + "\n")
    proc = run_capped(["check"], cwd=root)
    assert proc.returncode == 2 and "internal error" not in proc.stderr
    assert ".policyengine.yaml:1:" in proc.stderr


def test_check_dot_in_this_repository_exits_0_or_1_and_counts_skipped_files() -> None:
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "policyengine", "check", "."],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            check=False,
            timeout=HANG_GUARD,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"policyengine check . did not finish within {HANG_GUARD} s")
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    skipped = [line for line in proc.stdout.splitlines() if line.startswith("skipped ")]
    assert skipped and int(skipped[0].split()[1]) > 0


def test_adoption_in_three_commands_then_only_new_findings_fail(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """docs/ci.md's adoption: a config naming the baseline, --write-baseline, and later runs fail only on
    findings the baseline does not record."""
    root = repo(tmp_path / "repo", CONFIG + "baseline: .policyengine-baseline.json\n")
    monkeypatch.chdir(root)
    code, _, _ = run_cli(["check", "--write-baseline", ".policyengine-baseline.json"], capsys, monkeypatch)
    assert code == 0 and (root / ".policyengine-baseline.json").is_file()
    code, report = run_json(["check"], capsys, monkeypatch)  # the baseline comes from the file
    assert code == 0 and report["summary"]["baselined"] == 1
    assert [r["outcome"] for r in report["results"] if r["policy"] != "memory-limit"] == ["baselined"]
    write(root / "k8s" / "bigger.yaml", deployment("bigger", 12))  # a new violation
    code, report = run_json(["check"], capsys, monkeypatch)
    assert code == 1 and report["summary"]["baselined"] == 1
    # --print-config says the baseline came from the file.
    code, out, _ = run_cli(["check", "--print-config", "json"], capsys, monkeypatch)
    settings = json.loads(out)
    assert code == 0 and str(settings["settings"]["baseline"]["source"]).startswith("file:")


def test_the_kustomize_key_turns_on_rendering_in_walks(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = repo(tmp_path / "repo", CONFIG + "kustomize: true\n")
    monkeypatch.chdir(root)
    code, out, _ = run_cli(["check", "--print-config", "json"], capsys, monkeypatch)
    setting = json.loads(out)["settings"]["kustomize"]
    assert code == 0 and setting["value"] is True and str(setting["source"]).startswith("file:")
