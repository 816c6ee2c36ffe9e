"""policyengine: policy-as-code governance for AI workloads on Kubernetes.

The public surface is small and pinned by tests/unit/test_public_api.py (``__all__`` is exactly the
public names defined here). Load a policy set, build an Engine from it, evaluate Requests into
Decisions::

    import policyengine

    engine = policyengine.Engine(policyengine.load_policy_set(["my-policies/"]))  # + the shipped packs
    request = policyengine.request_from_manifest(manifest)  # or request_from_admission(review["request"])
    decision = engine.evaluate(request, inventory=policyengine.Inventory(), now=datetime.now(UTC))

``Engine(policy_set)`` binds the ``workload`` and ``inventory`` views the packs read (and the
attestation store the GovernanceConfig names), exactly as ``check``, ``test`` and ``serve`` do.
A request is denied when any result ``denies`` (``Decision.denials``). Nothing is built at import time.
"""

from __future__ import annotations

import typing as _typing

from policyengine.errors import LoadError, PolicyEngineError, Problem, RequestError, UsageError

if _typing.TYPE_CHECKING:
    from policyengine.codec import request_from_admission, request_from_manifest
    from policyengine.engine import Engine
    from policyengine.model import (
        Action,
        Decision,
        Inventory,
        Outcome,
        Policy,
        PolicyException,
        Request,
        Result,
        SourceRef,
    )
    from policyengine.policyset import PolicySet, build_policy_set, load_policy_set

# Where each name of the public surface is defined. They are imported when first asked for, so that a
# submodule (``policyengine.loader``, the CLI) can be imported without the engine and the CEL stack:
# ``check`` starts reading manifests before it imports those.
_LAZY = {
    **dict.fromkeys(("request_from_admission", "request_from_manifest"), "policyengine.codec"),
    "Engine": "policyengine.engine",
    **dict.fromkeys(
        ("Action", "Decision", "Inventory", "Outcome", "Policy", "PolicyException", "Request", "Result"),
        "policyengine.model",
    ),
    "SourceRef": "policyengine.model",
    **dict.fromkeys(("PolicySet", "build_policy_set", "load_policy_set"), "policyengine.policyset"),
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'policyengine' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # asked for once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"

__all__ = [
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
