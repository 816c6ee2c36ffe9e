"""``serve --background-interval`` and ``--background-cpu``: parsing, refusals and what the server builds."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from policyengine.cli.serve import duration
from tests.helpers import run_cli
from webhook.server import services_from
from webhook.settings import Settings


@pytest.mark.parametrize(
    ("text", "seconds"), [("10m", 600), ("1h30m", 5400), ("90s", 90), ("45", 45), ("1.5m", 90)]
)
def test_durations(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10x", "m", "1h 30m", "0", "0.5s", "200h", "-5"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        duration(text)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--background-interval", "soon"], "is not a duration"),
        (["--background-cpu", "0"], "--background-cpu must be in (0, 1]"),
        (["--background-cpu", "2"], "--background-cpu must be in (0, 1]"),
        (
            ["--background-interval", "10m", "--workers", "2", "--reservations", "postgresql://x"],
            "every worker would scan",
        ),
        (["--background-max-objects", "0"], "--background-max-objects must be positive"),
    ],
)
def test_bad_background_flags_are_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run_cli(["serve", "--insecure-http", *args], capsys, monkeypatch)
    assert code == 2
    assert message in err


def test_off_by_default_and_on_with_an_interval() -> None:
    assert services_from(Settings(), env={}).background is None
    services = services_from(Settings(background_interval=600, background_cpu=0.5), env={})
    assert services.background is not None and services.leader is None  # no cluster: it publishes itself
    assert services.background.interval == 600 and services.background.limiter.share == 0.5
    assert services.background.leads() is True


def test_with_kube_the_replica_publishes_only_while_it_holds_the_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("POD_NAMESPACE", "policyengine-system")
    monkeypatch.setenv("POD_NAME", "policyengine-7f9c")
    settings = Settings(kube=True, kubeconfig=str(kubeconfig), background_interval=60)
    services = services_from(settings, env={})
    assert services.background is not None and services.leader is not None
    assert services.leader.identity.startswith("policyengine-7f9c-")
    assert getattr(services.leader.api, "namespace", None) == "policyengine-system"
    assert services.background.leads() is False  # not elected yet
    assert services.leader.on_change is not None
    services.leader.on_change(True)  # elected: the next pass starts at once
    assert services.background._wake.is_set()


def test_the_background_reads_default_to_the_ai_workloads_and_can_be_named() -> None:
    from policyengine.cli import build_parser
    from policyengine.cli.serve import settings_from
    from webhook.access import BACKGROUND_READS
    from webhook.bgcluster import DEFAULT_KINDS

    parser = build_parser()
    default = settings_from(parser.parse_args(["serve", "--insecure-http"]))
    assert default.background_kinds == DEFAULT_KINDS and default.background_max_objects == 100_000
    assert {f"{r}.{g}" for _, g, r, _ in BACKGROUND_READS} == set(DEFAULT_KINDS)  # what the RBAC grants
    named = settings_from(
        parser.parse_args(
            ["serve", "--insecure-http", "--background-kinds", "trainjobs.trainer.kubeflow.org,jobs.batch",
             "--background-kinds", "rayclusters.ray.io", "--background-max-objects", "500"]
        )
    )  # fmt: skip
    assert named.background_kinds == ("trainjobs.trainer.kubeflow.org", "jobs.batch", "rayclusters.ray.io")
    assert named.background_max_objects == 500
    assert Settings.from_json(named.to_json()) == named  # --workers: rebuilt from the environment
