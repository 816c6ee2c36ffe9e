"""The shipped packs: their own PolicyTest cases pass, and real upstream AI manifests evaluate cleanly."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.helpers import ACME_CONFIG, run_cli

ROOT = Path(__file__).resolve().parents[2]


def test_every_pack_test_case_passes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run_cli(["test", str(ROOT / "policies")], capsys, monkeypatch)
    summary = out.strip().splitlines()[-1]
    assert code == 0, out + err
    passed = int(re.match(r"(\d+) passed, 0 failed$", summary).group(1))  # type: ignore[union-attr]
    assert passed >= 38


def test_a_broken_expectation_fails_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pack = ROOT / "policies" / "gpu-quotas"
    test = tmp_path / "wrong.yaml"
    test.write_text(
        (pack / "tests" / "quotas.yaml")
        .read_text()
        .replace("17 is over the quota of 16", "18 is over the quota of 16")
        .replace('policies: [".."]', f"policies: [{json.dumps(str(pack))}]")
        .replace("config: [config.yaml]", f"config: [{json.dumps(str(pack / 'tests' / 'config.yaml'))}]")
        .replace(
            "inventory: [cluster.yaml]", f"inventory: [{json.dumps(str(pack / 'tests' / 'cluster.yaml'))}]"
        )
    )
    code, out, _ = run_cli(["test", str(test)], capsys, monkeypatch)
    assert code == 1
    assert "FAIL gpu-quotas/one-gpu-over-the-team-quota" in out
    assert re.search(r"\n\d+ passed, 1 failed$", out.strip())


def test_upstream_ai_manifests_evaluate_without_errors(
    shared: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream = shared / "corpus" / "upstream"
    folders = sorted(str(p) for p in upstream.iterdir() if p.is_dir() and p.name != "model-signing-spec")
    code, out, err = run_cli(["check", *folders, "--format", "json"], capsys, monkeypatch)
    assert code in (0, 1), err
    report = json.loads(out)
    errors = [r for r in report["results"] if r["outcome"] == "error"]
    assert errors == []
    assert report["summary"]["resources"] >= 40
    # The corpus is full of tag-only images and unpinned models: the provenance pack must see them.
    assert any(r["policy"] == "ai-images-pinned-by-digest" for r in report["results"])


def test_pack_findings_point_at_the_offending_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = tmp_path / "job.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\n---\n"
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: train\n  namespace: ml\nspec:\n  template:\n"
        "    spec:\n      containers:\n        - name: t\n          image: pytorch/pytorch:latest\n"
        "          resources:\n            limits: {nvidia.com/gpu: 1}\n"
    )
    code, out, _ = run_cli(
        ["check", "--config", ACME_CONFIG, str(manifest), "--format", "json"], capsys, monkeypatch
    )
    assert code == 1
    lines = {r["policy"]: r["source"]["line"] for r in json.loads(out)["results"]}
    assert lines["ai-images-pinned-by-digest"] == 15  # the image: line of the second document
    assert lines["gpu-team-quota"] == 12  # spec.template.spec of the GPU pod template


def test_verbose_lists_bundles_that_do_not_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = ROOT / "policies" / "model-provenance" / "tests" / "config.yaml"
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: x}]}\n"
    )
    code, _, err = run_cli(
        ["check", "--verbose", "--config", str(config), str(manifest)], capsys, monkeypatch
    )
    assert code == 0
    assert "rogue-model.sig does not verify: signature does not verify under any trusted key" in err
    assert "signed-model.sig" not in err


def test_model_findings_point_at_the_line_that_names_the_model(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = ROOT / "tests" / "fixtures" / "models" / "model-sources.yaml"
    code, out, _ = run_cli(
        ["check", "--config", ACME_CONFIG, str(manifest), "--format", "json"], capsys, monkeypatch
    )
    assert code == 1
    lines = {
        (r["resource"]["name"], r["policy"]): r["source"]["line"]
        for r in json.loads(out)["results"]
        if r["policy"].startswith("model-")
    }
    text = manifest.read_text().splitlines()
    expected = {
        "vllm-args": "args: [",  # --model=... inside the args list
        "tgi-env": "{name: MODEL_ID",
        "sglang-shell": "command: [",  # the sh -c line
        "nested-shell": "command: [",  # the line of the shell inside the shell, a variable's value
        "kserve-multi": '{uri: "hf://microsoft',
        "kserve-storage-key": "storage: {key",
        "modelcar": "image: {reference",
        "ray-llm": "serveConfigV2:",
        "mlflow-alias": 'storageUri: "models:/',
    }
    for name, needle in expected.items():
        got = {line for (n, _), line in lines.items() if n == name}
        assert len(got) == 1, (name, got)
        assert needle in text[got.pop() - 1], name
