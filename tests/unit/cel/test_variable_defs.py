"""A policy's variables are made into ``VariableDefs`` once, with the engine: the by-name table every
activation reads is built once and shared, and the variables behave exactly as given as a plain tuple."""

from __future__ import annotations

import pytest

from policyengine.cel import BACKENDS, CelEvalError, get_backend
from policyengine.cel.variables import VariableDefs, definitions


@pytest.mark.parametrize("name", BACKENDS)
def test_variable_defs_behave_as_a_plain_tuple_and_share_their_table(name: str) -> None:
    backend = get_backend(name)
    plain = (
        ("double", backend.compile("object.n * 2"), None),
        ("broken", backend.compile("object.missing"), None),
        ("limit", None, 10),
        ("more", backend.compile("variables.double + variables.limit"), None),
    )
    shared = VariableDefs(plain)
    assert shared == plain
    assert definitions(shared) is definitions(shared)  # built once
    assert definitions(shared) == definitions(plain)
    base = backend.bind({"object": {"n": 4}})
    for defs in (plain, shared):
        for _ in range(2):  # two activations from one VariableDefs do not share values
            activation = base.extend({"params": None}, defs)
            assert backend.compile("variables.more").evaluate(activation) == 18
            assert backend.compile("has(variables.limit)").evaluate(activation) is True
            with pytest.raises(CelEvalError):
                backend.compile("variables.broken").evaluate(activation)
            with pytest.raises(CelEvalError):
                backend.compile("variables.absent").evaluate(activation)
