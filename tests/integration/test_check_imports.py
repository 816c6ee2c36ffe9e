"""`policyengine check` loads only what checking uses: no webhook server, audit log, OpenTelemetry,
Kubernetes client or Sigstore module is imported to check a plain manifest (start-up is paid per CI run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import write

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("webhook", "audit", "opentelemetry", "kubernetes", "starlette", "uvicorn", "sigstore")

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: apps}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.27"}]
"""

PROBE = """
import json, sys
from policyengine.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
print("\\nMODULES " + json.dumps(sorted(sys.modules)))
"""


def loaded_modules(*argv: str) -> tuple[int, list[str]]:
    """Run the CLI in a fresh interpreter; its exit code (printed before the module list) and the
    modules loaded when it returned."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard, not a measure
        check=False,
    )
    marker = proc.stdout.rfind("MODULES ")
    assert marker >= 0, proc.stderr
    return proc.returncode, json.loads(proc.stdout[marker + len("MODULES ") :])


def _forbidden(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in FORBIDDEN]


def test_check_imports_no_server_audit_or_telemetry_module(tmp_path: Path) -> None:
    manifest = write(tmp_path / "deploy.yaml", DEPLOYMENT)
    _, modules = loaded_modules("check", str(manifest), "--format", "json")
    assert "policyengine.gate" in modules  # the probe saw a real check
    assert _forbidden(modules) == []


def test_audit_verbs_still_load_the_audit_package(tmp_path: Path) -> None:
    _, modules = loaded_modules("audit", "keygen", "--origin", "example.com/x", "--out", str(tmp_path))
    assert "audit.cli" in modules
    assert (tmp_path / "audit.key").exists()


def test_check_with_audit_log_loads_it_and_records(tmp_path: Path) -> None:
    manifest = write(tmp_path / "deploy.yaml", DEPLOYMENT)
    _, modules = loaded_modules("audit", "keygen", "--origin", "example.com/x", "--out", str(tmp_path))
    log = tmp_path / "audit.db"
    key = str(tmp_path / "audit.key")
    _, modules = loaded_modules("check", str(manifest), "--audit-log", str(log), "--audit-key", key)
    assert "audit.log" in modules
    assert log.exists()


GOVERNANCE = ROOT / "examples" / "governance.yaml"  # trusted keys, no CA certificates or identities
X509 = ("cryptography.x509", "policyengine.certchain", "policyengine.keyless", "sigstore")


def test_check_without_certificates_loads_no_x509_code(tmp_path: Path) -> None:
    # Key-signed models need only the key's algorithm; certificates, keyless bundles and Kyverno's
    # x509.decode load the X.509 half of cryptography when a configuration or a policy uses them.
    manifest = write(tmp_path / "deploy.yaml", DEPLOYMENT)
    _, modules = loaded_modules("check", str(manifest), "--config", str(GOVERNANCE))
    assert "policyengine.gate" in modules and "policyengine.signing" in modules
    assert [m for m in modules if m.startswith(X509)] == []


def test_a_policy_decoding_a_certificate_still_loads_it(tmp_path: Path) -> None:
    policy = write(
        tmp_path / "policy.yaml",
        """\
apiVersion: policyengine.io/v1
kind: Policy
metadata: {name: decodes}
spec:
  match:
    kinds: [{apiGroups: ["apps"], kinds: ["Deployment"]}]
  validations:
    - expression: "x509.decode(object.metadata.name) != null"
      message: not a certificate
""",
    )
    manifest = write(tmp_path / "deploy.yaml", DEPLOYMENT)
    report = tmp_path / "report.json"
    argv = ["check", str(manifest), "--no-default-policies", "--policies", str(policy)]
    _, modules = loaded_modules(*argv, "--format", "json", "--output", str(report))
    [result] = json.loads(report.read_text())["results"]
    assert "failed to decode PEM block" in result["message"]  # "web" is no PEM block
    assert "cryptography.x509" in modules


def test_the_command_sets_its_modules_apart_from_the_collector_and_main_alone_does_not(
    tmp_path: Path,
) -> None:
    # The console command freezes what it imported (full collections then skip it); main() called in a
    # host process (a test, a program embedding the CLI) leaves that process's collector as it was.
    manifest = write(tmp_path / "deploy.yaml", DEPLOYMENT)
    probe = (
        "import gc, sys\nfrom policyengine.cli import main\n"
        "main(sys.argv[2:], freeze=sys.argv[1] == 'command')\n"
        "print('YOUNG', gc.get_threshold()[0])\nprint('FROZEN', gc.get_freeze_count())"
    )
    for mode, frozen in (("command", True), ("host", False)):
        proc = subprocess.run(
            [sys.executable, "-c", probe, mode, "check", str(manifest), "--format", "json"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,  # a hang guard, not a measure
            check=False,
        )
        count = int(proc.stdout.rsplit("FROZEN ", 1)[1])
        assert (count > 10_000) is frozen, (mode, count)
        # The command's own process collects its youngest objects less often (deciding leaves no
        # cycles); a host process keeps its own thresholds.
        young = int(proc.stdout.rsplit("YOUNG ", 1)[1].split()[0])
        assert (young > 700) is frozen, (mode, young)


def test_check_imports_no_other_verb(tmp_path: Path) -> None:
    manifest = write(tmp_path / "deploy.yaml", DEPLOYMENT)
    _, modules = loaded_modules("check", str(manifest), "--format", "json")
    verbs = [m for m in modules if m.startswith("policyengine.cli.") and m.count(".") == 2]
    others = {f"policyengine.cli.{m}" for m in ("certs", "generate", "init", "scan", "serve", "test")}
    assert "policyengine.cli.check" in verbs
    assert others.isdisjoint(verbs) and "policyengine.cli.webhook_config" not in verbs


FROZEN_PROBE = """
import gc, json, sys
from policyengine.cli import main
code = main(sys.argv[1:], freeze=True)
engine = sys.modules["policyengine.engine"]
print(json.dumps({"code": code, "engine_frozen": not gc.is_tracked(engine.__dict__) or
    engine.__dict__ not in gc.get_objects(), "frozen": gc.get_freeze_count()}))
"""


def test_the_command_sets_what_check_imports_apart_from_the_collector(tmp_path: Path) -> None:
    """check imports the engine after the command froze its first imports: what it imports and builds
    then is frozen too, or every full collection of the run walks it again."""
    manifest = write(tmp_path / "deploy.yaml", DEPLOYMENT)
    argv = [sys.executable, "-c", FROZEN_PROBE, "check", str(manifest), "--no-config-file"]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["code"] in (0, 1), proc.stderr
    assert out["engine_frozen"], out
