"""A request leaves no reference cycles behind: each policy's lazy ``variables`` map refers back to the
bindings it was made with, and the engine ends that cycle once the policy's results are built. Left to
the garbage collector, ~100 objects a request would wait for a collection that walks them again."""

from __future__ import annotations

import gc
from datetime import UTC, datetime
from pathlib import Path

import pytest

from policyengine.cel import get_backend
from policyengine.engine import Engine
from policyengine.expressions import Compiler
from policyengine.gate import request_for
from policyengine.loader import parse_text
from policyengine.policyset import load_policy_set

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("backend", ["fast", "reference"])
def test_deciding_the_example_manifests_leaves_no_garbage_cycles(backend: str) -> None:
    compiler = Compiler(get_backend(backend))
    config = str(ROOT / "examples" / "governance.yaml")
    engine = Engine(load_policy_set([], config_paths=[config], include_bundled=True, compiler=compiler))
    docs = [
        d
        for f in sorted((ROOT / "examples" / "manifests").glob("*.yaml"))
        for d in parse_text(f.read_text(), str(f))
    ]
    requests = [request_for(d) for d in docs]
    assert len(requests) >= 3
    decisions = [engine.evaluate(r, now=NOW) for r in requests]  # warm: generated code, memos
    # Every shipped policy with variables is run on them (their results are decided, not skipped).
    assert any(
        str(r.outcome) in ("pass", "fail") for d in decisions for r in d.results if r.policy.startswith("gpu")
    )
    gc.collect()
    gc.disable()
    try:
        for request in requests:
            engine.evaluate(request, now=NOW)
        left = gc.collect()
    finally:
        gc.enable()
    assert left == 0
