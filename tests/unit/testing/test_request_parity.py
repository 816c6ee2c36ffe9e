"""A PolicyTest's ``request`` is read by the same codec as the webhook's AdmissionReview, so a case gets
the verdict there that it gets from ``policyengine test``: ``userInfo.extra`` is kept, and a ``dryRun``
that is not the JSON ``true`` is not a dry run."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine.cli import main
from policyengine.engine import Engine
from policyengine.policyset import load_policy_set
from webhook.review import parse_review

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

POLICY = """
apiVersion: policyengine.io/v1
kind: Policy
metadata: {name: caller-owns-namespace}
spec:
  match: {kinds: [{apiGroups: [""], kinds: [Pod]}]}
  validations:
    - expression: "'example.com/team' in request.userInfo.extra && request.userInfo.extra['example.com/team'].exists(t, t == request.namespace)"
      message: "the caller's team does not own the namespace"
    - expression: "!request.dryRun"
      message: "dry runs are refused"
"""


def _request(extra: Any, **more: Any) -> dict[str, Any]:
    return {
        "uid": "11111111-2222-3333-4444-555555555555",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE",
        "name": "p",
        "namespace": "ml",
        "userInfo": {"username": "alice", "groups": ["devs"], "extra": extra},
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}},
        **more,
    }


CASES = [
    ("team-from-extra-owns-the-namespace", _request({"example.com/team": ["research", "ml"]}), "allowed"),
    ("team-from-extra-does-not", _request({"example.com/team": ["research"]}), "denied"),
    ("no-extra", _request(None), "denied"),
    ("dry-run-as-a-string", _request({"example.com/team": ["ml"]}, dryRun="true"), "allowed"),
    ("dry-run-as-a-number", _request({"example.com/team": ["ml"]}, dryRun=1), "allowed"),
    ("dry-run", _request({"example.com/team": ["ml"]}, dryRun=True), "denied"),
]


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    (tmp_path / "policy.yaml").write_text(textwrap.dedent(POLICY))
    test = {
        "apiVersion": "policyengine.io/v1",
        "kind": "PolicyTest",
        "metadata": {"name": "identity"},
        "spec": {
            "policies": [".."],
            "cases": [
                {"name": name, "request": request, "expect": {"verdict": verdict}}
                for name, request, verdict in CASES
            ],
        },
    }
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "identity.yaml").write_text(yaml.safe_dump(test, sort_keys=False))
    return tmp_path


def test_policy_test_and_webhook_give_the_same_verdict(
    pack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Through `policyengine test`: every case gets the verdict written in the file.
    assert main(["test", str(pack)]) == 0, capsys.readouterr().out
    assert capsys.readouterr().out.splitlines() == [f"{len(CASES)} passed, 0 failed"]

    # Through the webhook's codec: the same requests, wrapped as kube-apiserver sends them.
    engine = Engine(load_policy_set([str(pack)], include_bundled=False))
    for name, request, verdict in CASES:
        review = parse_review(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
        )
        assert engine.evaluate(review.request, now=NOW).verdict == verdict, name
