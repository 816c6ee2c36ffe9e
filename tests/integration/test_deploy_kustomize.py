"""The Kustomize packaging of deploy/: the base (deploy/Kustomization) and each overlay of
deploy-overlays/ rendered with the machine's ``kubectl kustomize``, then held to three things: our own
bundled packs pass every rendered object (``policyengine check``), every object is valid for the
Kubernetes API (deserialized into the ``kubernetes`` client's typed models, which reject missing required
fields and wrong types, then serialized back: a field the model dropped is a field the API does not
know), and each overlay does what its name says.

Kinds the client has no model for (cert-manager's Certificate and Issuer, the Prometheus Operator's
ServiceMonitor and PrometheusRule) get a structural check instead, named as such below. A missing kubectl fails these tests under CI (POLICYENGINE_REQUIRE_SHARED=1), as in
test_check_kustomize.py."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from policyengine.cli import build_parser, main
from policyengine.cli.serve import settings_from
from tests.helpers import machine_kubectl, run_json

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy"
OVERLAYS = ROOT / "deploy-overlays"
TREES = {
    "base": BASE,
    **{name: OVERLAYS / name for name in ("ha", "audit-postgres", "cert-manager")},
    "monitoring": BASE / "monitoring",  # ServiceMonitor, alert rules and the dashboard's ConfigMap
}
HANG_GUARD = 120  # seconds: a hang guard for kubectl, never the thing measured
# Kinds without a model in the kubernetes client: group/version -> kinds checked structurally instead.
STRUCTURAL = {
    "cert-manager.io/v1": {"Certificate", "Issuer"},
    "monitoring.coreos.com/v1": {"ServiceMonitor", "PrometheusRule"},
}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@pytest.fixture(scope="module")
def kubectl() -> str:
    return machine_kubectl()


def render(kubectl: str, tree: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [kubectl, "kustomize", str(tree)], capture_output=True, text=True, timeout=HANG_GUARD, check=False
    )
    assert done.returncode == 0, f"kubectl kustomize {tree} failed: {done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc is not None]


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


# -- schema validation through the kubernetes client's models ------------------------------------------


def model_name(api_version: str, kind: str) -> str:
    """The client's model class for an apiVersion and kind: apps/v1 Deployment -> V1Deployment."""
    version = api_version.rsplit("/", 1)[-1]
    return version[:1].upper() + version[1:] + kind


def schema_problems(obj: dict[str, Any]) -> list[str]:
    """What the API would refuse in ``obj``, as messages naming the object and field ([] when valid).
    Raises LookupError for a kind the client has no model for."""
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    model = getattr(client.models, model_name(str(obj.get("apiVersion", "")), str(obj.get("kind", ""))), None)
    if model is None:
        raise LookupError(f"{name}: no model in the kubernetes client for {obj.get('apiVersion')}")
    api = client.ApiClient()
    try:
        typed = api.deserialize(json.dumps(obj), model.__name__, "application/json")
    except ValueError as err:  # pydantic's ValidationError: a missing required field, a wrong type
        return [f"{name}: {err}"]
    back = api.sanitize_for_serialization(typed)
    return [f"{name}: {problem}" for problem in differences(obj, back, "")]


def differences(sent: Any, kept: Any, path: str) -> list[str]:
    """Where the model's serialization differs from the object: fields it does not know (dropped) and
    values it coerced (a string where an integer belongs)."""
    if isinstance(sent, dict) and isinstance(kept, dict):
        out = [f"{path}.{key}: not a field of this kind" for key in sent.keys() - kept.keys()]
        for key in sent.keys() & kept.keys():
            out += differences(sent[key], kept[key], f"{path}.{key}")
        return out
    if isinstance(sent, list) and isinstance(kept, list) and len(sent) == len(kept):
        return [
            p
            for i, (s, k) in enumerate(zip(sent, kept, strict=True))
            for p in differences(s, k, f"{path}[{i}]")
        ]
    if sent != kept or type(sent) is not type(kept):
        return [f"{path or '.'}: {sent!r} is read as {kept!r}"]
    return []


