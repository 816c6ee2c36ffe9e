"""Reload: a changed policy file is loaded whole and swapped in; a broken one keeps the last good set."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from starlette.testclient import TestClient

from tests.unit.webhook.builders import POLICIES, pod, review, write_policies
from webhook.policies import fingerprint
from webhook.prometheus import parse_samples


def _wait(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _metric(client: TestClient, name: str) -> float:
    return sum(v for n, _, v in parse_samples(client.get("/metrics").text) if n == name)


def _touch_later(path: Path) -> None:
    # Filesystems with coarse mtimes: make sure the change is visible to the poll.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_a_changed_policy_file_is_reloaded_and_swapped(client: TestClient, policy_dir: Path) -> None:
    before = client.get("/readyz").json()["policies"]["digest"]
    assert client.post("/validate", json=review(pod(image="x:latest"))).json()["response"]["allowed"] is False
    path = write_policies(policy_dir, POLICIES.replace("endsWith(':latest')", "endsWith(':never')"))
    _touch_later(path)
    _wait(lambda: client.get("/readyz").json()["policies"]["digest"] != before)
    assert client.post("/validate", json=review(pod(image="x:latest"))).json()["response"]["allowed"] is True
    assert _metric(client, "policyengine_reloads_total") == 1


def test_a_broken_reload_keeps_the_last_good_set_and_says_so(client: TestClient, policy_dir: Path) -> None:
    before = client.get("/readyz").json()["policies"]["digest"]
    path = write_policies(policy_dir, POLICIES.replace("endsWith(':latest')", "endsWith(:latest"))
    _touch_later(path)
    _wait(lambda: "lastReloadError" in client.get("/readyz").json()["policies"])
    ready = client.get("/readyz")
    assert ready.status_code == 200  # still serving the last good set
    detail = ready.json()["policies"]
    assert detail["digest"] == before
    assert any("cel_compile" in p for p in detail["lastReloadError"]["problems"])
    assert _metric(client, "policyengine_reload_failures_total") == 1
    assert client.post("/validate", json=review(pod(image="x:latest"))).json()["response"]["allowed"] is False
    # Fixing the file recovers.
    path = write_policies(policy_dir)
    _touch_later(path)
    _wait(lambda: "lastReloadError" not in client.get("/readyz").json()["policies"])


def test_the_fingerprint_sees_a_configmap_style_symlink_swap(tmp_path: Path) -> None:
    first, second = tmp_path / "..v1", tmp_path / "..v2"
    first.mkdir()
    second.mkdir()
    (first / "p.yaml").write_text("a: 1\n")
    (second / "p.yaml").write_text("a: 2\n")
    mount = tmp_path / "mount"
    mount.mkdir()
    (mount / "..data").symlink_to(first)
    (mount / "p.yaml").symlink_to(mount / "..data" / "p.yaml")
    before = fingerprint([str(mount / "p.yaml")])
    (mount / "..data_tmp").symlink_to(second)
    os.replace(mount / "..data_tmp", mount / "..data")
    assert fingerprint([str(mount / "p.yaml")]) != before
    assert fingerprint([str(tmp_path / "missing.yaml")])[0][1] == -1
