"""`policyengine check` end to end, in-process: exit codes, formats, stdin, lines, config, inventory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_cli, run_json, write

POLICIES = """
apiVersion: policyengine.io/v1
kind: Policy
metadata:
  name: replica-cap
  annotations:
    policyengine.io/category: gpu-quotas
    policyengine.io/severity: high
    policyengine.io/remediation: Lower spec.replicas to the team's cap.
spec:
  match:
    kinds: [{apiGroups: [apps], kinds: [Deployment]}]
  variables:
    - name: cap
      expression: "params.caps.replicas"
  validations:
    - expression: "object.spec.replicas <= variables.cap"
      messageExpression: "'replicas ' + string(object.spec.replicas) + ' exceed the cap of ' + string(variables.cap)"
      fieldPath: spec.replicas
---
apiVersion: policyengine.io/v1
kind: Policy
metadata:
  name: memory-limit
spec:
  validationActions: [Warn]
  match:
    kinds: [{apiGroups: [apps], kinds: [Deployment]}]
  validations:
    - expression: >-
        object.spec.template.spec.containers.all(c,
          has(c.resources) && has(c.resources.limits) && has(c.resources.limits.memory) &&
          quantity(c.resources.limits.memory).compareTo(quantity('64Gi')) <= 0)
      message: containers need a memory limit of at most 64Gi
---
apiVersion: policyengine.io/v1
kind: Policy
metadata:
  name: prod-namespaces-labelled
spec:
  matchConstraints:
    resourceRules:
      - apiGroups: ["apps"]
        apiVersions: ["v1"]
        resources: ["deployments"]
        operations: ["CREATE", "UPDATE"]
    namespaceSelector:
      matchLabels: {env: prod}
  validations:
    - expression: "has(object.metadata.labels) && 'owner' in object.metadata.labels"
      message: deployments in prod namespaces need an owner label
---
apiVersion: policyengine.io/v1
kind: GovernanceConfig
metadata: {name: defaults}
spec:
  caps: {replicas: 4}
"""


def deployment(
    name: str, replicas: int, memory: str = "1Gi", namespace: str = "team-a", labels: str = "{}"
) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
  labels: {labels}
spec:
  replicas: {replicas}
  template:
    spec:
      containers:
        - name: main
          image: registry.example/app@sha256:{"a" * 64}
          resources:
            limits: {{memory: {memory}}}
"""


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    return write(tmp_path / "policies" / "p.yaml", POLICIES).parent


def base(policies: Path) -> list[str]:
    return ["check", "--no-default-policies", "--policies", str(policies)]


