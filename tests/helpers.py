"""Small builders shared by the core tests: write policy files, run the CLI in-process."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from policyengine.cli import main

# The example organisation of the tests: the shipped defaults know none (tests/fixtures/org/acme.yaml).
ACME_CONFIG = str(Path(__file__).parent / "fixtures" / "org" / "acme.yaml")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def run_cli(
    args: Sequence[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stdin: str = ""
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(
    args: Sequence[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stdin: str = ""
) -> tuple[int, Any]:
    code, out, err = run_cli([*args, "--format", "json"], capsys, monkeypatch, stdin)
    assert out, err
    return code, json.loads(out)


@contextlib.contextmanager
def postgres_schema(prefix: str) -> Iterator[str]:
    """A DSN of ``POLICYENGINE_TEST_PG`` whose search_path is a fresh schema, dropped afterwards. Skips
    without a server, and fails instead under ``POLICYENGINE_REQUIRE_PG=1`` (CI: a skip would hide a gap)."""
    base = os.environ.get("POLICYENGINE_TEST_PG")
    if not base:
        reason = "POLICYENGINE_TEST_PG is not set (start one with scripts/start-postgres.sh)"
        if os.environ.get("POLICYENGINE_REQUIRE_PG") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    import psycopg

    schema = prefix + uuid.uuid4().hex[:12]
    with psycopg.connect(base, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(base, autocommit=True) as con:
            con.execute(f"DROP SCHEMA {schema} CASCADE")


def machine_kubectl() -> str:
    """The machine's kubectl. Under CI (POLICYENGINE_REQUIRE_SHARED=1 or CI=true, which .ci/run and CI
    services set) a missing kubectl fails the test instead of skipping it."""
    found = shutil.which("kubectl")
    if found is None:
        reason = "kubectl is not on PATH (install kubectl or Debian's kubernetes-client)"
        if os.environ.get("POLICYENGINE_REQUIRE_SHARED") == "1" or os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def run_policyengine(*args: str) -> subprocess.CompletedProcess[str]:
    """``policyengine ARGS`` in its own process (output captured, exit code not checked)."""
    return subprocess.run(
        [sys.executable, "-m", "policyengine", *args], capture_output=True, text=True, check=False
    )


def gpu_workload(i: int, kinds: Sequence[str] = ("Deployment",), teams: int = 3) -> str:
    """The ``i``-th of a family of generated GPU serving workloads (a kind from ``kinds`` in turn, one of
    ``teams`` namespaces), varied so that packs allow some and deny others: unpinned images, no owner,
    a US dataset in an EU region, 0-8 GPUs."""
    gpus = (0, 1, 2, 8)[i % 4]
    image = f"registry.example.com/m{i}:latest" if i % 3 else f"registry.example.com/m@sha256:{i:064x}"
    owner = "" if i % 5 == 0 else "\n    owner: vision"
    kind = kinds[i % len(kinds)]
    return f"""\
apiVersion: apps/v1
kind: {kind}
metadata:
  name: serve-{i}
  namespace: team-{i % teams}
  labels:
    app.kubernetes.io/part-of: ml{owner}
spec:
  replicas: {1 + i % 4}
  template:
    spec:
      nodeSelector: {{topology.kubernetes.io/region: eu-west-1}}
      containers:
        - name: server
          image: {image}
          env: [{{name: DATA, value: "s3://datasets-us-east-1/x{i}/"}}]
          resources:
            requests: {{cpu: "4", memory: 32Gi}}
            limits: {{memory: 32Gi, nvidia.com/gpu: {gpus}}}
"""
