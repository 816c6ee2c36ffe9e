"""policyengine: policy-as-code governance for AI workloads on Kubernetes.

The public surface is small and pinned by tests/unit/test_public_api.py: load a policy set, build an
Engine, evaluate Requests into Decisions. Nothing is built at import time.
"""

from __future__ import annotations

from policyengine.engine import Engine
from policyengine.errors import LoadError, PolicyEngineError, Problem, UsageError
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
    "Result",
    "SourceRef",
    "UsageError",
    "__version__",
    "build_policy_set",
    "load_policy_set",
]
