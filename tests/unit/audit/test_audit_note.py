"""Signed notes, checkpoints, key files and tlog-proof texts."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import keygen, load_signer, load_verifier
from audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from audit.errors import KeyFileError, NoteError, ProofFormatError
from audit.keys import KeyFiles
from audit.merkle import leaf_hash
from audit.note import Ed25519Signer, Verifier, key_id, open_note, sign_note
from audit.proof import InclusionProof, verify_proof

ROOT = hashlib.sha256(b"root").digest()


def test_key_id_is_the_c2sp_recommendation() -> None:
    public = bytes(range(32))
    expected = hashlib.sha256(b"example.com/log" + b"\x0a" + b"\x01" + public).digest()[:4]
    assert key_id("example.com/log", public) == expected


def test_keygen_writes_three_files_with_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    files = keygen("example.com/log", tmp_path)
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert files.key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert files.pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    vkey = files.vkey.read_text().strip()
    name, hexid, blob = vkey.split("+", 2)
    raw = base64.b64decode(blob)
    assert name == "example.com/log" and raw[0] == 1 and len(raw) == 33
    assert bytes.fromhex(hexid) == key_id(name, raw[1:])
    assert load_signer(files.key).name == "example.com/log"  # the origin comes from audit.vkey
    assert load_verifier(files.pub, "example.com/log").vkey() == vkey
    with pytest.raises(KeyFileError, match="already exist"):
        keygen("example.com/log", tmp_path)


def test_a_pem_public_key_needs_the_origin(keyfiles: KeyFiles) -> None:
    with pytest.raises(KeyFileError) as caught:
        load_verifier(keyfiles.pub)
    assert caught.value.code == "key_origin"


def test_checkpoint_note_round_trip(signer: Ed25519Signer, verifier: Verifier) -> None:
    note = sign_checkpoint(Checkpoint(signer.name, 42, ROOT), signer)
    body, _, signature_line = note.partition("\n\n")
    assert body == f"{signer.name}\n42\n{base64.b64encode(ROOT).decode()}"
    assert signature_line.startswith(f"\u2014 {signer.name} ")
    assert base64.b64decode(signature_line.split(" ")[2])[:4] == verifier.key_id
    assert open_checkpoint(note, verifier) == Checkpoint(signer.name, 42, ROOT)


def test_notes_with_an_edited_text_or_a_foreign_key_do_not_open(
    signer: Ed25519Signer, verifier: Verifier
) -> None:
    note = sign_checkpoint(Checkpoint(signer.name, 42, ROOT), signer)
    with pytest.raises(NoteError) as caught:
        open_note(note.replace("\n42\n", "\n43\n"), [verifier])
    assert caught.value.code == "signature_invalid"
    other = Verifier(signer.name, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(NoteError) as caught:
        open_note(note, [other])
    assert caught.value.code == "signature_unknown_key"
    imposter = Ed25519Signer(signer.name, Ed25519PrivateKey.generate())
    with pytest.raises(NoteError):
        open_checkpoint(sign_checkpoint(Checkpoint(signer.name, 42, ROOT), imposter), verifier)


def test_unknown_signatures_are_ignored(signer: Ed25519Signer, verifier: Verifier) -> None:
    witness = Ed25519Signer("witness.example", Ed25519PrivateKey.generate())
    note = sign_note("hello\n", signer)
    cosigned = note + sign_note("hello\n", witness).partition("\n\n")[2]
    assert open_note(cosigned, [verifier]) == "hello\n"


@pytest.mark.parametrize(
    "text", ["no newline", "blank\n\nline\n", "tab\there\n"], ids=["unterminated", "blank", "control"]
)
def test_note_text_must_be_well_formed(signer: Ed25519Signer, text: str) -> None:
    with pytest.raises(NoteError):
        sign_note(text, signer)


def test_tlog_proof_round_trip_and_offline_check(signer: Ed25519Signer, verifier: Verifier) -> None:
    entries = [b"a", b"b", b"c"]
    leaves = [leaf_hash(e) for e in entries]
    from audit.merkle import inclusion_proof, root_of

    hashes = inclusion_proof(1, 3, lambda s, e: root_of(leaves[s:e]))
    note = sign_checkpoint(Checkpoint(signer.name, 3, root_of(leaves)), signer)
    text = InclusionProof(1, tuple(hashes), note, extra=b"b").text()
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra Yg==\nindex 1\n")
    assert InclusionProof.parse(text) == InclusionProof(1, tuple(hashes), note, b"b")
    checkpoint, data = verify_proof(text, verifier)
    assert (checkpoint.size, data) == (3, b"b")
    with pytest.raises(Exception, match="root"):
        verify_proof(text, verifier, entry=b"x")
    with pytest.raises(ProofFormatError):
        InclusionProof.parse("c2sp.org/tlog-proof@v1\nindex 01\n\n" + note)
