"""``policyengine scan --inventory``: parity with ``check``, exceptions that expire, the background switch,
and audit entries with the source background."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from audit import AuditLog, load_signer
from audit.entry import make_entry
from policyengine.engine import Engine
from policyengine.errors import LoadError
from policyengine.gate import check_documents
from policyengine.inventory import from_documents
from policyengine.loader import read_documents
from policyengine.policyset import load_policy_set
from policyengine.scan import background_engine, scan
from tests.helpers import run_cli, write

ROOT = Path(__file__).resolve().parents[3]
GOVERNANCE = ROOT / "examples" / "config-reference" / "governance.yaml"


def inventory_of_examples(tmp_path: Path) -> Path:
    """The example manifests (compliant and violating AI workloads) as one kubectl-style List."""
    docs = [d.data for d in read_documents([str(ROOT / "examples" / "manifests")])]
    docs += [d.data for d in read_documents([str(ROOT / "examples" / "legacy")])]
    return write(tmp_path / "inventory.json", json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))


def per_policy(report: Any, names: set[str]) -> list[set[tuple[str, str, str]]]:
    return [
        {(r.policy, str(r.outcome), r.message) for r in c.decision.results if r.policy in names}
        for c in report.checked
    ]


def test_scan_and_check_of_the_same_objects_give_the_same_results_per_policy(tmp_path: Path) -> None:
    inventory_file = inventory_of_examples(tmp_path)
    policy_set = load_policy_set([], config_paths=[str(GOVERNANCE)])
    docs = read_documents([str(inventory_file)])
    inventory = from_documents(d.data for d in docs)
    now = datetime(2026, 6, 1, tzinfo=UTC)

    checked = check_documents(Engine(policy_set), docs, inventory=inventory, now=now)
    scanned = scan(background_engine(policy_set), docs, inventory=inventory, now=now)

    background = {p.name for p in policy_set.policies if p.background}
    assert len(scanned.checked) == len(checked.checked) > 5
    assert per_policy(scanned, background) == per_policy(checked, background)
    assert any(r.outcome.value == "fail" for c in scanned.checked for r in c.decision.results)
    # The admission-only policy runs at check, never in a scan.
    admission_only = {p.name for p in policy_set.policies if not p.background}
    assert admission_only == {"gpu-dra-admin-access"}
    assert not any(r.policy in admission_only for c in scanned.checked for r in c.decision.results)


def test_scan_and_check_exit_alike(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    inventory_file = str(inventory_of_examples(tmp_path))
    config = ["--config", str(GOVERNANCE)]
    check_code, _, _ = run_cli(
        ["check", inventory_file, "--inventory", inventory_file, *config], capsys, monkeypatch
    )
    scan_code, out, _ = run_cli(["scan", "--inventory", inventory_file, *config], capsys, monkeypatch)
    assert scan_code == check_code == 1
    assert "DENY ai-images-pinned-by-digest" in out


def test_an_expired_exception_turns_excepted_into_fail(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    inventory_file = str(inventory_of_examples(tmp_path))
    exception = (ROOT / "examples" / "exceptions" / "legacy-inference.yaml").read_text()
    results = {}
    for label, expires in (("valid", "2099-01-31T00:00:00Z"), ("expired", "2020-01-31T00:00:00Z")):
        folder = tmp_path / label
        write(folder / "exception.yaml", exception.replace("2099-01-31T00:00:00Z", expires))
        out = tmp_path / f"{label}.json"
        args = ["scan", "--inventory", inventory_file, "--config", str(GOVERNANCE), "--policies", str(folder)]
        run_cli([*args, "--format", "openreports", "--output", str(out)], capsys, monkeypatch)
        (report,) = [
            r for r in json.loads(out.read_text())["items"] if r["metadata"].get("namespace") == "ml-research"
        ]
        results[label] = [
            r
            for r in report["results"]
            if r["policy"] == "ai-images-pinned-by-digest" and r["resources"][0]["name"] == "legacy-chat"
        ]
    (valid,) = results["valid"]
    assert valid["result"] == "skip" and valid["properties"]["exception"] == "legacy-inference"
    (expired,) = results["expired"]
    assert expired["result"] == "fail" and "exception" not in expired["properties"]


POLICY = """
apiVersion: policyengine.io/v1
kind: Policy
metadata:
  name: who-asks
  annotations: {policyengine.io/background: "%s"}
