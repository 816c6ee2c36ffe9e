"""``webhook-config --admission-config``: the AdmissionConfiguration and kubeconfig that give kube-apiserver
the credentials it presents to the webhook, for the Service the ValidatingWebhookConfiguration names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine.cli import main
from policyengine.policyset import load_policy_set
from webhook.configuration import webhook_configuration

SERVICE = "policyengine/policyengine"


def _written(out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    configuration = yaml.safe_load((out / "admission-configuration.yaml").read_text())
    kubeconfig = yaml.safe_load((out / "webhook-kubeconfig.yaml").read_text())
    return configuration, kubeconfig


def _service_host(port: int) -> str:
    """The host kube-apiserver dials for the generated configuration's entries: its Service, as DNS."""
    doc = webhook_configuration(
        load_policy_set([], include_bundled=True).policies,
        service_namespace="policyengine",
        service_name="policyengine",
        ca_bundle=b"-----BEGIN CERTIFICATE-----\n",
        port=port,
    )
    (service,) = {
        (
            h["clientConfig"]["service"]["name"],
            h["clientConfig"]["service"]["namespace"],
            h["clientConfig"]["service"]["port"],
        )
        for h in doc["webhooks"]
    }
    name, namespace, dialled = service
    return f"{name}.{namespace}.svc" + ("" if dialled == 443 else f":{dialled}")


def test_the_files_name_the_webhook_host_and_the_client_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "admission"
    assert main(["webhook-config", "--service", SERVICE, "--admission-config", str(out)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {out / 'admission-configuration.yaml'}",
        f"wrote {out / 'webhook-kubeconfig.yaml'}",
    ]
    configuration, kubeconfig = _written(out)
    assert configuration["apiVersion"] == "apiserver.config.k8s.io/v1"
    assert configuration["kind"] == "AdmissionConfiguration"
    (plugin,) = configuration["plugins"]
    assert plugin["name"] == "ValidatingAdmissionWebhook"
    assert plugin["configuration"] == {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "WebhookAdmissionConfiguration",
        "kubeConfigFile": "/etc/kubernetes/admission/webhook-kubeconfig.yaml",
    }
    assert kubeconfig["kind"] == "Config"
    (user,) = kubeconfig["users"]
    assert user["name"] == _service_host(443) == "policyengine.policyengine.svc"
    assert user["user"] == {
        "client-certificate": "/etc/kubernetes/admission/apiserver-webhook-client.crt",
        "client-key": "/etc/kubernetes/admission/apiserver-webhook-client.key",
    }


def test_another_port_is_part_of_the_user_name_and_a_token_file_replaces_the_certificate(
    tmp_path: Path,
) -> None:
    argv = ["webhook-config", "--service", SERVICE, "--port", "8443", "--admission-config", str(tmp_path)]
    token = "/var/run/secrets/admission/token"
    assert main([*argv, "--admission-dir", "/srv/admission", "--apiserver-token-file", token]) == 0
    configuration, kubeconfig = _written(tmp_path)
    assert (
        configuration["plugins"][0]["configuration"]["kubeConfigFile"]
        == "/srv/admission/webhook-kubeconfig.yaml"
    )
    assert kubeconfig["users"] == [{"name": _service_host(8443), "user": {"tokenFile": token}}]
    assert _service_host(8443) == "policyengine.policyengine.svc:8443"


def test_deploy_ships_what_the_command_writes(repo_root: Path, tmp_path: Path) -> None:
    """deploy/apiserver-auth/ is the command's output for the shipped Service, and the certificate it
    names is the one deploy/README.md has you make (and serve has you admit)."""
    assert main(["webhook-config", "--service", SERVICE, "--admission-config", str(tmp_path)]) == 0
    shipped = repo_root / "deploy" / "apiserver-auth"
    for name in ("admission-configuration.yaml", "webhook-kubeconfig.yaml"):
        assert yaml.safe_load((shipped / name).read_text()) == yaml.safe_load(
            (tmp_path / name).read_text()
        ), f"regenerate deploy/apiserver-auth/{name} with webhook-config --admission-config"
    readme = (repo_root / "deploy" / "README.md").read_text()
    for made in (
        "-keyout apiserver-webhook-client.key",
        "-out apiserver-webhook-client.crt",
        "--client-cn apiserver-webhook-client",
        "webhook-config --service policyengine/policyengine --admission-config",
    ):
        assert made in readme, made


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--admission-dir", "admission"], "--admission-dir must be an absolute path"),
        (["--apiserver-token-file", "token"], "--apiserver-token-file must be an absolute path"),
    ],
)
def test_relative_node_paths_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    argv = ["webhook-config", "--service", SERVICE, "--admission-config", str(tmp_path / "out"), *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_unwritable_directory_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["webhook-config", "--service", SERVICE, "--admission-config", str(blocker / "sub")]) == 2
    assert f"cannot write --admission-config {blocker / 'sub'}" in capsys.readouterr().err


def test_the_webhook_configuration_still_needs_its_ca_bundle(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["webhook-config", "--service", SERVICE]) == 2
    assert "--ca-bundle is required" in capsys.readouterr().err
