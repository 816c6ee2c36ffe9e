"""Checkpoint signatures and key files checked by OpenSSL, an implementation other than ours."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from audit import AuditLog, load_signer, load_verifier
from audit.keys import KeyFiles
from audit.note import open_note

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="the openssl command is not installed"
)


Make = Callable[[int], dict[str, Any]]


def _openssl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], capture_output=True, check=False)


def test_checkpoints_verify_with_openssl(keyfiles: KeyFiles, tmp_path: Path, make: Make) -> None:
    with AuditLog.open(tmp_path / "audit.db", signer=load_signer(keyfiles.key)) as log:
        for i in range(5):
            log.append(make(i))
        log.sign_pending()  # the writer signs right after answering; do not race it
        notes = [note for _, note in log.store.checkpoints()]
    assert len(notes) == 6
    for n, note in enumerate(notes):
        text, _, signature_line = note.rpartition("\n\n")
        body = tmp_path / f"body{n}"
        body.write_bytes((text + "\n").encode())
        signature = tmp_path / f"sig{n}"
        signature.write_bytes(base64.b64decode(signature_line.split(" ")[2])[4:])  # drop the 4-byte key id
        pubkey = str(keyfiles.pub)
        ok = _openssl(
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            pubkey,
            "-rawin",
            "-in",
            str(body),
            "-sigfile",
            str(signature),
        )
        assert ok.returncode == 0, ok.stderr
        body.write_bytes((text + "\n").replace(f"\n{n}\n", f"\n{n + 1}\n").encode())
        forged = _openssl(
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            pubkey,
            "-rawin",
            "-in",
            str(body),
            "-sigfile",
            str(signature),
        )
        assert forged.returncode != 0


def test_notes_signed_by_openssl_open_with_our_verifier(keyfiles: KeyFiles, tmp_path: Path) -> None:
    verifier = load_verifier(keyfiles.vkey)
    text = f"{verifier.name}\n7\n{base64.b64encode(b'r' * 32).decode()}\n"
    body = tmp_path / "body"
    body.write_bytes(text.encode())
    out = tmp_path / "sig"
    signed = _openssl(
        "pkeyutl", "-sign", "-inkey", str(keyfiles.key), "-rawin", "-in", str(body), "-out", str(out)
    )
    assert signed.returncode == 0, signed.stderr
    note = f"{text}\n\u2014 {verifier.name} {base64.b64encode(verifier.key_id + out.read_bytes()).decode()}\n"
    assert open_note(note, [verifier]) == text


def test_openssl_reads_the_key_files_as_one_pair(keyfiles: KeyFiles) -> None:
    derived = _openssl("pkey", "-in", str(keyfiles.key), "-pubout")
    assert derived.returncode == 0, derived.stderr
    assert derived.stdout == keyfiles.pub.read_bytes()
    der = _openssl("pkey", "-pubin", "-in", str(keyfiles.pub), "-outform", "DER").stdout
    assert base64.b64decode(keyfiles.vkey.read_text().strip().split("+", 2)[2])[1:] == der[-32:]
