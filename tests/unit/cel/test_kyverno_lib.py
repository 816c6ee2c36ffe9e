"""Kyverno's pure CEL libraries, on both backends, and their bounds on hostile input."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from policyengine.cel import get_backend
from policyengine.cel.lib.kyverno import MAX_DEPTH, MAX_INPUT, MAX_NODES
from policyengine.cel.lib.kyverno_resource import MAX_ITEMS
from policyengine.codec import request_from_manifest
from policyengine.engine import Engine
from policyengine.expressions import Compiler
from policyengine.loader import parse_text
from policyengine.model import Inventory, Outcome
from policyengine.policyset import build_policy_set

POLICY = """
apiVersion: policies.kyverno.io/v1
kind: ValidatingPolicy
metadata: {name: t}
spec:
  matchConstraints:
    resourceRules: [{apiGroups: [''], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}]
  validations:
    - expression: %s
"""


def run(expression: str, backend: str, data: dict[str, str] | None = None) -> tuple[str, str]:
    text = POLICY % ("'" + expression.replace("'", "''") + "'")
    policy_set = build_policy_set(parse_text(text, "p.yaml"), compiler=Compiler(get_backend(backend)))
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": data or {},
    }
    result = Engine(policy_set).evaluate(request_from_manifest(obj), now=datetime.now(UTC)).results[0]
    return result.outcome.value, result.message


BACKENDS = ["fast", "reference"]
TRUE = [
    "json.unmarshal(object.data.a).x[1] == 2",
    'json.marshal({"b": [1, 2]}) == "{\\"b\\":[1,2]}"',
    'yaml.parse(object.data.y).k == "v" && yaml.parse(object.data.y).n == 3',
    'sha256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"',
    'hash.sha256("abc") == sha256("abc")',
    'sha1("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d" && hash.sha1("abc") == sha1("abc")',
    'md5("") == "d41d8cd98f00b204e9800998ecf8427e" && hash.md5("") == md5("")',
    "math.round(1.256, 2) == 1.26 && math.round(1.255, 2) == 1.25 && math.round(-2.5, 0) == -3.0",
    'listObjToMap([{"n": "a"}, {"n": "b"}], [{"v": 1}, {"v": 2}], "n", "v") == {"a": 1, "b": 2}',
    'transform.listObjToMap([{"n": "a"}], [{"v": true}], "n", "v") == {"a": true}',
    'time.toCron(timestamp("2024-03-05T10:20:00Z")) == "20 10 5 3 2"',
    'parseServiceAccount("system:serviceaccount:ns:sa:x") == {"Name": "sa:x", "Namespace": "ns"}',
    'user.parseServiceAccount("alice") == {"Name": "", "Namespace": ""}',
    'time.truncate(timestamp("2024-03-05T10:20:33Z"), duration("1h")) == timestamp("2024-03-05T10:00:00Z")',
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("expression", TRUE)
def test_each_function(expression: str, backend: str) -> None:
    data = {"a": '{"x": [1, 2]}', "y": "k: v\nn: 3\n"}
    assert run(expression, backend, data) == ("pass", "")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("data", "expression", "said"),
    [
        ({"a": "x" * (MAX_INPUT + 1)}, "json.unmarshal(object.data.a) == 1", "over the limit"),
        (
            {"a": "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)},
            "json.unmarshal(object.data.a) == 1",
            "deeper",
        ),
        ({"a": "[" * 100_000}, "json.unmarshal(object.data.a) == 1", "json.unmarshal"),
        ({"a": "[" + "0," * MAX_NODES + "0]"}, "json.unmarshal(object.data.a) == 1", "more than"),
        (
            {
                "a": "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                + "".join(
                    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
                    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
                )
            },
            "yaml.parse(object.data.a) == 1",
            "aliases counted",
        ),
        ({"a": "{"}, "yaml.parse(object.data.a) == 1", "yaml.parse"),
        ({}, 'listObjToMap([{"n": "a"}], [], "n", "v") == {}', "equal length"),
        ({}, 'listObjToMap([{"n": 1}], [{"v": 1}], "n", "v") == {}', "cannot be handled as a string"),
        ({}, "math.round(1.5, 100000) == 1.0", "out of range"),
    ],
)
def test_hostile_input_is_an_error_not_a_crash(
    data: dict[str, str], expression: str, said: str, backend: str
) -> None:
    outcome, message = run(expression, backend, data)
    assert outcome == Outcome.ERROR.value
    assert said in message


def run_with(expression: str, backend: str, inventory: Inventory) -> tuple[str, str]:
    text = POLICY % ("'" + expression.replace("'", "''") + "'")
    policy_set = build_policy_set(parse_text(text, "p.yaml"), compiler=Compiler(get_backend(backend)))
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "team"}}
    decision = Engine(policy_set).evaluate(
        request_from_manifest(obj), inventory=inventory, now=datetime.now(UTC)
    )
    return decision.results[0].outcome.value, decision.results[0].message


def configmap(name: str, ns: str, labels: dict[str, str]) -> dict[str, Any]:
    meta = {"name": name, "namespace": ns, "labels": labels}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": name}}


INVENTORY = Inventory(
    namespaces={"team": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}},
    objects=(configmap("a", "team", {"app": "x"}), configmap("b", "team", {}), configmap("c", "other", {})),
)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "expression",
    [
        'resource.Get("v1", "configmaps", "team", "a").data.k == "a"',
        'size(resource.List("v1", "configmaps", "team").items) == 2',
        'size(resource.List("v1", "configmaps", "").items) == 3',
        'resource.List("v1", "configmaps", "team", {"app": "x"}).items.map(o, o.metadata.name) == ["a"]',
        'resource.Get("v1", "namespaces", "", "team").metadata.name == "team"',
    ],
)
def test_resource_reads_the_inventory(expression: str, backend: str) -> None:
    assert run_with(expression, backend, INVENTORY) == ("pass", "")


@pytest.mark.parametrize("backend", BACKENDS)
def test_resource_get_of_a_missing_object_is_an_error(backend: str) -> None:
    outcome, message = run_with('resource.Get("v1", "configmaps", "team", "zz") == {}', backend, INVENTORY)
    assert outcome == "error" and 'configmaps "zz" not found' in message


@pytest.mark.parametrize("backend", BACKENDS)
def test_resource_list_is_bounded(backend: str) -> None:
    many = Inventory(objects=tuple(configmap(f"m{i}", "team", {}) for i in range(MAX_ITEMS + 1)))
    outcome, message = run_with('size(resource.List("v1", "configmaps", "team").items) > 0', backend, many)
    assert outcome == "error" and f"more than {MAX_ITEMS} objects" in message


def certificate_pem(key: Any) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "ca.example"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ex"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(42)
        .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2027, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("ca.example")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM).decode()


@pytest.mark.parametrize("backend", BACKENDS)
def test_x509_decode_gives_kyvernos_certificate_fields(backend: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = certificate_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    expression = (
        "x509.decode(object.data.pem).IsCA && x509.decode(object.data.pem).MaxPathLen == -1"
        " && x509.decode(object.data.pem).Issuer.CommonName == 'ca.example'"
        " && x509.decode(object.data.pem).Issuer.Organization == ['Ex']"
        " && x509.decode(object.data.pem).DNSNames == ['ca.example']"
        " && x509.decode(object.data.pem).NotAfter == '2027-01-01T00:00:00Z'"
        " && x509.decode(object.data.pem).SerialNumber == 42 && x509.decode(object.data.pem).PublicKey.E == 65537"
    )
    assert run(expression, backend, {"pem": pem}) == ("pass", "")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("pem", "said"),
    [
        ("not a certificate", "failed to decode PEM block"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "x509.decode"),
        ("-----BEGIN CERTIFICATE-----\n" + "A" * 70_000 + "\n-----END CERTIFICATE-----\n", "over the limit"),
        ("ec", "certificate should use rsa algorithm"),
    ],
)
def test_x509_decode_refuses_bad_input(pem: str, said: str, backend: str) -> None:
    if pem == "ec":
        from cryptography.hazmat.primitives.asymmetric import ec

        pem = certificate_pem(ec.generate_private_key(ec.SECP256R1()))
    outcome, message = run("x509.decode(object.data.pem).IsCA", backend, {"pem": pem})
    assert outcome == "error" and said in message
