"""``webhook-config --admission-config``: the files that give kube-apiserver the credentials it presents to
the webhook (its ``--admission-control-config-file`` and the kubeconfig that file points at).

kube-apiserver picks the kubeconfig user whose name is the webhook's host: ``<service>.<namespace>.svc``
for a Service on port 443, ``<service>.<namespace>.svc:<port>`` on any other port (Kubernetes docs,
"Authenticate apiservers"). The files name paths on the control-plane nodes, not on this machine.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from policyengine.errors import UsageError

ADMISSION_CONFIGURATION = "admission-configuration.yaml"
KUBECONFIG = "webhook-kubeconfig.yaml"
DEFAULT_NODE_DIR = "/etc/kubernetes/admission"
CLIENT_CERT, CLIENT_KEY = "apiserver-webhook-client.crt", "apiserver-webhook-client.key"


def add_admission_arguments(p: Any) -> None:
    """webhook-config's flags for these files."""
    auth = p.add_argument_group(
        "API server credentials",
        "--admission-config DIR writes, instead of the ValidatingWebhookConfiguration, the "
        "AdmissionConfiguration (kube-apiserver --admission-control-config-file) and the kubeconfig it "
        "points at (kubeConfigFile), with which kube-apiserver presents its client certificate or token to "
        "the webhook of --service (serve --client-ca / --apiserver-jwks)",
    )
    auth.add_argument("--admission-config", metavar="DIR", help="write the two files into DIR")
    auth.add_argument(
        "--admission-dir",
        default=DEFAULT_NODE_DIR,
        metavar="PATH",
        help=f"where the files and the client certificate live on the control-plane nodes (default {DEFAULT_NODE_DIR})",
    )
    auth.add_argument(
        "--apiserver-token-file",
        metavar="PATH",
        help="present the bearer token read from this file on the nodes, not a client certificate",
    )


def webhook_host(namespace: str, name: str, port: int) -> str:
    """The host kube-apiserver matches kubeconfig user names against for a Service-backed webhook."""
    host = f"{name}.{namespace}.svc"
    return host if port == 443 else f"{host}:{port}"


def admission_files(
    *, namespace: str, name: str, port: int, node_dir: str, token_file: str | None
) -> dict[str, dict[str, Any]]:
    """File name -> document: the AdmissionConfiguration and the kubeconfig it points at, whose one user
    holds the client certificate and key in ``node_dir`` or, with ``token_file``, reads its bearer token
    from that file (kube-apiserver reads it again as it changes, e.g. a projected token)."""
    if not posixpath.isabs(node_dir):
        raise UsageError(
            f"--admission-dir must be an absolute path on the control-plane nodes, not {node_dir!r}"
        )
    user: dict[str, str]
    if token_file is None:
        user = {
            "client-certificate": posixpath.join(node_dir, CLIENT_CERT),
            "client-key": posixpath.join(node_dir, CLIENT_KEY),
        }
    elif posixpath.isabs(token_file):
        user = {"tokenFile": token_file}
    else:
        raise UsageError(f"--apiserver-token-file must be an absolute path on the nodes, not {token_file!r}")
    configuration = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AdmissionConfiguration",
        "plugins": [
            {
                "name": "ValidatingAdmissionWebhook",
                "configuration": {
                    "apiVersion": "apiserver.config.k8s.io/v1",
                    "kind": "WebhookAdmissionConfiguration",
                    "kubeConfigFile": posixpath.join(node_dir, KUBECONFIG),
                },
            }
        ],
    }
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "users": [{"name": webhook_host(namespace, name, port), "user": user}],
    }
    return {ADMISSION_CONFIGURATION: configuration, KUBECONFIG: kubeconfig}


def write_admission_files(out: str, files: dict[str, dict[str, Any]]) -> list[Path]:
    """Write each document to ``out`` (created if missing); the paths written."""
    import yaml

    directory = Path(out)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for file_name, doc in files.items():
            path = directory / file_name
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            written.append(path)
    except OSError as err:
        raise UsageError(f"cannot write --admission-config {out}: {err.strerror}") from None
    return written
