"""Key rotation and revocation: co-signed hand-overs, a writer that picks up the new key, forged
hand-overs, revoked keys, exports that carry every key, and each signature checked with openssl."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from audit import AuditLog, errors, keygen, load_signer, load_verifier
from audit.checkpoint import Checkpoint, peek_checkpoint, sign_checkpoint
from audit.errors import KeyFileError
from audit.export import export, verify_export
from audit.keychain import handover_meta, parse_handover, sign_handover
from audit.note import split_note
from tests.unit.audit.test_audit_cli import run

ORIGIN = "example.com/rotating"
Make = Callable[..., dict[str, Any]]


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("k0", "k1", "k2", "evil"):
        keygen(ORIGIN, tmp_path / name)
        out[name] = tmp_path / name
    return out


def rotated_log(tmp_path: Path, keys: dict[str, Path], make: Make) -> Path:
    """5 entries under k0, a hand-over to k1 recorded by the CLI while the writer runs, 5 more entries."""
    db = tmp_path / "audit.db"
    k0, k1 = load_signer(keys["k0"] / "audit.key"), load_signer(keys["k1"] / "audit.key")
    with AuditLog.open(db, signer=k0, next_signers=[k1], max_batch=1) as writer:
        for i in range(5):
            writer.append(make(i))
        # Another process (an operator) records the hand-over; the running writer must follow it.
        args = ("--audit-log", str(db), "--key", str(keys["k0"] / "audit.key"))
        assert run("audit", "rotate-key", *args, "--new-key", str(keys["k1"] / "audit.key")) == 0
        for i in range(5, 10):
            writer.append(make(i))
    return db


def signers_of(note: str) -> set[bytes]:
    return {kid for _, kid, _ in split_note(note)[1]}


def test_rotation_mid_log_verifies_and_only_the_new_key_signs_after_it(
    tmp_path: Path, keys: dict[str, Path], make: Make, capsys: pytest.CaptureFixture[str]
) -> None:
    db = rotated_log(tmp_path, keys, make)
    k0, k1 = load_verifier(keys["k0"] / "audit.vkey"), load_verifier(keys["k1"] / "audit.vkey")
    with AuditLog.open(db) as log:
        handover = log.store.meta(handover_meta(1))
        assert handover is not None
        checkpoint, new = parse_handover(handover)
        assert checkpoint.size == 5 and new == k1
        assert signers_of(handover) == {k0.key_id, k1.key_id}  # co-signed: a note with two signatures
        after = [note for size, note in log.store.checkpoints() if size > 5]
        assert len(after) == 5 and all(signers_of(n) == {k1.key_id} for n in after)
        assert log.verify(k0).ok
    capsys.readouterr()
    assert run("audit", "verify", "--audit-log", str(db), "--public-key", str(keys["k0"] / "audit.vkey")) == 0
    assert "intact: 10 entries" in capsys.readouterr().out


def test_a_writer_without_the_new_key_stops_signing(
    tmp_path: Path, keys: dict[str, Path], make: Make
) -> None:
    db = rotated_log(tmp_path, keys, make)
    with pytest.raises(KeyFileError) as caught:
        AuditLog.open(db, signer=load_signer(keys["k0"] / "audit.key"))
    assert caught.value.code == errors.KEY_ROTATED
    with AuditLog.open(db, signer=load_signer(keys["k1"] / "audit.key")) as log:
        log.append(make(10))  # the new key alone is enough from now on
        assert log.verify(load_verifier(keys["k0"] / "audit.vkey")).ok


def test_a_writer_that_misses_the_new_key_refuses_to_sign_with_the_old(
    tmp_path: Path, keys: dict[str, Path], make: Make
) -> None:
    db = tmp_path / "audit.db"
    with AuditLog.open(db, signer=load_signer(keys["k0"] / "audit.key"), max_batch=1) as writer:
        writer.append(make(0))
        assert run(
            "audit", "rotate-key", "--audit-log", str(db), "--key", str(keys["k0"] / "audit.key"),
            "--new-key", str(keys["k1"] / "audit.key"),
        ) == 0  # fmt: skip
        writer.append(make(1))  # durable; its signature is refused, which breaks the writer
        with pytest.raises(KeyFileError) as caught:
            writer.append(make(2))
        assert caught.value.code == errors.KEY_ROTATED
    with AuditLog.open(db) as log:
        assert max(size for size, _ in log.store.checkpoints()) == 1  # nothing signed by the old key after
        assert log.verify(load_verifier(keys["k0"] / "audit.vkey")).ok


def test_a_forged_handover_is_tampering(tmp_path: Path, keys: dict[str, Path], make: Make) -> None:
    db = tmp_path / "audit.db"
    k0 = load_verifier(keys["k0"] / "audit.vkey")
    evil = load_signer(keys["evil"] / "audit.key")
    with AuditLog.open(db, signer=load_signer(keys["k0"] / "audit.key"), max_batch=1) as log:
        for i in range(4):
            log.append(make(i))
    with AuditLog.open(db) as log:
        head = log.store.head()
        latest = peek_checkpoint(log.checkpoint() or "")
        # The attacker hands the log over to their key with their key alone (they do not hold k0) ...
        assert log.store.meta(handover_meta(1), sign_handover(latest, evil, evil)) is not None
        # ... and signs a checkpoint with it.
        log.store.add_checkpoint(9, sign_checkpoint(Checkpoint(ORIGIN, 9, head.root), evil))
        report = log.verify(k0)
    assert not report.ok and report.code == errors.HANDOVER_INVALID
    assert "not signed by the key it hands over from" in report.message
    assert report.first_bad_index == 4


def test_a_checkpoint_signed_by_a_key_never_handed_over_to(
    tmp_path: Path, keys: dict[str, Path], make: Make
) -> None:
    db = tmp_path / "audit.db"
    with AuditLog.open(db, signer=load_signer(keys["k0"] / "audit.key"), max_batch=1) as log:
        for i in range(3):
            log.append(make(i))
    with AuditLog.open(db) as log:
        note = log.checkpoint() or ""
        # A k0 checkpoint with the attacker's signature added is no hand-over: no line names the next key.
        text, _ = split_note(note)
        evil = load_signer(keys["evil"] / "audit.key")
        blob = base64.b64encode(evil.verifier().key_id + evil.sign(text.encode())).decode()
        assert log.store.meta(handover_meta(1), note + f"\u2014 {ORIGIN} {blob}\n") is not None
        report = log.verify(load_verifier(keys["k0"] / "audit.vkey"))
    assert not report.ok and report.code == errors.HANDOVER_INVALID


def test_an_old_key_signing_after_its_handover_is_tampering(
    tmp_path: Path, keys: dict[str, Path], make: Make
) -> None:
    db = rotated_log(tmp_path, keys, make)
    k0 = load_signer(keys["k0"] / "audit.key")
    with AuditLog.open(db) as log:
        size, note = log.store.checkpoints()[-1]
    forged = sign_checkpoint(peek_checkpoint(note), k0)  # the same checkpoint, signed by the old key only
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (forged, size))
    with AuditLog.open(db) as log:
        report = log.verify(k0.verifier())
    assert not report.ok and report.code == errors.KEY_NOT_TRUSTED


def test_revoked_key(
    tmp_path: Path, keys: dict[str, Path], make: Make, capsys: pytest.CaptureFixture[str]
) -> None:
    db = rotated_log(tmp_path, keys, make)
    vkey0 = str(keys["k0"] / "audit.vkey")
    # The log still signs with k1: revoking it is refused until the log is handed over.
    assert run("audit", "revoke-key", "--audit-log", str(db), "--public-key", str(keys["k1"] / "audit.vkey"),
               "--from", "7") == 2  # fmt: skip
    # k0 leaked from size 3 on: its checkpoints 3..5, the hand-over among them, count no more.
    assert run("audit", "revoke-key", "--audit-log", str(db), "--public-key", vkey0, "--from", "3") == 0
    capsys.readouterr()
    assert run("audit", "verify", "--audit-log", str(db), "--public-key", vkey0) == 1
    out = capsys.readouterr().out
    assert "TAMPERED at index 2: key_revoked" in out
    # An auditor who got k1 out of band trusts it directly; k1's hand-over signature covers entries 0..4.
    assert run("audit", "verify", "--audit-log", str(db), "--public-key", vkey0,
               "--successor-key", str(keys["k1"] / "audit.vkey")) == 0  # fmt: skip
    assert "intact: 10 entries" in capsys.readouterr().out
    # A size no log reaches is refused, not read back as "revoked from 0".
    assert (
        run("audit", "revoke-key", "--audit-log", str(db), "--public-key", vkey0, "--from", str(2**64)) == 2
    )
    # A revocation is set once: a second, different one is refused.
    assert run("audit", "revoke-key", "--audit-log", str(db), "--public-key", vkey0, "--from", "4") == 2


def test_export_carries_every_key_with_its_range(tmp_path: Path, keys: dict[str, Path], make: Make) -> None:
    db = rotated_log(tmp_path, keys, make)
    with AuditLog.open(db) as log:
        export(log, tmp_path / "out")
    body = json.loads((tmp_path / "out" / "keys.json").read_text())
    vkeys = [(keys[k] / "audit.vkey").read_text().strip() for k in ("k0", "k1")]
    assert [(k["vkey"], k["first_size"], k["last_size"]) for k in body["keys"]] == [
        (vkeys[0], 0, 5),
        (vkeys[1], 5, 10),
    ]
    assert len(body["handovers"]) == 1
    assert verify_export(tmp_path / "out").ok
    # A key list edited to hide the hand-over (the new key's range claimed from 0) is refused.
    body["keys"][1]["first_size"] = 0
    (tmp_path / "out" / "keys.json").write_text(json.dumps(body))
    with pytest.raises(errors.ExportError, match="differs from the chain"):
        verify_export(tmp_path / "out")
    # So is one with the hand-overs removed: k1's checkpoints are then signed by a key never handed over to.
    body["handovers"], body["keys"] = [], body["keys"][:1]
    (tmp_path / "out" / "keys.json").write_text(json.dumps(body))
    report = verify_export(tmp_path / "out")
    assert not report.ok and report.code == errors.CHECKPOINT_SIGNATURE and report.first_bad_index == 5


@pytest.mark.parametrize(
    "content", ["{", '{"keys": 1}', "x" * (5 << 20), '{"keys": [], "handovers": [1], "revocations": {}}']
)
def test_hostile_keys_json(tmp_path: Path, keys: dict[str, Path], make: Make, content: str) -> None:
    db = rotated_log(tmp_path, keys, make)
    with AuditLog.open(db) as log:
        export(log, tmp_path / "out")
    (tmp_path / "out" / "keys.json").write_text(content)
    try:
        report = verify_export(tmp_path / "out")
    except errors.ExportError as exc:
        assert "keys.json" in exc.message
    else:
        assert not report.ok


def _openssl_verify(tmp_path: Path, pem: str, message: bytes, signature: bytes) -> bool:
    (tmp_path / "key.pem").write_text(pem)
    (tmp_path / "msg").write_bytes(message)
    (tmp_path / "sig").write_bytes(signature)
    done = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "key.pem"), "-rawin",
         "-in", str(tmp_path / "msg"), "-sigfile", str(tmp_path / "sig")],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode == 0


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_verifies_each_signature(tmp_path: Path, keys: dict[str, Path], make: Make) -> None:
    db = rotated_log(tmp_path, keys, make)
    with AuditLog.open(db) as log:
        export(log, tmp_path / "out")
    body = json.loads((tmp_path / "out" / "keys.json").read_text())
    pems = {load_verifier_text(k["vkey"]).key_id: k["pem"] for k in body["keys"]}
    notes = [
        json.loads(line)["note"] for line in (tmp_path / "out" / "checkpoints.jsonl").read_text().splitlines()
    ]
    checked = 0
    for note in [*body["handovers"], *notes]:
        text, signatures = split_note(note)
        for _, kid, signature in signatures:
            assert _openssl_verify(tmp_path, pems[kid], text.encode(), signature)
            checked += 1
            bad = bytes([signature[0] ^ 1]) + signature[1:]
            assert not _openssl_verify(tmp_path, pems[kid], text.encode(), bad)
    assert checked == 11 + 2  # 11 checkpoints (sizes 0..10) and the hand-over's two signatures


def load_verifier_text(vkey: str) -> Any:
    from audit.note import Verifier

    return Verifier.from_vkey(vkey)


def test_a_rotated_log_archives_and_verifies_with_its_key_chain(
    tmp_path: Path, keys: dict[str, Path], make: Make, capsys: pytest.CaptureFixture[str]
) -> None:
    """An archive of a prefix signed by two keys carries the hand-over (keys.json): it is written,
    dropped and verified offline and with the live log, pinning only the first key."""
    db = rotated_log(tmp_path, keys, make)
    k1 = load_signer(keys["k1"] / "audit.key")
    with AuditLog.open(db, signer=k1, max_batch=1) as writer:
        writer.append(make(10))
    out = tmp_path / "archive"
    base = ("--audit-log", str(db))
    assert (
        run("audit", "archive", *base, "--before", "2100-01-01T00:00:00Z", "--out", str(out), "--drop") == 0
    )
    body = json.loads((out / "keys.json").read_text())
    assert len(body["keys"]) == 2 and len(body["handovers"]) == 1
    first = ("--public-key", str(keys["k0"] / "audit.vkey"))
    capsys.readouterr()
    assert run("audit", "verify", "--archive", str(out), *first) == 0
    assert run("audit", "verify", *base, "--archive", str(out), *first) == 0
    assert capsys.readouterr().out.count("intact: 11 entries") == 2
    # The hand-over is what makes the second key trusted: without it the archive is tampering.
    body["handovers"] = []
    body["keys"] = body["keys"][:1]
    (out / "keys.json").write_text(json.dumps(body))
    assert run("audit", "verify", "--archive", str(out), *first) == 1
