"""The package's public surface is deliberate: adding or removing a name is a visible change, and what
it offers is enough to run the shipped packs."""

from __future__ import annotations
import __future__

import subprocess
import sys
from datetime import UTC, datetime
from types import ModuleType

import policyengine
from tests.helpers import ACME_CONFIG

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_the_package_imports_none_of_the_engine_until_asked() -> None:
    """Importing a submodule (the loader, the CLI) does not import the engine and the CEL stack behind
    the package's names; asking for a name does."""
    code = (
        "import sys, policyengine.loader, policyengine.cli.check as c; "
        "print(sorted(m for m in ('policyengine.engine', 'policyengine.policyset', 'celpy') if m in sys.modules)); "
        "import policyengine; policyengine.Engine; print('policyengine.engine' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split("\n")[:2] == ["[]", "True"], out


def test_exported_members() -> None:
    assert sorted(policyengine.__all__) == [
        "Action",
        "Decision",
        "Engine",
        "Inventory",
        "LoadError",
        "Outcome",
        "Policy",
        "PolicyEngineError",
        "PolicyException",
        "PolicySet",
        "Problem",
        "Request",
        "RequestError",
        "Result",
        "SourceRef",
        "UsageError",
        "__version__",
        "build_policy_set",
        "load_policy_set",
        "request_from_admission",
        "request_from_manifest",
    ]
    for name in policyengine.__all__:
        assert hasattr(policyengine, name), name


def test_all_public_names_are_exported() -> None:
    """As httpx pins its surface: ``__all__`` is exactly the package's public names, sorted (the order
    ruff keeps). Submodules (bound as attributes once imported) and the ``__future__`` feature are not
    names it defines. The names are imported when first asked for (``check`` starts before the engine
    is imported), so each is asked for first."""
    for name in policyengine.__all__:
        getattr(policyengine, name)
    public = [
        name
        for name, value in vars(policyengine).items()
        if (not name.startswith("_") or name == "__version__")
        and not isinstance(value, ModuleType)
        and value is not __future__.annotations
    ]
    assert policyengine.__all__ == sorted(public)


GPU_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "trainer", "namespace": "sandbox"},
    "spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "2"}}}]},
}


def test_a_shipped_pack_runs_through_the_public_api_alone() -> None:
    """The documented entry point runs the packs: the bundled policy set, the Engine built from it, a
    manifest's request. Team default has a GPU quota of 0 in the tests' organisation config, so the pod
    is denied by the quota rule, and no pack policy fails to evaluate."""
    engine = policyengine.Engine(policyengine.load_policy_set([], config_paths=[ACME_CONFIG]))
    decision = engine.evaluate(policyengine.request_from_manifest(GPU_POD), now=NOW)

    errors = [r for r in decision.results if r.outcome is policyengine.Outcome.ERROR]
    assert errors == []
    assert decision.verdict == "denied"
    assert "gpu-team-quota" in {r.policy for r in decision.denials}

    wire = {
        "uid": "u-1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE",
        "namespace": "sandbox",
        "name": "trainer",
        "object": GPU_POD,
    }
    admitted = engine.evaluate(policyengine.request_from_admission(wire), now=NOW)
    assert [(r.policy, r.outcome) for r in admitted.results] == [
        (r.policy, r.outcome) for r in decision.results
    ]
