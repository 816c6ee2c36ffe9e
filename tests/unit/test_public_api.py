"""The package's public surface is deliberate: adding or removing a name is a visible change."""

from __future__ import annotations

import policyengine


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
        "Result",
        "SourceRef",
        "UsageError",
        "__version__",
        "build_policy_set",
        "load_policy_set",
    ]
    for name in policyengine.__all__:
        assert hasattr(policyengine, name), name
