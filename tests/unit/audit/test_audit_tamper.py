"""Tampering with a stored log or an export is detected every time, naming the first bad index."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import AuditLog, KeyFiles, export, verify_export
from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.merkle import leaf_hash
from audit.note import Ed25519Signer, Verifier
from audit.stores import Query

Make = Callable[..., dict[str, Any]]
COUNT = 20


@pytest.fixture
def db(tmp_path: Path, signer: Ed25519Signer, make: Make) -> Path:
    path = tmp_path / "audit.db"
    with AuditLog.open(path, signer=signer) as log:
        for i in range(COUNT):  # one batch, so one checkpoint, per entry
            log.append(make(i))
    return path


def _sql(path: Path, *statements: tuple[str, tuple[Any, ...]]) -> None:
    con = sqlite3.connect(path)
    for sql, params in statements:
        con.execute(sql, params)
    con.commit()
    con.close()


def _data(path: Path, index: int) -> bytes:
    con = sqlite3.connect(path)
    (data,) = con.execute("SELECT data FROM entries WHERE idx = ?", (index,)).fetchone()
    con.close()
    return bytes(data)


def _verify(path: Path, verifier: Verifier, trusted: tuple[str, ...] = ()) -> tuple[bool, int | None, str]:
    with AuditLog.open(path) as log:
        report = log.verify(verifier, trusted=trusted)
    return report.ok, report.first_bad_index, report.code


def _forged(signer: Ed25519Signer, size: int) -> str:
    imposter = Ed25519Signer(signer.name, Ed25519PrivateKey.generate())
    return sign_checkpoint(Checkpoint(signer.name, size, b"\x01" * 32), imposter)


def test_an_untouched_log_verifies(db: Path, verifier: Verifier) -> None:
    assert _verify(db, verifier) == (True, None, "ok")


def test_edited_entry(db: Path, verifier: Verifier) -> None:
    edited = _data(db, 7).replace(b'"denied"', b'"allowed"')
    _sql(db, ("UPDATE entries SET data = ? WHERE idx = 7", (edited,)))
    assert _verify(db, verifier) == (False, 7, "entry_hash")


def test_edited_entry_with_its_leaf_hash_recomputed(db: Path, verifier: Verifier) -> None:
    edited = _data(db, 7).replace(b'"denied"', b'"allowed"')
    _sql(db, ("UPDATE entries SET data = ?, leaf_hash = ? WHERE idx = 7", (edited, leaf_hash(edited))))
    assert _verify(db, verifier) == (False, 7, "root_mismatch")


def test_deleted_entry(db: Path, verifier: Verifier) -> None:
    _sql(db, ("DELETE FROM entries WHERE idx = 7", ()))
    assert _verify(db, verifier) == (False, 7, "entry_missing")


def test_deleted_entry_with_later_ones_renumbered(db: Path, verifier: Verifier) -> None:
    _sql(
        db, ("DELETE FROM entries WHERE idx = 7", ()), ("UPDATE entries SET idx = idx - 1 WHERE idx > 7", ())
    )
    assert _verify(db, verifier) == (False, 7, "root_mismatch")


def test_reordered_entries(db: Path, verifier: Verifier) -> None:
    _sql(
        db,
        ("UPDATE entries SET idx = -1 WHERE idx = 7", ()),
        ("UPDATE entries SET idx = 7 WHERE idx = 8", ()),
        ("UPDATE entries SET idx = 8 WHERE idx = -1", ()),
    )
    assert _verify(db, verifier) == (False, 7, "root_mismatch")


def test_truncated_entries(db: Path, verifier: Verifier) -> None:
    _sql(db, ("DELETE FROM entries WHERE idx >= 15", ()))
    assert _verify(db, verifier) == (False, 15, "truncated")


def test_truncated_log_and_checkpoints_against_a_checkpoint_the_auditor_kept(
    db: Path, verifier: Verifier
) -> None:
    with AuditLog.open(db) as log:
        kept = log.checkpoint() or ""
    _sql(
        db,
        ("DELETE FROM entries WHERE idx >= 15", ()),
        ("DELETE FROM checkpoints WHERE size > 15", ()),
        ("DELETE FROM heads WHERE size > 15", ()),
    )
    assert _verify(db, verifier)[0]  # consistent with itself...
    assert _verify(db, verifier, (kept,)) == (False, 15, "truncated")  # ...but not with what was published


def test_replaced_checkpoint(db: Path, verifier: Verifier, signer: Ed25519Signer) -> None:
    _sql(db, ("UPDATE checkpoints SET note = ? WHERE size = 10", (_forged(signer, 10),)))
    assert _verify(db, verifier) == (False, 9, "checkpoint_signature")


def test_checkpoint_moved_to_another_size(db: Path, verifier: Verifier) -> None:
    con = sqlite3.connect(db)
    (note,) = con.execute("SELECT note FROM checkpoints WHERE size = 12").fetchone()
    con.close()
    _sql(db, ("UPDATE checkpoints SET note = ? WHERE size = 10", (note,)))
    assert _verify(db, verifier) == (False, 9, "checkpoint_misfiled")


def test_wrong_public_key(db: Path, signer: Ed25519Signer) -> None:
    other = Verifier(signer.name, Ed25519PrivateKey.generate().public_key())
    assert _verify(db, other) == (False, 0, "checkpoint_signature")


# The same attacks on an export, checked with nothing but the export.


@pytest.fixture
def exported(db: Path, tmp_path: Path) -> Path:
    with AuditLog.open(db) as log:
        export(log, tmp_path / "export")
    return tmp_path / "export"


def _lines(directory: Path) -> list[bytes]:
    return (directory / "entries.jsonl").read_bytes().split(b"\n")[:-1]


def _write(directory: Path, lines: list[bytes]) -> None:
    (directory / "entries.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))


def _report(directory: Path, verifier: Verifier | None = None) -> tuple[bool, int | None, str]:
    report = verify_export(directory, verifier)
    return report.ok, report.first_bad_index, report.code


def test_an_untouched_export_verifies(exported: Path, verifier: Verifier) -> None:
    assert _report(exported) == (True, None, "ok")
    assert _report(exported, verifier) == (True, None, "ok")
    assert json.loads((exported / "manifest.json").read_text())["entries"] == COUNT


@pytest.mark.parametrize(
    ("attack", "index", "code"),
    [
        (lambda ls: [*ls[:7], ls[7].replace(b'"denied"', b'"allowed"'), *ls[8:]], 7, "root_mismatch"),
        (lambda ls: ls[:7] + ls[8:], 7, "root_mismatch"),
        (lambda ls: [*ls[:7], ls[8], ls[7], *ls[9:]], 7, "root_mismatch"),
        (lambda ls: ls[:15], 15, "truncated"),
    ],
    ids=["edit", "delete", "reorder", "truncate"],
)
def test_tampered_export_entries(
    exported: Path, attack: Callable[[list[bytes]], list[bytes]], index: int, code: str
) -> None:
    _write(exported, attack(_lines(exported)))
    assert _report(exported) == (False, index, code)


def test_export_with_a_replaced_checkpoint(exported: Path, signer: Ed25519Signer) -> None:
    path = exported / "checkpoints.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[10]["note"] = _forged(signer, rows[10]["size"])
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert _report(exported) == (False, 9, "checkpoint_signature")


def test_export_with_a_swapped_key_fails_against_the_pinned_key(
    exported: Path, signer: Ed25519Signer
) -> None:
    other = Verifier(signer.name, Ed25519PrivateKey.generate().public_key())
    (exported / "audit.vkey").write_text(other.vkey() + "\n")
    assert _report(exported) == (False, 0, "checkpoint_signature")


@pytest.mark.parametrize(
    ("attack", "index"),
    [
        (lambda d: _write(d, [*_lines(d), _lines(d)[0]]), COUNT),
        (lambda d: (d / "entries.jsonl").write_bytes((d / "entries.jsonl").read_bytes() + b"\n"), COUNT),
        (lambda d: (d / "checkpoints.jsonl").write_text(""), 0),
        (
            lambda d: (d / "checkpoints.jsonl").write_text(
                "".join((d / "checkpoints.jsonl").read_text().splitlines(keepends=True)[:6])
            ),
            5,
        ),
    ],
    ids=["appended-entry", "appended-blank-line", "checkpoints-emptied", "last-checkpoints-removed"],
)
def test_export_entries_no_checkpoint_covers_are_tampering(
    exported: Path, verifier: Verifier, attack: Callable[[Path], object], index: int
) -> None:
    # An export holds only the signed prefix: an uncovered tail was added, or its signatures removed.
    attack(exported)
    assert _report(exported, verifier) == (False, index, "unsigned_entries")
    assert _report(exported) == (False, index, "unsigned_entries")


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("verdict", "allowed"),
        ("namespace", "kube-system"),
        ("username", "system:admin"),
        ("kind", "Secret"),
        ("policies", ""),
        ("time", "1999-01-01T00:00:00.000000Z"),
        ("source", "ci"),
    ],
)
def test_edited_query_column(db: Path, verifier: Verifier, column: str, value: str) -> None:
    # The entry still hashes right, but a query filtering on the column would now hide or misfile it.
    _sql(db, (f"UPDATE entries SET {column} = ? WHERE idx = 7", (value,)))
    assert _verify(db, verifier) == (False, 7, "index_mismatch")


def test_a_query_judges_entries_by_their_content_not_edited_columns(db: Path) -> None:
    with AuditLog.open(db) as log:
        denied = [row.index for row in log.query(Query(verdict="denied"))]
    _sql(db, ("UPDATE entries SET verdict = 'denied'", ()))
    with AuditLog.open(db) as log:
        assert [row.index for row in log.query(Query(verdict="denied"))] == denied


def test_a_row_filed_below_index_0_is_never_returned_as_an_entry(db: Path, verifier: Verifier) -> None:
    _sql(
        db,
        (
            "INSERT INTO entries SELECT -1, data, leaf_hash, time, source, verdict, namespace, username, "
            "kind, policies FROM entries WHERE idx = 0",
            (),
        ),
    )
    with AuditLog.open(db) as log:
        assert [row.index for row in log.query(Query(after=-100))] == list(range(COUNT))


def test_a_live_log_stripped_of_its_checkpoints_is_tampered(db: Path, verifier: Verifier) -> None:
    _sql(db, ("DELETE FROM checkpoints", ()))
    assert _verify(db, verifier) == (False, 0, "unsigned_entries")


def test_a_long_unsigned_tail_fails_the_cli_verify(
    db: Path, keyfiles: KeyFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from audit.cli import add_commands  # the CLI applies --max-unsigned on top of verify_log

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    _sql(db, ("DELETE FROM checkpoints WHERE size > 0", ()))
    base = ["audit", "verify", "--audit-log", str(db), "--public-key", str(keyfiles.vkey)]
    args = parser.parse_args(base)
    assert args.func(args) == 0  # within one batch: still in flight
    args = parser.parse_args([*base, "--max-unsigned", "0"])
    assert args.func(args) == 1
    assert "unsigned_tail" in capsys.readouterr().out