spec:
  validations: [{expression: "request.userInfo.username != ''", message: nobody asked}]
"""


def test_the_background_annotation_keeps_a_policy_to_admission(tmp_path: Path) -> None:
    write(tmp_path / "off" / "p.yaml", POLICY % "false")
    write(tmp_path / "on" / "p.yaml", POLICY % "true")
    (off,) = load_policy_set([str(tmp_path / "off")], include_bundled=False).policies
    (on,) = load_policy_set([str(tmp_path / "on")], include_bundled=False).policies
    assert (off.background, on.background) == (False, True)


def test_a_bad_background_value_is_a_load_error_naming_the_field(tmp_path: Path) -> None:
    write(tmp_path / "bad" / "p.yaml", POLICY % "no")
    with pytest.raises(LoadError) as caught:
        load_policy_set([str(tmp_path / "bad")], include_bundled=False)
    rendered = "\n".join(p.render() for p in caught.value.problems)
    assert "policyengine.io/background" in rendered and "p.yaml" in rendered


def test_every_scanned_decision_is_audited_as_background(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    keys = tmp_path / "keys"
    assert (
        run_cli(
            ["audit", "keygen", "--origin", "scan.example/audit", "--out", str(keys)], capsys, monkeypatch
        )[0]
        == 0
    )
    log = str(tmp_path / "audit.db")
    audit = ["--audit-log", log, "--audit-key", str(keys / "audit.key")]
    pods = write(
        tmp_path / "inv.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: a}\nspec: {containers: [{name: c, image: i}]}\n",
    )
    # A log written before version 2: a version-1 entry, exactly as it was made then.
    log_v1 = AuditLog.open(log, signer=load_signer(str(keys / "audit.key")))
    resource = {"apiVersion": "v1", "kind": "Pod", "namespace": "a", "name": "p"}
    old = {**make_entry(time=datetime(2026, 1, 1, tzinfo=UTC), source="ci", uid="u", operation="CREATE",
                        resource=resource, verdict="allowed"), "version": 1}  # fmt: skip
    log_v1.submit(old).result()
    log_v1.close()
    code, _, err = run_cli(
        ["scan", "--inventory", str(pods), "--no-default-policies", *audit], capsys, monkeypatch
    )
    assert code == 0, err

    code, out, _ = run_cli(["audit", "query", "--audit-log", log, "--format", "json"], capsys, monkeypatch)
    entries = json.loads(out)
    entries = entries if isinstance(entries, list) else entries["entries"]
    assert [e["source"] for e in entries].count("background") == 2  # the namespace and the pod
    assert {e["version"] for e in entries if e["source"] == "background"} == {2}
    assert [e["version"] for e in entries if e["source"] == "ci"] == [1]
    code, out, _ = run_cli(
        ["audit", "query", "--audit-log", log, "--source", "background"], capsys, monkeypatch
    )
    assert code == 0
    code, _, err = run_cli(
        ["audit", "verify", "--audit-log", log, "--public-key", str(keys / "audit.pub")], capsys, monkeypatch
    )
    assert code == 0, err


def test_kinds_selects_by_kind_plural_or_group_qualified_name(tmp_path: Path) -> None:
    from policyengine.scan import documents_of, select_kinds

    docs = documents_of(
        [
            {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": "a"}},
            {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "b"}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "c"}},
        ]
    )
    names = {
        k: [d.name for d in select_kinds(docs, [k])]
        for k in ("trainjob", "rayclusters.ray.io", "pods", "Job")
    }
    assert names == {"trainjob": ["a"], "rayclusters.ray.io": ["b"], "pods": ["c"], "Job": []}
    assert len(select_kinds(docs, [])) == 3
