"""`policyengine check` on ordinary repositories: a directory walk skips what is not a manifest (and says
so), leaves Helm chart templates to `helm template`, honours --exclude, and still fails (exit 2) on broken
manifests, on non-manifests named explicitly, and on a directory in which nothing is a manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_cli, run_json, write
from tests.integration.test_check_cli import POLICIES, deployment
from tests.integration.test_check_inputs import run_capped

REPOSITORY = Path(__file__).resolve().parents[2]
ACTION = """name: gate
runs:
  using: composite
  steps: [{run: policyengine check .}]
"""
SCHEMA = '{"type": "object", "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}}}\n'


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    return write(tmp_path / "policies" / "p.yaml", POLICIES).parent


def base(policies: Path) -> list[str]:
    return ["check", "--no-default-policies", "--policies", str(policies)]


def repo_with_noise(root: Path) -> Path:
    write(root / "k8s" / "app.yaml", deployment("app", 1))
    write(root / "action.yml", ACTION)
    write(root / "schemas" / "thing.json", SCHEMA)
    write(root / "compose.yaml", "services:\n  web: {image: nginx}\n")
    write(root / "notes.yaml", "")  # empty
    write(root / "odd.yaml", "key: [unclosed\n")  # not YAML at all, nothing manifest-like in it
    return root


def test_check_of_this_repository_exits_0_or_1_and_counts_the_skipped_files() -> None:
    proc = run_capped(["check", str(REPOSITORY), "--format", "json"])
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    skipped = {Path(s["path"]).relative_to(REPOSITORY).as_posix() for s in report["skipped"]}
    assert "action.yml" in skipped and "policyengine/schemas/policy.json" in skipped
    assert report["summary"]["skippedFiles"] == len(skipped) and report["summary"]["resources"] > 0


def test_a_walk_skips_non_manifests_and_reports_them_in_every_format(
    tmp_path: Path, policies: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    root = repo_with_noise(tmp_path / "repo")
    code, report = run_json([*base(policies), str(root)], capsys, monkeypatch)
    assert code == 0 and report["summary"]["resources"] == 1
    assert report["summary"]["skippedFiles"] == 5 and report["summary"]["skippedCharts"] == 0
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert reasons["action.yml"] == "no document is a mapping with apiVersion and kind"
    assert reasons["notes.yaml"] == "empty"
    assert reasons["odd.yaml"].startswith("not YAML or JSON (line 2:")
    assert set(reasons) == {"action.yml", "thing.json", "compose.yaml", "notes.yaml", "odd.yaml"}

    code, out, err = run_cli([*base(policies), str(root)], capsys, monkeypatch)
    assert code == 0 and "skipped 5 files that are not Kubernetes manifests (--verbose lists them)" in out
    assert "note: skipped" not in err
    code, out, err = run_cli([*base(policies), str(root), "--verbose"], capsys, monkeypatch)
    assert f"note: skipped {root / 'compose.yaml'}: no document is a mapping with apiVersion and kind" in err

    code, out, _ = run_cli([*base(policies), str(root), "--format", "sarif"], capsys, monkeypatch)
    notes = json.loads(out)["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert len(notes) == 5 and {n["level"] for n in notes} == {"note"}
    assert {n["descriptor"]["id"] for n in notes} == {"not_a_manifest"}


def test_an_explicitly_named_non_manifest_still_exits_2(
    tmp_path: Path, policies: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    root = repo_with_noise(tmp_path / "repo")
    code, _, err = run_cli(
        [*base(policies), str(root / "k8s"), str(root / "action.yml")], capsys, monkeypatch
    )
    assert code == 2 and f"{root / 'action.yml'}:1: not_an_object" in err


def test_a_walked_folder_of_only_non_manifests_exits_2(
    tmp_path: Path, policies: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    root = repo_with_noise(tmp_path / "repo")
    (root / "k8s" / "app.yaml").unlink()
    code, out, err = run_cli([*base(policies), str(root)], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert (
        f"{root}:1: file_not_found: no Kubernetes manifests in this directory: 5 file(s) skipped as not "
        "manifests, 0 Helm chart(s) not rendered"
    ) in err


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("broken.yaml", "apiVersion: v1\nkind: [oops\n", ": yaml_syntax"),
        ("broken.json", '{"apiVersion": "v1", "kind": "Pod",\n', ":2: yaml_syntax"),
        ("stray.yaml", deployment("x", 1) + "---\njust: a mapping\n", ": not_an_object"),
        ("repeated.yaml", deployment("x", 1).replace("  name: x\n", "  name: x\n  name: y\n"), "repeated"),
        ("typed.yaml", deployment("x", 1, labels="{version: 1.0}"), "label 'version' must be a string"),
        # An object kube-apiserver refuses: metadata and kind, but no apiVersion (and the reverse).
        ("noversion.yaml", "kind: Deployment\nmetadata: {name: x}\n", "has metadata but no apiVersion"),
        ("nokind.yaml", "apiVersion: v1\nmetadata: {generateName: x-}\n", "has metadata but no kind"),
    ],
)
def test_a_broken_manifest_found_by_a_walk_still_exits_2(  # type: ignore[no-untyped-def]
    tmp_path: Path, policies: Path, capsys, monkeypatch, name: str, text: str, expected: str
) -> None:
    root = repo_with_noise(tmp_path / "repo")
    bad = write(root / "k8s" / name, text)
    code, _, err = run_cli([*base(policies), str(root)], capsys, monkeypatch)
    assert code == 2 and str(bad) in err and expected in err, err


def test_a_helm_chart_templates_are_skipped_with_one_notice(
    tmp_path: Path, policies: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    root = repo_with_noise(tmp_path / "repo")
    chart = root / "charts" / "web"
    write(chart / "Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n")
    write(chart / "values.yaml", "replicaCount: 1\nimage: {repository: nginx}\n")
    write(chart / "templates" / "deployment.yaml", "apiVersion: apps/v1\nkind: Deployment\n{{- if .x }}\n")
    write(chart / "templates" / "_helpers.tpl", '{{- define "web.name" -}}web{{- end }}\n')
    code, out, err = run_cli([*base(policies), str(root)], capsys, monkeypatch)
    assert code == 0 and "yaml_syntax" not in out + err
    notice = f"helm template {chart} | policyengine check -"
    assert out.count(notice) == 1 and f"note: {chart / 'templates'}: Helm chart" in out
    code, report = run_json([*base(policies), str(root)], capsys, monkeypatch)
    assert report["summary"]["skippedCharts"] == 1 and report["summary"]["skippedFiles"] == 7
    charts = [s for s in report["skipped"] if s["kind"] == "chart"]
    assert charts == [{"path": str(chart / "templates"), "kind": "chart", "reason": charts[0]["reason"]}]
    assert notice in charts[0]["reason"]
    code, out, _ = run_cli([*base(policies), str(root), "--format", "sarif"], capsys, monkeypatch)
    notes = json.loads(out)["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert [n["level"] for n in notes if n["descriptor"]["id"] == "helm_chart"] == ["note"]


def test_a_helm_chart_files_are_left_to_its_templates_and_its_crds_are_read(
    tmp_path: Path, policies: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Only a chart's crds/ (and its subcharts' crds/) are applied as they are; its other folders (files/,
    ci/) hold what templates read through .Files, often templated themselves, as Kubeflow Trainer's
    runtimes are."""
    chart = tmp_path / "repo" / "charts" / "trainer"
    write(chart / "Chart.yaml", "apiVersion: v2\nname: trainer\nversion: 0.1.0\n")
    write(chart / "templates" / "runtimes.yaml", '{{ .Files.Get "files/runtimes/torch.yaml" }}\n')
    write(
        chart / "files" / "runtimes" / "torch.yaml",
        'apiVersion: trainer.kubeflow.org/v1alpha1\nkind: ClusterTrainingRuntime\nmetadata:\n  labels:\n    {{- include "l" . }}\n',
    )
    write(chart / "ci" / "values.yaml", "image: {tag: x}\n")
    write(chart / "crds" / "app.yaml", deployment("from-crds", 1))
    write(chart / "charts" / "sub" / "Chart.yaml", "apiVersion: v2\nname: sub\nversion: 0.1.0\n")
    write(chart / "charts" / "sub" / "files" / "t.yaml", "apiVersion: v1\nkind: ConfigMap\na: {{ b }}\n")
    code, report = run_json([*base(policies), str(tmp_path / "repo")], capsys, monkeypatch)
    assert code == 0 and not report.get("problems"), report.get("problems")
    assert report["summary"]["resources"] == 1
    assert report["summary"]["skippedCharts"] == 1  # the subchart has no templates/ to render
    left = {s["path"] for s in report["skipped"] if s["kind"] == "file"}
    assert {str(chart / "files"), str(chart / "ci"), str(chart / "charts" / "sub" / "files")} <= left


