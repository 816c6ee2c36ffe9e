"""Error messages are short and never carry the request."""

from __future__ import annotations

import pytest

from policyengine.cel import BACKENDS, CelBackend, CelEvalError, get_backend
from policyengine.cel.reference import trim_message

SECRET = "s3cr3t-token-value"


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> CelBackend:
    return get_backend(request.param)


@pytest.mark.parametrize(
    "expr",
    [
        "object.missing == 1",
        "undefinedVariable == 1",
        "object.spec.token + 1 == 2",
        "object.spec.items[10] == 1",
        "int(object.spec.token) == 1",
        "object.spec.token.matches('[' + object.spec.token)",
        "ip(object.spec.token) == ip('::1')",
        "url('../' + object.spec.token) == url('/')",
        "semver(object.spec.token) == semver('1.0.0')",
        "quantity(object.spec.token) == quantity('1')",
        "object.spec.missing.all(x, x)",
        "request.userInfo.groups.min() == 'x'",
    ],
)
def test_eval_error_message_never_contains_the_request(backend: CelBackend, expr: str) -> None:
    activation = backend.bind(
        {
            "object": {"spec": {"token": SECRET, "items": [1]}, "metadata": {"name": SECRET}},
            "request": {"userInfo": {"username": SECRET, "groups": []}},
        }
    )
    with pytest.raises(CelEvalError) as caught:
        backend.compile(expr).evaluate(activation)
    message = str(caught.value)
    assert SECRET not in message
    assert 0 < len(message) <= 200


def test_trim_message_drops_activation_dumps_and_long_tails() -> None:
    dumped = f"undeclared reference to 'x' (in activation 'Activation(vars={{'object': '{SECRET}'}})')"
    assert trim_message(dumped) == "undeclared reference to 'x'"
    assert len(trim_message("y" * 5000)) == 200
    assert trim_message("first line\nsecond line") == "first line"
    assert trim_message("") == "evaluation error"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # cel-go converts with fmt.Sprintf("%g"): shortest digits, exponent form from 1e6 up (and below 1e-4).
        ("string(123456.0)", "123456"),
        ("string(999999.5)", "999999.5"),
        ("string(1e6)", "1e+06"),
        ("string(quantity('3Gi').asApproximateFloat())", "3.221225472e+09"),
        ("string(-1.5e7)", "-1.5e+07"),
        ("string(0.0001)", "0.0001"),
        ("string(0.00001)", "1e-05"),
        ("'%s'.format([1e21])", "1e+21"),
    ],
)
def test_string_of_a_double_is_go_percent_g(backend: CelBackend, expr: str, expected: str) -> None:
    assert backend.compile(expr).evaluate(backend.bind({})) == expected