def structural_problems(obj: dict[str, Any], objects: list[dict[str, Any]]) -> list[str]:
    """The check for kinds without a model: names, namespace, a spec mapping, and the references between
    cert-manager's objects and ours (the Certificate's issuer is rendered too; its Secret is the one the
    pods mount; its names are the Service's)."""
    meta = obj.get("metadata") or {}
    name = f"{obj.get('kind')}/{meta.get('name')}"
    problems = []
    if not isinstance(meta.get("name"), str) or not DNS_SUBDOMAIN.match(meta["name"]):
        problems.append(f"{name}: metadata.name is not a DNS subdomain")
    if meta.get("namespace") != "policyengine":
        problems.append(f"{name}: not in the policyengine namespace")
    if not isinstance(obj.get("spec"), dict):
        problems.append(f"{name}: spec is not a mapping")
        return problems
    spec, rendered = obj["spec"], by_kind(objects)
    if obj["kind"] == "Certificate":
        issuer = spec.get("issuerRef") or {}
        if f"{issuer.get('kind')}/{issuer.get('name')}" not in rendered:
            problems.append(f"{name}: issuerRef {issuer} is not rendered")
        if not spec.get("isCA"):  # the serving certificate (a CA certificate only signs it)
            volumes = rendered["Deployment/policyengine"]["spec"]["template"]["spec"]["volumes"]
            if spec.get("secretName") != {v["name"]: v for v in volumes}["tls"]["secret"]["secretName"]:
                problems.append(f"{name}: secretName is not the Secret the pods mount")
            if "policyengine.policyengine.svc" not in spec.get("dnsNames", []):
                problems.append(f"{name}: dnsNames miss the Service's name")
    if obj["kind"] == "Issuer" and "ca" in spec:
        written = {o["spec"].get("secretName") for o in objects if o["kind"] == "Certificate"}
        if spec["ca"].get("secretName") not in written:
            problems.append(f"{name}: its CA Secret is written by no rendered Certificate")
    return problems


