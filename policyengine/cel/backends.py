"""Choosing a CEL backend by name: ``fast`` (the default) or ``reference`` (the oracle).

The only module that knows both backends; everything else holds a ``CelBackend`` from the port.
"""

from __future__ import annotations

from policyengine.cel.port import CelBackend

BACKENDS = ("fast", "reference")


def get_backend(name: str = "fast") -> CelBackend:
    """The backend registered under ``name``: ``fast`` (the default: CEL compiled to Python closures
    over the request's plain values) or ``reference`` (cel-python's evaluator, the oracle it is tested
    against)."""
    if name == "reference":
        from policyengine.cel.reference import ReferenceBackend

        return ReferenceBackend()
    if name == "fast":
        from policyengine.cel.fast import FastBackend

        return FastBackend()
    raise ValueError(f"unknown CEL backend {name!r} (known: {', '.join(BACKENDS)})")
