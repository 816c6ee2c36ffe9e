"""The reload poll's fingerprint walks the policy paths exactly as the loader does: link loops cost one
problem (not an endless walk), and a ConfigMap volume's ``..data`` swap is still seen."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from policyengine.loader import discover
from webhook.policies import fingerprint

HANG_GUARD = 60  # seconds: a guard against the endless walk, not a measurement


def test_symlink_loops_in_a_policy_directory_are_walked_once(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    (policies / "sub").mkdir(parents=True)
    (policies / "p.yaml").write_text("a: 1\n")
    (policies / "loop1").symlink_to(policies)
    (policies / "sub" / "loop2").symlink_to(policies)
    # In a child process: a walk that follows the loops never ends, and must fail this test, not hang it.
    code = (
        "import sys; from webhook.policies import fingerprint; "
        f"print(len(fingerprint([{str(policies)!r}]))); sys.stdout.flush()"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_GUARD, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the fingerprint walk did not end within {HANG_GUARD} s")
    assert proc.returncode == 0, proc.stderr
    entries = fingerprint([str(policies)])
    assert len(entries) == int(proc.stdout) == 3  # the file, and each loop once
    assert entries[0][0] == str(policies / "p.yaml") and entries[0][1] > 0
    assert [e[0].split(":1: ")[1] for e in entries[1:]] == [
        "read_error: symbolic link loop: the link leads back to a directory that holds it"
    ] * 2


def test_the_fingerprint_watches_what_the_loader_reads(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    for name in ("a.yaml", "b/c.yml", "b/.hidden.yaml", "b/tests/t.yaml", "notes.txt"):
        (policies / name).parent.mkdir(parents=True, exist_ok=True)
        (policies / name).write_text("a: 1\n")
    files, _ = discover([str(policies)])
    assert [e[0] for e in fingerprint([str(policies)])] == files


def test_a_configmap_volume_swap_changes_the_directory_fingerprint(tmp_path: Path) -> None:
    # kubelet's layout: ..<timestamp>/ holds the files, ..data links to it, each key links into ..data.
    mount = tmp_path / "mount"
    first, second = mount / "..2024_01_01", mount / "..2024_01_02"
    first.mkdir(parents=True)
    second.mkdir()
    (first / "p.yaml").write_text("a: 1\n")
    (second / "p.yaml").write_text("a: 2\n")
    (mount / "..data").symlink_to(first.name)
    (mount / "p.yaml").symlink_to(Path("..data") / "p.yaml")
    before = fingerprint([str(mount)])
    assert [e[0] for e in before] == [str(mount / "p.yaml")]  # the hidden folders are not walked
    (mount / "..data_tmp").symlink_to(second.name)
    os.replace(mount / "..data_tmp", mount / "..data")
    after = fingerprint([str(mount)])
    assert after != before and after[0][1] == (second / "p.yaml").stat().st_ino


def test_an_unreadable_path_is_part_of_the_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "missing.yaml")
    before = fingerprint([str(tmp_path)])
    assert before[0][1:] == (-1, -1, -1) and "dangling symbolic link" in before[0][0]
    (tmp_path / "missing.yaml").write_text("a: 1\n")
    assert fingerprint([str(tmp_path)]) != before