def test_clean_manifests_exit_0(tmp_path: Path, policies: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    m = write(tmp_path / "m" / "ok.yaml", deployment("ok", 2))
    code, out, err = run_cli([*base(policies), str(m)], capsys, monkeypatch)
    assert code == 0, err
    assert out.splitlines()[-1].startswith("PASS: 1 resources")


def test_deny_exits_1_and_points_at_the_field_line_of_a_later_document(
    tmp_path: Path,
    policies: Path,
    capsys,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    m = write(tmp_path / "m" / "multi.yaml", deployment("ok", 2) + "---\n" + deployment("big", 9))
    code, report = run_json([*base(policies), str(m)], capsys, monkeypatch)
    assert code == 1
    (result,) = report["results"]
    assert result["policy"] == "replica-cap" and result["action"] == "deny" and result["outcome"] == "fail"
    assert result["message"] == "replicas 9 exceed the cap of 4"
    assert result["resource"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "namespace": "team-a",
        "name": "big",
    }
    assert result["category"] == "gpu-quotas"
    # The second document starts on line 17; its spec.replicas is 7 lines further down.
    assert result["source"] == {"file": str(m), "line": 24, "column": 3}
    assert report["summary"]["failed"] == 1 and report["summary"]["exitCode"] == 1


def test_warnings_pass_unless_strict(tmp_path: Path, policies: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    m = write(tmp_path / "m.yaml", deployment("greedy", 2, memory="128Gi"))
    code, report = run_json([*base(policies), str(m)], capsys, monkeypatch)
    assert code == 0
    assert [(r["policy"], r["action"]) for r in report["results"]] == [("memory-limit", "warn")]
    code, _ = run_json([*base(policies), "--strict", str(m)], capsys, monkeypatch)
    assert code == 1


def test_stdin(policies: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    code, report = run_json([*base(policies), "-"], capsys, monkeypatch, stdin=deployment("s", 5))
    assert code == 1
    assert report["results"][0]["source"]["file"] == "<stdin>"
    assert report["results"][0]["source"]["line"] == 8


def test_config_file_overrides_the_policy_directory_config(
    tmp_path: Path, policies: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    cfg = write(
        tmp_path / "cfg.yaml",
        "apiVersion: policyengine.io/v1\nkind: GovernanceConfig\nmetadata: {name: big}\nspec:\n  caps: {replicas: 16}\n",
    )
    m = write(tmp_path / "m.yaml", deployment("big", 9))
    code, _ = run_json([*base(policies), "--config", str(cfg), str(m)], capsys, monkeypatch)
    assert code == 0


def test_inventory_namespaces_feed_namespace_selectors(
    tmp_path: Path, policies: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    m = write(tmp_path / "m.yaml", deployment("web", 1, namespace="shop"))
    inv = write(
        tmp_path / "inv.yaml",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: shop, labels: {env: prod}}\n",
    )
    code, report = run_json([*base(policies), "--inventory", str(inv), str(m)], capsys, monkeypatch)
    assert code == 1 and [r["policy"] for r in report["results"]] == ["prod-namespaces-labelled"]
    # Without the inventory the namespace is unknown: it has no labels, so the selector does not match.
    code, report = run_json([*base(policies), str(m)], capsys, monkeypatch)
    assert code == 0
    # A Namespace among the manifests themselves counts too.
    ns = write(
        tmp_path / "ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {env: prod}}\n"
    )
    code, _ = run_json([*base(policies), str(ns), str(m)], capsys, monkeypatch)
    assert code == 1


NOT_IN_KUBE_SYSTEM = """
apiVersion: policyengine.io/v1
kind: Policy
metadata: {name: outside-kube-system}
spec:
  matchConstraints:
    resourceRules:
      - {apiGroups: [apps], apiVersions: [v1], resources: [deployments], operations: [CREATE]}
      - {apiGroups: [""], apiVersions: [v1], resources: [namespaces], operations: [CREATE]}
    namespaceSelector:
      matchExpressions:
        - {key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system]}
  validations:
    - expression: "false"
      message: only kube-system may run this
"""


def test_namespaces_carry_the_name_label_the_api_server_sets(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # kube-apiserver labels every namespace kubernetes.io/metadata.name=<name>: a namespace known only by
    # name, one from the manifests and one from an --inventory written by hand all carry it, and so does
    # a Namespace under review (the selector then reads its own labels).
    pol = write(tmp_path / "p" / "p.yaml", NOT_IN_KUBE_SYSTEM).parent
    args = ["check", "--no-default-policies", "--policies", str(pol)]
    m = write(tmp_path / "m.yaml", deployment("sys", 1, namespace="kube-system"))
    code, report = run_json([*args, str(m)], capsys, monkeypatch)
    assert code == 0, report["results"]
    ns = write(tmp_path / "ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-system}\n")
    code, report = run_json([*args, str(ns), str(m)], capsys, monkeypatch)
    assert code == 0, report["results"]  # neither the Namespace nor the Deployment in it is selected
    code, report = run_json([*args, "--inventory", str(ns), str(m)], capsys, monkeypatch)
    assert code == 0, report["results"]
    other = write(tmp_path / "o.yaml", deployment("app", 1, namespace="apps"))
    code, report = run_json([*args, "--inventory", str(ns), str(other)], capsys, monkeypatch)
    assert code == 1


def test_broken_policy_exits_2_and_names_file_and_line(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bad = write(tmp_path / "bad" / "p.yaml", POLICIES.replace("<= variables.cap", "<= = variables.cap"))
    m = write(tmp_path / "m.yaml", deployment("x", 1))
    code, out, err = run_cli(
        ["check", "--no-default-policies", "--policies", str(bad.parent), str(m)], capsys, monkeypatch
    )
    assert code == 2 and out == ""
    assert f"{bad}:16: cel_compile:" in err and "spec.validations[0].expression" in err
    assert "nothing was evaluated" in err


def test_broken_manifest_exits_2(tmp_path: Path, policies: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    m = write(tmp_path / "m.yaml", deployment("x", 1) + "---\nkind: [oops\n")
    code, _, err = run_cli([*base(policies), str(m)], capsys, monkeypatch)
    assert code == 2 and "yaml_syntax" in err and str(m) in err
    m2 = write(tmp_path / "m2.yaml", "just: a mapping\n")
    code, _, err = run_cli([*base(policies), str(m2)], capsys, monkeypatch)
    assert code == 2 and f"{m2}:1: not_an_object" in err


def test_a_directory_without_manifests_exits_2(tmp_path: Path, policies: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # A wrong path must not turn the gate green: nothing would have been checked.
    empty = tmp_path / "charts"
    write(empty / "templates" / "deploy.tpl", "kind: {{ .Values.kind }}\n")
    code, out, err = run_cli([*base(policies), str(empty)], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert f"{empty}:1: file_not_found: no .yaml, .yml or .json manifests in this directory" in err


def test_a_directory_whose_only_file_is_broken_names_the_file_not_an_empty_directory(
    tmp_path: Path, policies: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # The directory holds a manifest file; saying it holds none would send the reader looking elsewhere.
    folder = tmp_path / "manifests"
    bad = write(folder / "pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec: [\n")
    code, out, err = run_cli([*base(policies), str(folder)], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert f"{bad}:" in err and "yaml_syntax" in err
    assert "no .yaml, .yml or .json manifests" not in err and "file_not_found" not in err


def test_wrongly_typed_metadata_exits_2_naming_the_field(
    tmp_path: Path, policies: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # kube-apiserver rejects these before any admission webhook runs: they are input errors, not verdicts.
    m = write(
        tmp_path / "m.yaml",
        deployment("a", 1, labels="{version: 1.0}")
        + "---\napiVersion: v1\nkind: Pod\nmetadata: [oops]\n"
        + "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {policyengine.io/datasets: 5}\n",
    )
    code, out, err = run_cli([*base(policies), str(m)], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert (
        f"{m}:6: schema_invalid: label 'version' must be a string, not 1.0; quote it (at metadata.labels.version)"
        in err
    )
    assert f"{m}:19: schema_invalid: metadata must be a mapping (at metadata)" in err
    assert f"{m}:25: schema_invalid: annotation 'policyengine.io/datasets' must be a string" in err


def test_usage_errors_exit_2(tmp_path: Path, policies: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert run_cli([*base(policies)], capsys, monkeypatch)[0] == 2
    assert run_cli([*base(policies), "--format", "yaml", "x"], capsys, monkeypatch)[0] == 2
    code, _, err = run_cli([*base(policies), str(tmp_path / "missing.yaml")], capsys, monkeypatch)
    assert code == 2 and "file_not_found" in err


def test_directories_are_walked_recursively(tmp_path: Path, policies: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path / "repo" / "a" / "one.yaml", deployment("one", 1))
    write(tmp_path / "repo" / "b" / "c" / "two.yml", deployment("two", 8))
    write(tmp_path / "repo" / "README.md", "not a manifest")
    code, report = run_json([*base(policies), str(tmp_path / "repo")], capsys, monkeypatch)
    assert code == 1 and report["summary"]["resources"] == 2
    assert report["results"][0]["source"]["file"].endswith("two.yml")


def test_text_report_groups_by_file_and_shows_remediation(
    tmp_path: Path, policies: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    m = write(tmp_path / "m.yaml", deployment("big", 9))
    code, out, _ = run_cli([*base(policies), "--color", "never", str(m)], capsys, monkeypatch)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == str(m)
    assert lines[1].strip().startswith("Deployment team-a/big")
    assert f"DENY replica-cap: replicas 9 exceed the cap of 4 [{m}:8]" in out
    assert "fix: Lower spec.replicas to the team's cap." in out
    assert lines[-1].startswith("FAIL: 1 resources")


def test_output_file(tmp_path: Path, policies: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    m = write(tmp_path / "m.yaml", deployment("big", 9))
    out_file = tmp_path / "report.json"
    code, out, _ = run_cli(
        [*base(policies), "--format", "json", "--output", str(out_file), str(m)], capsys, monkeypatch
    )
    assert code == 1 and out == "" and '"replica-cap"' in out_file.read_text()


def test_the_installed_command_runs(tmp_path: Path, policies: Path) -> None:
    m = write(tmp_path / "m.yaml", deployment("big", 9))
    proc = subprocess.run(
        [sys.executable, "-m", "policyengine", *base(policies), str(m)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "replica-cap" in proc.stdout
