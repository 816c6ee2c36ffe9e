"""`check` keeps of each decided manifest only what its reports read (``policyengine.compact``): every
report is byte for byte the one made from the full documents and decisions, while the report holds no
parsed object, no position but those its findings name, and one copy of each distinct result."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from policyengine.cel import get_backend
from policyengine.cli import outputs
from policyengine.cli.check import start_reading
from policyengine.engine import Engine
from policyengine.expressions import Compiler
from policyengine.gate import CheckReport, check_documents, parse_field_path
from policyengine.policyset import load_policy_set
from policyengine.reports import github
from tests.helpers import gpu_workload, write

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compact")
    for i in range(12):
        write(root / f"team-{i % 3}" / f"serve-{i:02d}.yaml", gpu_workload(i))
    write(root / "many.yaml", "---\n".join(gpu_workload(i) for i in range(12, 18)))
    namespace = (
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-1, labels: {policyengine.io/team: nlp}}\n"
    )
    write(root / "namespaces.yaml", namespace)
    for example in (ROOT / "examples" / "manifests").glob("*.yaml"):
        write(root / "examples" / example.name, example.read_text(encoding="utf-8"))
    return root


def _report(tree: Path, *, compact: bool, jobs: int = 1) -> CheckReport:
    policy_set = load_policy_set(
        [], config_paths=[str(ROOT / "examples" / "governance.yaml")], compiler=Compiler(get_backend("fast"))
    )
    manifests = start_reading([str(tree)], None).result()  # type: ignore[arg-type]
    return check_documents(
        Engine(policy_set), manifests.documents, now=NOW, skipped_files=manifests.skipped, compact=compact
    )


@pytest.mark.parametrize("fmt", outputs.FORMATS)
def test_compact_reports_are_byte_identical(tree: Path, fmt: str) -> None:
    full, compact = _report(tree, compact=False), _report(tree, compact=True)
    assert full.summary().failed > 0 and full.summary().passed > 0  # findings and passes both rendered
    for strict in (False, True):
        expected = outputs.render(full, fmt, strict=strict, color=False, base=str(tree))
        assert outputs.render(compact, fmt, strict=strict, color=False, base=str(tree)) == expected
        assert full.exit_code(strict=strict) == compact.exit_code(strict=strict)
    assert github.summary(compact, base=str(tree), strict=False) == github.summary(
        full, base=str(tree), strict=False
    )


def test_compact_report_keeps_no_parsed_object(tree: Path) -> None:
    report = _report(tree, compact=True)
    results = [r for c in report.checked for r in c.decision.results]
    assert len(report.checked) > 20 and results
    for checked in report.checked:
        assert checked.decision.request.object is None
        assert set(checked.document.data) <= {"apiVersion", "kind", "metadata"}
        assert set(checked.document.data.get("metadata", {})) <= {"name", "namespace"}
        located = {parse_field_path(r.field_path) for r in checked.decision.results if r.field_path}
        assert len(checked.document.positions) <= len(located)
    # Equal results of different resources are one object: the kept results grow with what differs.
    assert len({id(r) for r in results}) == len(set(results)) < len(results)


def test_kept_resources_share_what_they_hold_alike(tree: Path) -> None:
    """A large check keeps every resource to the end: what resources hold alike is held once (the user,
    each kind and resource, no audit annotations, each parked document's identity fields)."""
    policy_set = load_policy_set(
        [], config_paths=[str(ROOT / "examples" / "governance.yaml")], compiler=Compiler(get_backend("fast"))
    )
    manifests = start_reading([str(tree)], None, park=True).result()  # type: ignore[arg-type]
    report = check_documents(
        Engine(policy_set), manifests.documents, now=NOW, skipped_files=manifests.skipped, compact=True
    )
    decisions = [c.decision for c in report.checked]
    assert len(decisions) > 20
    assert len({id(d.request.user_info) for d in decisions}) == 1
    assert len({id(d.request.kind) for d in decisions}) == len({d.request.kind for d in decisions})
    assert len({id(d.request.resource) for d in decisions}) == len({d.request.resource for d in decisions})
    assert len({id(d.audit_annotations) for d in decisions if not d.audit_annotations}) == 1
    source = {(d.file, d.index): d for d in manifests.documents}
    alike = [c for c in report.checked if c.document.data == source[c.document.file, c.document.index].data]
    assert alike and all(c.document.data is source[c.document.file, c.document.index].data for c in alike)
