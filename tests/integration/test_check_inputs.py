"""`policyengine check` on hostile and unreadable inputs: every one is exit 2 with the path and the
reason, never a PASS that skipped something, never a traceback, never exit 1 (which means "denied")."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_cli, write
from tests.integration.test_check_cli import POLICIES, deployment
from tests.unit.core.test_loader_bounds import laughs

HANG_GUARD = 120  # seconds: only a guard against a hang, never the thing measured
MEMORY_CAP = 1 << 30  # address space of the child: an unbounded expansion fails instead of swapping


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    return write(tmp_path / "policies" / "p.yaml", POLICIES).parent


def base(policies: Path) -> list[str]:
    return ["check", "--no-default-policies", "--policies", str(policies)]


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_capped(
    args: list[str], prefix: tuple[str, ...] = (), cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed command in a child process with bounded memory and a hang guard."""
    try:
        return subprocess.run(
            [*prefix, sys.executable, "-m", "policyengine", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=HANG_GUARD,
            preexec_fn=_cap_memory,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"policyengine {' '.join(args)} did not finish within {HANG_GUARD} s")


def test_billion_laughs_exits_2_naming_the_file_and_line(tmp_path: Path, policies: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(laughs(9))
    proc = run_capped([*base(policies), str(bomb)])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith(f"{bomb}:") and "yaml_syntax: excessive aliasing" in first


def test_an_unexpected_error_exits_2_with_one_line(
    tmp_path: Path,
    policies: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Any failure the engine did not foresee: exit 1 would read as "denied", a traceback as a verdict.
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the evaluator broke\nsecond line")

    monkeypatch.setattr("policyengine.cli.check.check_documents", broken)
    m = write(tmp_path / "m.yaml", deployment("ok", 2))
    code, out, err = run_cli([*base(policies), str(m)], capsys, monkeypatch)
    assert (code, out) == (2, "")
    assert err == "policyengine: internal error: RuntimeError: the evaluator broke second line\n"


def test_a_file_past_max_input_size_exits_2(
    tmp_path: Path, policies: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    m = write(tmp_path / "m.yaml", deployment("ok", 2))
    code, _, err = run_cli([*base(policies), "--max-input-size", "100", str(m)], capsys, monkeypatch)
    assert code == 2
    assert f"{m}:1: read_error: larger than the input size limit of 100 bytes" in err
    # The policies and the inventory are held to the same limit.
    assert f"{policies / 'p.yaml'}:1: read_error: larger than" in err
    inventory = write(tmp_path / "inv.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n")
    code, _, err = run_cli(
        [*base(policies), "--max-input-size", "3KiB", "--inventory", str(inventory), str(m)],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    code, _, err = run_cli(
        [*base(policies), "--max-input-size", "40", "--inventory", str(inventory), str(m)],
        capsys,
        monkeypatch,
    )
    assert f"{inventory}:1: read_error: larger than the input size limit of 40 bytes" in err


def test_stdin_is_held_to_max_input_size(
    policies: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run_cli(
        [*base(policies), "--max-input-size", "1KiB", "-"], capsys, monkeypatch, stdin=deployment("a", 1) * 5
    )
    assert code == 2 and "<stdin>:1: read_error: larger than the input size limit of 1 KiB" in err


def test_max_documents_and_bad_limit_values(
    tmp_path: Path, policies: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    m = write(tmp_path / "m.yaml", "---\n".join(deployment(f"d{i}", 1) for i in range(3)))
    code, _, err = run_cli([*base(policies), "--max-documents", "2", str(m)], capsys, monkeypatch)
    assert code == 2 and f"{m}:33: read_error: more than 2 documents in one file" in err
    for flag, value in (("--max-input-size", "12XB"), ("--max-input-size", "0"), ("--max-documents", "-1")):
        code, _, err = run_cli([*base(policies), flag, value, str(m)], capsys, monkeypatch)
        assert code == 2 and flag in err


# -- paths the walk cannot read --------------------------------------------------------------------------


def without_file_access_override() -> tuple[str, ...]:
    """A command prefix under which a mode-000 directory is unreadable: none needed when not root; as
    root, drop the capabilities that let root read anything. Skips only outside CI, where neither works."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    caps = "-dac_override,-dac_read_search"
    if setpriv is not None:
        probe = subprocess.run(
            [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}", "true"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return (setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}")
    if os.environ.get("CI") or os.environ.get("POLICYENGINE_REQUIRE_SHARED") == "1":
        pytest.fail("running as root without setpriv: cannot make a directory unreadable")
    pytest.skip("running as root without setpriv: cannot make a directory unreadable")


def test_an_unreadable_directory_holding_a_denied_manifest_exits_2(tmp_path: Path, policies: Path) -> None:
    manifests = tmp_path / "manifests"
    write(manifests / "ok.yaml", deployment("ok", 2))
    locked = write(manifests / "locked" / "big.yaml", deployment("big", 9)).parent
    prefix = without_file_access_override()
    locked.chmod(0)
    try:
        proc = run_capped([*base(policies), str(manifests)], prefix)
    finally:
        locked.chmod(0o755)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{locked}:1: read_error: cannot read directory: Permission denied" in proc.stderr
    assert "PASS" not in proc.stdout


def test_links_loops_and_fifos_in_a_walked_directory_exit_2_once_each(
    tmp_path: Path, policies: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "m"
    write(d / "ok.yaml", deployment("ok", 2))
    (d / "sub").mkdir()
    (d / "sub" / "back").symlink_to(d)  # a directory cycle
    (d / "a.yaml").symlink_to(d / "b.yaml")  # a link cycle of two links: one problem
    (d / "b.yaml").symlink_to(d / "a.yaml")
    (d / "gone.yaml").symlink_to(tmp_path / "missing.yaml")
    os.mkfifo(d / "pipe.yaml")  # reading it would block forever
    code, out, err = run_cli([*base(policies), str(d)], capsys, monkeypatch)
    assert code == 2 and "PASS" not in out
    problems = [line for line in err.splitlines() if ": read_error: " in line]
    assert problems == [
        f"{d / 'a.yaml'}:1: read_error: symbolic link loop: the link resolves back to itself",
        f"{d / 'gone.yaml'}:1: read_error: dangling symbolic link: its target "
        f"{str(tmp_path / 'missing.yaml')!r} does not exist",
        f"{d / 'pipe.yaml'}:1: read_error: not a regular file: a named pipe (FIFO); "
        "pipe its content to - (stdin) instead",
        f"{d / 'sub' / 'back'}:1: read_error: symbolic link loop: the link leads back to a directory "
        "that holds it",
    ]


def test_links_and_fifos_given_directly_say_what_they_are(
    tmp_path: Path, policies: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "missing.yaml")
    (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
    os.mkfifo(tmp_path / "pipe.yaml")
    paths = [str(tmp_path / n) for n in ("gone.yaml", "loop.yaml", "pipe.yaml", "nothing.yaml")]
    code, _, err = run_cli([*base(policies), *paths], capsys, monkeypatch)
    assert code == 2
    assert "gone.yaml:1: read_error: dangling symbolic link" in err
    assert "loop.yaml:1: read_error: symbolic link loop" in err
    assert "pipe.yaml:1: read_error: not a regular file: a named pipe (FIFO)" in err
    assert "nothing.yaml:1: file_not_found: no such file or directory" in err


def test_a_linked_directory_of_manifests_is_checked(
    tmp_path: Path, policies: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A directory reached through a link is walked like any other (it used to be skipped in silence).
    shared = write(tmp_path / "shared" / "big.yaml", deployment("big", 9)).parent
    write(tmp_path / "app" / "ok.yaml", deployment("ok", 2))
    (tmp_path / "app" / "common").symlink_to(shared)
    code, out, _ = run_cli([*base(policies), str(tmp_path / "app")], capsys, monkeypatch)
    assert code == 1 and "replica-cap" in out
