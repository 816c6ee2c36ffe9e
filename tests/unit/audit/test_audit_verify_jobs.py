"""``verify --jobs N`` gives the same report as one process, on an intact log and on tampered ones.

The log is split into many small ranges (one worker process checks several), so that tampering lands
inside a range, on its first or last entry, and across the pages of the in-process path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from audit import AuditLog, canonical
from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.entry import index_fields
from audit.merkle import leaf_hash
from audit.note import Ed25519Signer, Verifier
from audit.parallel import split
from audit.scan import derive_columns
from audit.stores import Record
from audit.stores.sqlite import SQLiteStore
from tests.unit.audit.test_audit_cli import run
from tests.unit.audit.test_audit_tamper import _data, _sql

Make = Callable[..., dict[str, Any]]
COUNT = 240
RANGE = 40  # entries per worker range in these tests
BATCHES = (1, 7, 13, 30, 39, 1, 41, 50, 58)  # checkpoint sizes fall inside and on range edges


@pytest.fixture
def db(tmp_path: Path, signer: Ed25519Signer, make: Make, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr("audit.parallel.MIN_RANGE", RANGE)
    monkeypatch.setattr("audit.parallel.PAGE", 16)  # pages of the in-process path, inside each range
    path = tmp_path / "audit.db"
    store = SQLiteStore(str(path))
    with AuditLog.open(store, signer=signer) as log:
        done = 0
        for size in BATCHES:
            records = []
            for i in range(done, done + size):
                data = canonical(make(i))
                records.append(Record(data, leaf_hash(data), index_fields(make(i))))
            store.append(records)
            log.sign_pending()
            done += size
    assert done == COUNT
    return path


def _edited(path: Path, index: int) -> bytes:
    return _data(path, index).replace(b'"uid-', b'"UID-')


def _forged(signer: Ed25519Signer, size: int) -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    imposter = Ed25519Signer(signer.name, Ed25519PrivateKey.generate())
    return sign_checkpoint(Checkpoint(signer.name, size, b"\x01" * 32), imposter)


TAMPERINGS: dict[str, Callable[[Path, Ed25519Signer], None]] = {
    "intact": lambda db, signer: None,
    "edited entry": lambda db, signer: _sql(
        db, ("UPDATE entries SET data = ? WHERE idx = 97", (_edited(db, 97),))
    ),
    "edited entry with its leaf hash": lambda db, signer: _sql(
        db,
        (
            "UPDATE entries SET data = ?, leaf_hash = ? WHERE idx = 120",
            (_edited(db, 120), leaf_hash(_edited(db, 120))),
        ),
    ),
    "first entry of a range deleted": lambda db, signer: _sql(db, ("DELETE FROM entries WHERE idx = 80", ())),
    "last entry of a range deleted": lambda db, signer: _sql(db, ("DELETE FROM entries WHERE idx = 119", ())),
    "a whole range deleted": lambda db, signer: _sql(
        db, ("DELETE FROM entries WHERE idx >= 40 AND idx < 80", ())
    ),
    "tail deleted": lambda db, signer: _sql(db, ("DELETE FROM entries WHERE idx >= 201", ())),
    "query column edited": lambda db, signer: _sql(
        db, ("UPDATE entries SET verdict = 'allowed', namespace = 'x' WHERE idx = 150", ())
    ),
    "query column edited, later entry edited": lambda db, signer: _sql(
        db,
        ("UPDATE entries SET namespace = 'x' WHERE idx = 30", ()),
        (
            "UPDATE entries SET data = ?, leaf_hash = ? WHERE idx = 170",
            (_edited(db, 170), leaf_hash(_edited(db, 170))),
        ),
    ),
    "entry edited, later query column edited": lambda db, signer: _sql(
        db,
        (
            "UPDATE entries SET data = ?, leaf_hash = ? WHERE idx = 45",
            (_edited(db, 45), leaf_hash(_edited(db, 45))),
        ),
        ("UPDATE entries SET kind = 'Secret' WHERE idx = 210", ()),
    ),
    "forged checkpoint": lambda db, signer: _sql(
        db, ("UPDATE checkpoints SET note = ? WHERE size = 90", (_forged(signer, 90),))
    ),
    "entries reordered across ranges": lambda db, signer: _sql(
        db,
        ("UPDATE entries SET idx = -1 WHERE idx = 79", ()),
        ("UPDATE entries SET idx = 79 WHERE idx = 80", ()),
        ("UPDATE entries SET idx = 80 WHERE idx = -1", ()),
    ),
}


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_jobs_give_the_same_report_as_one_process(
    db: Path, verifier: Verifier, signer: Ed25519Signer, name: str
) -> None:
    assert len(split(0, COUNT + 1, 2)) > 2  # the log is checked in several ranges, not by one worker
    TAMPERINGS[name](db, signer)
    with AuditLog.open(db) as log:
        one = log.verify(verifier)
        several = log.verify(verifier, jobs=2)
    assert several == one
    assert one.ok == (name == "intact"), one


def test_cli_verify_jobs(
    db: Path, verifier: Verifier, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vkey = tmp_path / "audit.vkey"
    vkey.write_text(verifier.vkey() + "\n")
    _sql(db, ("DELETE FROM entries WHERE idx = 80", ()))

    base = ("audit", "verify", "--audit-log", str(db), "--public-key", str(vkey))
    assert run(*base) == 1
    one = capsys.readouterr().out
    assert run(*base, "--jobs", "2") == 1
    assert capsys.readouterr().out == one
    assert "TAMPERED at index 80" in one
    with pytest.raises(SystemExit) as caught:
        run(*base, "--jobs", "0")
    assert caught.value.code == 2


@pytest.mark.parametrize(
    "data",
    [
        b'{"time":"t","results":[{"policy":"a"},{"policy":"a"},{"policy":""},7,{"policy":3}],"user":[]}',
        b'{"resource":{"kind":5,"namespace":null},"user":{"username":true},"source":1.5e400}',
        b'  {"time":"leading and trailing whitespace"}  ',
        b'{"time":"trailing data"} x',
        b'{"a":"\\ud800 lone surrogate"}',
        "\ufeff{}".encode(),
        '{"time":"utf-16"}'.encode("utf-16-le"),
        '{"time":"utf-16 with a BOM"}'.encode("utf-16"),
        b"[1, 2]",
        b'"text"',
        b"{" * 100_000,
        b'{"time":"\xff invalid UTF-8"}',
        b"",
    ],
)
def test_derived_columns_are_those_of_index_fields(data: bytes) -> None:
    """Hostile entry bytes give the columns the reference derivation gives, or None where it fails."""
    from audit.entry import parse
    from audit.errors import EntryError

    try:
        fields = index_fields(parse(data))
    except (ValueError, EntryError, RecursionError):
        assert derive_columns(data) is None
        return
    names = (fields.time, fields.source, fields.verdict, fields.namespace, fields.user, fields.kind)
    assert derive_columns(data) == (names, "\n".join(fields.policies))


ENTRY = (
    b'{"resource":{"kind":"Pod","namespace":"ml"},"results":[{"policy":"a"},{"policy":"b"}],'
    b'"source":"ci","time":"t","user":{"username":"u"},"verdict":"denied"}'
)


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        (("t", "ci", "denied", "ml", "u", "Pod", "\na\nb\n"), True),
        # Not as the stores write it: a query by policy (LIKE '%\na\n%') would miss the entry.
        (("t", "ci", "denied", "ml", "u", "Pod", "a\nb"), False),
        (("t", "ci", "denied", "ml", "u", "Pod", "\n\na\nb\n\n"), False),
        (("t", "ci", "allowed", "ml", "u", "Pod", "\na\nb\n"), False),
        (("t", "ci", "denied", "ml", "u", "Pod", "\na\n"), False),
        (("t", "ci", "denied", "ml", "u", "Pod", ""), False),
        ((b"t", "ci", "denied", "ml", "u", "Pod", "\na\nb\n"), False),
    ],
)
def test_the_quick_column_check_agrees_with_the_reference(columns: tuple[object, ...], match: bool) -> None:
    from audit.scan import _columns_match, _columns_match_slowly

    row = (0, ENTRY, leaf_hash(ENTRY), *columns)
    assert _columns_match(row, ENTRY) is match
    assert _columns_match_slowly(row, ENTRY) is match
