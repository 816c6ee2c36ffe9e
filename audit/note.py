"""C2SP signed notes (c2sp.org/signed-note) with Ed25519: key ids, verifier keys, signing and opening.

Signing goes through the ``Signer`` protocol so a key held elsewhere (KMS, HSM) can stand in for the
in-process ``Ed25519Signer``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit import errors
from audit.errors import NoteError

ALG_ED25519 = 0x01
DASH = "\u2014 "
MAX_SIGNATURES = 100
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # control characters but the newline: found in C


def key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0x01 || public key)[:4], as c2sp.org/signed-note recommends."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def check_name(name: str) -> str:
    if not name or any(ch.isspace() or ch == "+" for ch in name):
        raise NoteError(f"key name {name!r} must be non-empty, without spaces or '+'", code=errors.KEY_NAME)
    return name


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """A named Ed25519 public key that checks note signatures."""

    name: str
    public_key: Ed25519PublicKey

    @property
    def raw(self) -> bytes:
        return raw_public(self.public_key)

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.raw)

    def vkey(self) -> str:
        """The verifier key text: ``name+hex(key id)+base64(0x01 || public key)``."""
        blob = base64.b64encode(bytes([ALG_ED25519]) + self.raw).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    @classmethod
    def from_vkey(cls, text: str) -> Verifier:
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError("a verifier key is name+keyid+base64", code=errors.VKEY_INVALID)
        name, hexid, blob = parts
        try:
            raw = base64.b64decode(blob, validate=True)
            wanted = bytes.fromhex(hexid)
        except (binascii.Error, ValueError) as exc:
            raise NoteError(f"verifier key is not encoded properly: {exc}", code=errors.VKEY_INVALID) from exc
        if len(raw) != 33 or raw[0] != ALG_ED25519 or len(wanted) != 4:
            raise NoteError("verifier key is not an Ed25519 key", code=errors.VKEY_INVALID)
        verifier = cls(check_name(name), Ed25519PublicKey.from_public_bytes(raw[1:]))
        if verifier.key_id != wanted:
            raise NoteError("verifier key id does not match its key", code=errors.VKEY_INVALID)
        return verifier

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Signer(Protocol):
    """Signs note texts under a key name."""

    @property
    def name(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...

    def verifier(self) -> Verifier: ...


class Ed25519Signer:
    """An in-process Ed25519 key."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._name = check_name(name)
        self._key = private_key
        self._verifier: Verifier | None = None  # the key never changes: its verifier is made once

    @property
    def name(self) -> str:
        return self._name

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def verifier(self) -> Verifier:
        if self._verifier is None:
            self._verifier = Verifier(self._name, self._key.public_key())
        return self._verifier


def sign_note(text: str, signer: Signer) -> str:
    """A signed note of ``text`` (which must end in a newline) with one signature line."""
    if not text.endswith("\n") or "\n\n" in text or _CONTROL.search(text):
        raise NoteError("note text must end in a newline, without blank lines or control characters")
    verifier = signer.verifier()
    signature = signer.sign(text.encode())
    blob = base64.b64encode(verifier.key_id + signature).decode()
    return f"{text}\n{DASH}{signer.name} {blob}\n"


def split_note(note: str) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """The text and its (name, key id, signature) lines; raises NoteError when malformed."""
    if _CONTROL.search(note):
        raise NoteError("a note must not hold control characters")
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("a note is text, a blank line, and signature lines")
    text, lines = note[: cut + 1], note[cut + 2 : -1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError("too many signatures")
    signatures: list[tuple[str, bytes, bytes]] = []
    for line in lines:
        if not line.startswith(DASH):
            raise NoteError(f"malformed signature line {line!r}")
        name, _, blob = line[len(DASH) :].partition(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except binascii.Error as exc:
            raise NoteError(f"signature of {name} is not base64") from exc
        if not name or " " in blob or len(raw) < 5:
            raise NoteError(f"malformed signature line {line!r}")
        signatures.append((name, raw[:4], raw[4:]))
    return text, signatures


def open_note(note: str, verifiers: Sequence[Verifier]) -> str:
    """The note's text once a known key's signature verifies; unknown signers are ignored."""
    text, signatures = split_note(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    verified = False
    for name, kid, signature in signatures:
        verifier = known.get((name, kid))
        if verifier is None:
            continue
        if not verifier.verify(text.encode(), signature):
            raise NoteError(f"signature by {name} does not verify", code=errors.SIGNATURE_INVALID)
        verified = True
    if not verified:
        raise NoteError("no signature from a known key", code=errors.SIGNATURE_UNKNOWN_KEY)
    return text
