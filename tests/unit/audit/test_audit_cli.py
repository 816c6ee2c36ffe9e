"""The ``audit`` verbs, run through argparse as the policyengine CLI will."""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from audit import AuditLog, load_signer
from audit.cli import add_commands

Make = Callable[..., dict[str, Any]]


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="policyengine")
    add_commands(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(list(argv))
    code: int = args.func(args)
    return code


@pytest.fixture
def world(tmp_path: Path, make: Make) -> Path:
    assert run("audit", "keygen", "--origin", "example.com/cli", "--out", str(tmp_path / "keys")) == 0
    with AuditLog.open(tmp_path / "audit.db", signer=load_signer(tmp_path / "keys" / "audit.key")) as log:
        for i in range(12):
            log.append(make(i))
    return tmp_path


def test_query_json_lists_entries_with_their_index(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert (
        run(
            "audit",
            "query",
            "--audit-log",
            str(world / "audit.db"),
            "--verdict",
            "denied",
            "--format",
            "json",
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [r["index"] for r in rows] == [1, 4, 7, 10]
    assert {"index", "time", "source", "verdict", "resource", "user", "results"} <= set(rows[0])


@pytest.mark.parametrize("fmt", ["table", "jsonl", "csv"])
def test_query_formats(world: Path, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    capsys.readouterr()
    argv = [
        "audit",
        "query",
        "--audit-log",
        str(world / "audit.db"),
        "--namespace",
        "team-1",
        "--format",
        fmt,
    ]
    assert run(*argv, "--since", "2026-11-27T12:02:00Z", "--limit", "3") == 0
    out = capsys.readouterr().out
    if fmt == "jsonl":
        assert [json.loads(line)["index"] for line in out.splitlines()] == [4, 7, 10]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert [r["index"] for r in rows] == ["4", "7", "10"] and rows[0]["namespace"] == "team-1"
    else:
        assert out.splitlines()[0].split()[:4] == ["index", "time", "source", "verdict"]
        assert len(out.splitlines()) == 4


def test_verify_exit_codes(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, pub = str(world / "audit.db"), str(world / "keys" / "audit.pub")
    assert run("audit", "verify", "--audit-log", db, "--public-key", pub) == 0
    assert run("audit", "verify", "--audit-log", db) == 2
    assert run("audit", "verify", "--audit-log", db, "--public-key", str(world / "missing.pub")) == 2
    import sqlite3

    con = sqlite3.connect(db)
    con.execute("UPDATE entries SET data = CAST('{}' AS BLOB) WHERE idx = 5")
    con.commit()
    con.close()
    capsys.readouterr()
    assert run("audit", "verify", "--audit-log", db, "--public-key", pub) == 1
    assert "TAMPERED at index 5" in capsys.readouterr().out


def test_verify_without_a_source_is_a_usage_error(world: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        run("audit", "verify", "--public-key", "x")
    assert caught.value.code == 2


def test_checkpoint_prove_verify_proof_export(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, keys = str(world / "audit.db"), world / "keys"
    capsys.readouterr()
    assert run("audit", "checkpoint", "--audit-log", db) == 0
    assert capsys.readouterr().out.startswith("example.com/cli\n12\n")
    assert run("audit", "checkpoint", "--audit-log", db, "--key", str(keys / "audit.key")) == 0
    proof = world / "entry.tlog-proof"
    assert run("audit", "prove", "--audit-log", db, "--index", "3", "--out", str(proof)) == 0
    for key in ("audit.pub", "audit.vkey"):
        assert run("audit", "verify-proof", str(proof), "--public-key", str(keys / key)) == 0
    proof.write_text(proof.read_text().replace("index 3", "index 4"))
    assert run("audit", "verify-proof", str(proof), "--public-key", str(keys / "audit.pub")) == 1
    assert run("audit", "export", "--audit-log", db, "--out", str(world / "export")) == 0
    assert run("audit", "verify", "--export", str(world / "export")) == 0
    assert (
        run("audit", "verify", "--export", str(world / "export"), "--public-key", str(keys / "audit.pub"))
        == 0
    )


def test_keygen_refuses_to_overwrite(world: Path) -> None:
    assert run("audit", "keygen", "--origin", "example.com/cli", "--out", str(world / "keys")) == 2


def test_missing_log_is_a_usage_error(tmp_path: Path) -> None:
    assert run("audit", "query", "--audit-log", str(tmp_path / "none.db")) == 2
