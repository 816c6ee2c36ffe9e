"""`policyengine check` on Kustomize folders: rendered with the machine's kubectl, each finding placed at
the file and line of the resource's source document (or at the kustomization file when the tree does not
declare it), hostile trees refused before kubectl runs, and a clear exit 2 without kubectl.

The kustomizations use only what both kustomize v5 and the kustomize v2 embedded in kubectl 1.20
(Debian bookworm's kubernetes-client) understand: ``bases``, ``patchesStrategicMerge``, ``namePrefix``,
``namespace`` and a literal ``configMapGenerator``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import ACME_CONFIG, machine_kubectl, run_cli, run_json, write

BASE_MANIFESTS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: train}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: trainer
spec:
  template:
    spec:
      containers:
      - name: train
        image: registry.example/train:1
        resources:
          limits: {nvidia.com/gpu: 1}
"""
DEPLOYMENT_LINE = 6  # the Deployment's first line in base/app.yaml
KUSTOMIZATION = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
OVERLAY = (
    KUSTOMIZATION
    + """namePrefix: prod-
namespace: ml
bases:
- ../base
patchesStrategicMerge:
- replicas.yaml
"""
)
PATCH = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: trainer}\nspec: {replicas: 2}\n"
CONFIGMAP_POLICY = """
apiVersion: policyengine.io/v1
kind: Policy
metadata: {name: configmaps-owned}
spec:
  match:
    kinds: [{apiGroups: [""], kinds: [ConfigMap]}]
  validations:
    - expression: "has(object.metadata.labels) && 'owner' in object.metadata.labels"
      message: a ConfigMap needs an owner label
"""


@pytest.fixture
def kubectl() -> str:
    return machine_kubectl()


def repo(root: Path) -> Path:
    """A repository (its root marked by .git) with a base and an overlay that patches and prefixes it."""
    (root / ".git").mkdir(parents=True)
    write(root / "base" / "kustomization.yaml", KUSTOMIZATION + "resources:\n- app.yaml\n")
    write(root / "base" / "app.yaml", BASE_MANIFESTS)
    write(root / "overlay" / "kustomization.yaml", OVERLAY)
    write(root / "overlay" / "replicas.yaml", PATCH)
    return root