def validate(objects: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(problems, the kinds checked structurally only)."""
    problems: list[str] = []
    structural: list[str] = []
    for obj in objects:
        if obj["kind"] in STRUCTURAL.get(obj["apiVersion"], ()):
            structural.append(obj["kind"])
            problems += structural_problems(obj, objects)
        else:
            problems += schema_problems(obj)
    return problems, structural


def test_the_schema_check_catches_unknown_fields_missing_fields_and_wrong_types() -> None:
    """The validator itself: without these catches every rendered tree below would pass vacuously."""
    good = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 443}]},
    }
    assert schema_problems(good) == []
    typo = json.loads(json.dumps(good))
    typo["spec"]["ports"][0]["targetport"] = "https"  # a misspelt field, which kubectl apply would drop
    assert schema_problems(typo) == ["Service/s: .spec.ports[0].targetport: not a field of this kind"]
    missing = json.loads(json.dumps(good))
    del missing["spec"]["ports"][0]["port"]
    (problem,) = schema_problems(missing)
    assert problem.startswith("Service/s: ") and "port" in problem
    wrong = json.loads(json.dumps(good))
    wrong["spec"]["ports"][0]["port"] = "443"  # a string where the API wants an integer
    (problem,) = schema_problems(wrong)
    assert problem.startswith("Service/s: ") and "port\n  Input should be a valid integer" in problem
    with pytest.raises(LookupError, match="no model in the kubernetes client"):
        schema_problems({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})


@pytest.mark.parametrize("tree", sorted(TREES))
def test_every_rendered_object_is_valid_for_the_api(kubectl: str, tree: str) -> None:
    objects = render(kubectl, TREES[tree])
    problems, structural = validate(objects)
    assert problems == []
    # Only cert-manager's and the Prometheus Operator's kinds have no model.
    expected = {"cert-manager": {"Certificate", "Issuer"}, "monitoring": {"PrometheusRule", "ServiceMonitor"}}
    assert set(structural) == expected.get(tree, set())


@pytest.mark.parametrize("tree", sorted(TREES))
def test_our_bundled_packs_pass_every_rendered_tree(
    kubectl: str, tree: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, report = run_json(["check", str(TREES[tree])], capsys, monkeypatch)
    assert code == 0, [r for r in report["results"] if r["outcome"] != "pass"]
    assert report["summary"]["failed"] == report["summary"]["errors"] == 0
    assert report["summary"]["resources"] == len(render(kubectl, TREES[tree]))  # every object was read


def test_the_base_is_what_kubectl_apply_f_deploy_installs(kubectl: str) -> None:
    files = {}
    for path in sorted(BASE.glob("*.yaml")):  # what kubectl apply -f reads: Kustomization is not among them
        files |= by_kind([doc for doc in yaml.safe_load_all(path.read_text()) if doc])
    assert by_kind(render(kubectl, BASE)) == files


def deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return by_kind(objects)["Deployment/policyengine"]


def test_ha_runs_three_replicas_spread_over_nodes_and_zones(kubectl: str) -> None:
    objects = render(kubectl, TREES["ha"])
    spec = deployment(objects)["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 3
    anti = pod["affinity"]["podAntiAffinity"]
    (per_node,) = anti["requiredDuringSchedulingIgnoredDuringExecution"]
    (per_zone,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert per_node["topologyKey"] == "kubernetes.io/hostname"
    assert per_zone["podAffinityTerm"]["topologyKey"] == "topology.kubernetes.io/zone"
    selector = spec["selector"]["matchLabels"]
    assert (
        per_node["labelSelector"]["matchLabels"]
        == per_zone["podAffinityTerm"]["labelSelector"]["matchLabels"]
    )
    assert per_node["labelSelector"]["matchLabels"] == selector
    (spread,) = pod["topologySpreadConstraints"]
    assert (
        spread["topologyKey"] == "topology.kubernetes.io/zone"
        and spread["whenUnsatisfiable"] == "DoNotSchedule"
    )
    pdb = by_kind(objects)["PodDisruptionBudget/policyengine"]["spec"]
    assert pdb == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": selector},
    }  # one at a time, no minAvailable


def test_audit_postgres_reads_the_log_url_and_password_from_a_secret(kubectl: str, tmp_path: Path) -> None:
    (container,) = deployment(render(kubectl, TREES["audit-postgres"]))["spec"]["template"]["spec"][
        "containers"
    ]
    env = {e["name"]: e for e in container["env"]}
    (flag,) = [a for a in container["args"] if a.startswith("--audit-log=")]
    variable = re.fullmatch(r"--audit-log=\$\((\w+)\)", flag)
    assert variable is not None, f"{flag}: the URL must come from the environment, not the manifest"
    assert env[variable.group(1)]["valueFrom"]["secretKeyRef"] == {"name": "policyengine-audit", "key": "url"}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "policyengine-audit", "key": "password"}
    assert all("value" not in e for e in (env[variable.group(1)], env["PGPASSWORD"]))

    # The arguments as the kubelet expands them are accepted by serve: a postgresql:// log, a key, and
    # --workers > 1 (which serve refuses on a SQLite log). Only the mounted certificate is moved to files made here.
    assert main(["certs", "--out", str(tmp_path), "--dns", "policyengine.policyengine.svc"]) == 0
    url = "postgresql://policyengine@db.example:5432/audit?sslmode=verify-full"
    args = [
        a.replace(f"$({variable.group(1)})", url).replace("/etc/policyengine/tls/", f"{tmp_path}/")
        for a in container["args"]
    ]
    settings = settings_from(build_parser("serve").parse_args(["serve", *args]))
    assert settings.audit_log == url and settings.workers == 2
    assert settings.audit_key == "/etc/policyengine/audit/audit.key"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {
        v["name"]: v
        for v in deployment(render(kubectl, TREES["audit-postgres"]))["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes[mounts["/etc/policyengine/audit"]]["secret"]["secretName"] == "policyengine-audit-key"


def test_cert_manager_adds_the_certificate_and_annotates_the_webhook(kubectl: str) -> None:
    objects = by_kind(render(kubectl, TREES["cert-manager"]))
    added = by_kind(
        [d for d in yaml.safe_load_all((BASE / "cert-manager" / "certificate.yaml").read_text()) if d]
    )
    assert set(objects) == set(by_kind(render(kubectl, BASE))) | set(added)
    serving = [
        o
        for o in objects.values()
        if o["kind"] == "Certificate" and o["spec"]["secretName"] == "policyengine-tls"
    ]
    assert len(serving) == 1 and serving[0]["metadata"]["namespace"] == "policyengine"
    annotations = objects["ValidatingWebhookConfiguration/policyengine"]["metadata"]["annotations"]
    assert annotations["cert-manager.io/inject-ca-from"] == "policyengine/" + serving[0]["metadata"]["name"]