def test_a_folder_holding_only_a_chart_exits_2_saying_so(
    tmp_path: Path, policies: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    chart = tmp_path / "web"
    write(chart / "Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n")
    write(chart / "templates" / "deployment.yaml", "kind: {{ .Values.kind }}\n")
    code, _, err = run_cli([*base(policies), str(chart)], capsys, monkeypatch)
    assert code == 2 and "1 file(s) skipped as not manifests, 1 Helm chart(s) not rendered" in err


def test_exclude_leaves_out_globbed_files_and_directories(
    tmp_path: Path, policies: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    root = repo_with_noise(tmp_path / "repo")
    write(root / "tests" / "data" / "fixtures" / "bad.yaml", "apiVersion: v1\nkind: [oops\n")
    write(root / "k8s" / "broken" / "bad.yaml", "apiVersion: v1\nkind: [oops\n")
    write(root / "k8s" / "skip-me.yaml", "apiVersion: v1\nkind: [oops\n")
    code, _, err = run_cli([*base(policies), str(root)], capsys, monkeypatch)
    assert code == 2 and err.count("yaml_syntax") == 3
    code, _, err = run_cli(
        [*base(policies), str(root), "--exclude", "**/fixtures/**", "--exclude", "broken/"],
        capsys,
        monkeypatch,
    )
    assert code == 2 and err.count("yaml_syntax") == 1 and "skip-me.yaml" in err
    args = [*base(policies), str(root), "--exclude", "tests/**/fixtures/", "--exclude", "broken/"]
    code, report = run_json([*args, "--exclude", "/k8s/skip-*.yaml"], capsys, monkeypatch)
    assert code == 0 and report["summary"]["resources"] == 1
    # A pattern matches below the directory walked, never the path named itself.
    code, _, err = run_cli(
        [*base(policies), str(root / "k8s" / "skip-me.yaml"), "--exclude", "*.yaml"], capsys, monkeypatch
    )
    assert code == 2 and "yaml_syntax" in err


def test_a_negated_exclude_pattern_is_a_usage_error(
    tmp_path: Path, policies: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli([*base(policies), str(tmp_path), "--exclude", "!keep.yaml"], capsys, monkeypatch)
    assert code == 2 and "negated patterns (!) are not supported" in err