def results_by_policy(report: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {r["policy"]: r for r in report["results"] if r["outcome"] == "fail"}


def test_an_overlay_finding_points_at_the_base_file_and_line(
    tmp_path: Path, kubectl: str, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    root = repo(tmp_path / "repo")
    code, report = run_json(["check", "--config", ACME_CONFIG, str(root / "overlay")], capsys, monkeypatch)
    assert code == 1, report
    failed = results_by_policy(report)
    assert {"gpu-team-quota", "ai-images-pinned-by-digest"} <= set(failed)
    for result in failed.values():
        assert result["resource"]["name"] == "prod-trainer" and result["resource"]["namespace"] == "ml"
        assert result["source"] == {"file": str(root / "base" / "app.yaml"), "line": DEPLOYMENT_LINE}
    assert "2 GPUs" in failed["gpu-team-quota"]["message"]  # the overlay's patch was applied
    assert report["summary"]["resources"] == 2  # the patch file is no resource of its own


def test_a_generated_object_points_at_the_kustomization_file(
    tmp_path: Path, kubectl: str, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    root = repo(tmp_path / "repo")
    overlay = root / "overlay" / "kustomization.yaml"
    overlay.write_text(OVERLAY + "configMapGenerator:\n- name: flags\n  literals: [fast=true]\n")
    policies = write(tmp_path / "policies" / "p.yaml", CONFIGMAP_POLICY).parent
    args = ["check", str(root / "overlay"), "--no-default-policies", "--policies", str(policies)]
    code, report = run_json(args, capsys, monkeypatch)
    assert code == 1, report
    sources = {r["resource"]["name"]: r["source"] for r in report["results"]}
    assert sources["prod-settings"] == {"file": str(root / "base" / "app.yaml"), "line": 1}
    (generated,) = [name for name in sources if name.startswith("prod-flags")]
    assert sources[generated] == {"file": str(overlay), "line": 1}


def test_without_kubectl_a_kustomization_is_an_input_error(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = repo(tmp_path / "repo")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    code, out, err = run_cli(["check", str(root / "overlay")], capsys, monkeypatch)
    assert code == 2, out
    overlay = root / "overlay"
    assert (
        f"{overlay / 'kustomization.yaml'}:1: read_error: {overlay} is a kustomization and kubectl is not on PATH"
        in err
    )


def test_a_walk_reads_kustomization_folders_raw_unless_asked_to_render_them(
    tmp_path: Path, kubectl: str, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    root = repo(tmp_path / "repo")
    write(root / "plain" / "job.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\n")
    code, report = run_json(["check", str(root)], capsys, monkeypatch)
    names = {r["resource"]["name"] for r in report["results"]}
    assert "trainer" in names and "prod-trainer" not in names  # today's walk: files read as they are
    reasons = {Path(s["path"]).relative_to(root).as_posix(): s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"base/kustomization.yaml", "overlay/kustomization.yaml"}
    assert reasons["base/kustomization.yaml"].startswith("a kustomization (build input, not a manifest")

    code, report = run_json(["check", str(root), "--kustomize"], capsys, monkeypatch)
    assert code == 1, report
    names = {r["resource"]["name"] for r in report["results"]}
    assert "prod-trainer" in names and "trainer" not in names  # the base only through its overlay
    # Rendered: overlay's ConfigMap and Deployment; read: plain/job.yaml. Neither the base nor the patch raw.
    assert report["summary"]["resources"] == 3 and report["summary"]["skippedFiles"] == 0
    code, _, err = run_cli(["check", str(root), "--kustomize", "--verbose"], capsys, monkeypatch)
    assert f"note: rendered {root / 'overlay'} with kubectl kustomize" in err
    assert f"rendered {root / 'base'} " not in err


def test_a_kustomization_reaching_outside_the_repository_is_refused(
    tmp_path: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    root = repo(tmp_path / "repo")
    write(tmp_path / "outside" / "kustomization.yaml", "resources: [secret.yaml]\n")
    write(tmp_path / "outside" / "secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n")
    hostile = write(root / "hostile" / "kustomization.yaml", "bases:\n- ../base\n- ../../outside\n")
    code, _, err = run_cli(["check", str(root / "hostile")], capsys, monkeypatch)
    assert code == 2
    assert f"{hostile}:3: invalid_value: '../../outside' resolves to {tmp_path / 'outside'}, outside" in err
    assert "kubectl" not in err  # refused before anything was rendered

    hostile.write_text("resources:\n- ../../../../../../../../etc/passwd\n")
    code, _, err = run_cli(["check", str(root / "hostile")], capsys, monkeypatch)
    assert (
        code == 2 and f"{hostile}:2: invalid_value: '../../../../../../../../etc/passwd' resolves to" in err
    )


def test_a_kustomization_through_a_link_out_of_the_repository_is_refused(
    tmp_path: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    root = repo(tmp_path / "repo")
    write(tmp_path / "outside" / "kustomization.yaml", "resources: []\n")
    (root / "innocent").symlink_to(tmp_path / "outside")
    write(root / "hostile" / "kustomization.yaml", "bases:\n- ../innocent\n")
    code, _, err = run_cli(["check", str(root / "hostile")], capsys, monkeypatch)
    assert code == 2 and "'../innocent' resolves to" in err and "outside the repository root" in err


def test_kustomization_loops_are_refused(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    a = write(root / "a" / "kustomization.yaml", "bases:\n- ../b\n")
    write(root / "b" / "kustomization.yaml", "namePrefix: x-\nbases:\n- ../a\n")
    code, _, err = run_cli(["check", str(root / "a")], capsys, monkeypatch)
    assert code == 2 and f"{root / 'b' / 'kustomization.yaml'}:3: invalid_value: kustomization loop: " in err

    code, _, err = run_cli(["check", str(root), "--kustomize"], capsys, monkeypatch)
    assert code == 2 and err.count("kustomization loop") == 2  # met from a and from b: two distinct cycles
    assert str(a) in err

    write(root / "self" / "kustomization.yaml", "bases:\n- .\n")
    code, _, err = run_cli(["check", str(root / "self")], capsys, monkeypatch)
    assert code == 2 and "kustomization loop" in err


def test_a_deep_or_large_kustomization_tree_is_refused(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    for level in range(40):
        write(root / f"k{level}" / "kustomization.yaml", f"bases:\n- ../k{level + 1}\n")
    write(root / "k40" / "kustomization.yaml", "resources: []\n")
    code, _, err = run_cli(["check", str(root / "k0")], capsys, monkeypatch)
    assert code == 2 and "kustomizations nested more than 16 deep" in err

    # A diamond ladder, shallow enough for the depth bound: each level uses the next one twice, 2**12
    # kustomizations read if nothing counted them; and one file listed 2000 times.
    for level in range(12):
        write(root / f"d{level}" / "kustomization.yaml", f"bases:\n- ../d{level + 1}\n- ../d{level + 1}/\n")
    write(root / "d12" / "kustomization.yaml", "resources: []\n")
    code, _, err = run_cli(["check", str(root / "d0")], capsys, monkeypatch)
    assert code == 2 and "more than 1000 files read for one kustomization tree" in err

    write(root / "many" / "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    many = write(root / "many" / "kustomization.yaml", "resources:\n" + "- cm.yaml\n" * 2000)
    code, _, err = run_cli(["check", str(root / "many")], capsys, monkeypatch)
    assert code == 2 and f"{many}:1: invalid_value: more than 1000 files read" in err


def test_rendered_output_is_held_to_max_input_size(tmp_path: Path, kubectl: str, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    files = [f"cm{i}.yaml" for i in range(8)]
    for name in files:
        write(
            root / "k" / name,
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name[:-5]}}}\ndata: {{v: '{'x' * 300}'}}\n",
        )
    write(root / "k" / "kustomization.yaml", "resources:\n" + "".join(f"- {n}\n" for n in files))
    code, _, err = run_cli(["check", str(root / "k"), "--max-input-size", "2000"], capsys, monkeypatch)
    assert (
        code == 2 and f"kubectl kustomize {root / 'k'} wrote more than --max-input-size (2000 bytes)" in err
    )


def test_a_failing_render_shows_kubectls_message(tmp_path: Path, kubectl: str, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    broken = write(root / "k" / "kustomization.yaml", "resources:\n- missing.yaml\n")
    code, _, err = run_cli(["check", str(root / "k")], capsys, monkeypatch)
    assert code == 2 and f"{broken}:1: read_error: kubectl kustomize {root / 'k'} failed (exit 1): " in err
    assert "missing.yaml" in err
