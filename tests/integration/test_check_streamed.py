"""`check` on a large tree holds each manifest packed until it is evaluated, keeps only what its reports
read, and writes every report as it makes it: the output is byte for byte the report rendered whole from
the full documents and decisions (one process or several), and its memory grows with the tree by a
bounded amount per manifest, a large List in one file included."""

from __future__ import annotations

import gc
import json
import os
import tracemalloc
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from policyengine.cel import get_backend
from policyengine.cli import main, outputs
from policyengine.cli.check import start_reading
from policyengine.engine import Engine
from policyengine.expressions import Compiler
from policyengine.gate import CheckReport, check_documents
from policyengine.policyset import load_policy_set
from policyengine.reports import github, junit, sarif
from policyengine.reports import json as json_report
from tests.helpers import gpu_workload, write

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "examples" / "governance.yaml")
NOW = datetime(2026, 3, 1, tzinfo=UTC)
GENERATED = 2000  # past fanout.MIN_PARALLEL: --jobs 2 forks


def _tree(root: Path, count: int) -> Path:
    for i in range(count):
        write(
            root / f"team-{i % 7}" / f"serve-{i:05d}.yaml",
            gpu_workload(i, ("Deployment", "StatefulSet"), teams=7),
        )
    write(root / "notes.yaml", "title: not a manifest\n")  # a skipped file: in every report
    return root


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tree(tmp_path_factory.mktemp("streamed"), GENERATED)


def _whole(tree: Path) -> CheckReport:
    """The report as check made it before: every document read and kept whole, in one process."""
    policy_set = load_policy_set([], config_paths=[CONFIG], compiler=Compiler(get_backend("fast")))
    manifests = start_reading([str(tree)], None).result()  # type: ignore[arg-type]
    assert not any(type(d).__name__ == "ParkedDocument" for d in manifests.documents)
    return check_documents(Engine(policy_set), manifests.documents, now=NOW, skipped_files=manifests.skipped)


def _rendered_whole(report: CheckReport, fmt: str, base: str) -> str:
    """Each report built as one value and serialised at once, as check wrote it before."""
    if fmt == "json":
        return json.dumps(json_report.report_dict(report), indent=2) + "\n"
    if fmt == "sarif":
        return json.dumps(sarif.report_dict(report, base=base), indent=2) + "\n"
    if fmt == "junit":
        root = junit.report_element(report, base=base)
        ET.indent(root)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            + junit.xml_text(ET.tostring(root, encoding="unicode"))
            + "\n"
        )
    return outputs.render(report, fmt, strict=False, color=False, base=base)


def _check_argv(tree: Path, jobs: int) -> list[str]:
    """``check`` on ``tree`` with the example config alone, in ``jobs`` processes."""
    return ["check", str(tree), "--config", CONFIG, "--no-config-file", "--jobs", str(jobs)]


def _cli(tree: Path, out: Path, jobs: int) -> int:
    argv = [*_check_argv(tree, jobs), "--color", "never"]
    for fmt in outputs.FORMATS:
        argv += ["--format", fmt, "--output", str(out / fmt)]
    return main(argv)


def _compare(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    whole = _whole(tree)
    base = os.getcwd()
    expected = {fmt: _rendered_whole(whole, fmt, base) for fmt in outputs.FORMATS}
    expected_summary = github.summary(whole, base=base, strict=False)
    assert whole.summary().failed > 0 and whole.summary().passed > 0
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        out.mkdir()
        (tmp_path / "summary.md").unlink(missing_ok=True)
        assert _cli(tree, out, jobs) == whole.exit_code()
        for fmt in outputs.FORMATS:
            assert (out / fmt).read_text(encoding="utf-8") == expected[fmt], (fmt, jobs)
        assert (tmp_path / "summary.md").read_text(encoding="utf-8") == expected_summary


def test_reports_are_byte_identical_on_a_generated_tree(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _compare(generated, tmp_path, monkeypatch)


def test_reports_are_byte_identical_on_the_upstream_corpus(
    shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _compare(shared / "corpus" / "upstream", tmp_path, monkeypatch)


def _traced_peak(tree: Path, out: Path) -> int:
    """The most memory Python held at once while ``check`` ran in this process (bytes, tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        assert main([*_check_argv(tree, 1), "--format", "json", "--output", str(out)]) == 1
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_grows_by_a_bounded_amount_per_manifest(tmp_path: Path) -> None:
    small, large = _tree(tmp_path / "small", 150), _tree(tmp_path / "large", 1500)
    _traced_peak(small, tmp_path / "warm.json")  # imports and caches made once, outside the figures
    peak_small, peak_large = (
        _traced_peak(small, tmp_path / "s.json"),
        _traced_peak(large, tmp_path / "l.json"),
    )
    per_manifest = (peak_large - peak_small) / (1500 - 150)
    # Per manifest, not a ratio of totals: the interpreter and the policy set are outside tracemalloc's
    # figures here (made by the warm-up). Before: some 17 KB a manifest (its parsed object, every field's
    # position, the whole report at once); now some 5 KB: the packed object, what the report reads.
    assert per_manifest < 8 * 1024, per_manifest


@pytest.mark.parametrize("fmt", outputs.FORMATS)
def test_writing_a_report_holds_one_resource_at_a_time(generated: Path, tmp_path: Path, fmt: str) -> None:
    """Hostile to a writer that renders the whole report first: thousands of resources with findings.
    What writing holds at once is bounded by one resource's entries, not by the report's size."""
    policy_set = load_policy_set([], config_paths=[CONFIG], compiler=Compiler(get_backend("fast")))
    manifests = start_reading([str(generated)], None, park=True).result()  # type: ignore[arg-type]
    report = check_documents(
        Engine(policy_set), manifests.documents, now=NOW, skipped_files=manifests.skipped, compact=True
    )
    out = tmp_path / "report"
    spec = outputs.ReportSpec(fmt, str(out))
    outputs.write_reports(report, [spec], strict=False, color="never", env={}, base=os.getcwd())  # warm-up
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        outputs.write_reports(report, [spec], strict=False, color="never", env={}, base=os.getcwd())
        held = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    size = out.stat().st_size
    assert size > 1 << 20  # a report of megabytes
    assert held < 1 << 20, (fmt, held, size)  # the whole text alone, as before, is more


@pytest.mark.parametrize("fmt", outputs.FORMATS)
def test_writing_a_report_leaves_no_reference_cycles(tmp_path: Path, fmt: str) -> None:
    """What a writer makes it lets go of as it goes: nothing waits for the cycle collector (which a
    run may hold off for thousands of allocations) to be freed, whatever the report's size."""
    tree = _tree(tmp_path / "tree", 40)
    policy_set = load_policy_set([], config_paths=[CONFIG], compiler=Compiler(get_backend("fast")))
    manifests = start_reading([str(tree)], None, park=True).result()  # type: ignore[arg-type]
    report = check_documents(
        Engine(policy_set), manifests.documents, now=NOW, skipped_files=manifests.skipped, compact=True
    )
    spec = outputs.ReportSpec(fmt, str(tmp_path / "report"))
    outputs.write_reports(report, [spec], strict=False, color="never", env={}, base=os.getcwd())  # warm-up
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        outputs.write_reports(report, [spec], strict=False, color="never", env={}, base=os.getcwd())
        assert gc.collect() == 0, fmt
    finally:
        if was_enabled:
            gc.enable()
