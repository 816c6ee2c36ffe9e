"""C2SP tlog-checkpoints (c2sp.org/tlog-checkpoint): the signed (origin, size, root) of the log."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from audit import errors
from audit.errors import NoteError
from audit.merkle import HASH_SIZE
from audit.note import Signer, Verifier, open_note, sign_note, split_note


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
            raise NoteError(
                "a checkpoint is origin, size and root on non-empty lines", code=errors.CHECKPOINT_INVALID
            )
        origin, size_text, root_text = lines[0], lines[1], lines[2]
        if not size_text.isdigit() or not size_text.isascii() or (size_text != "0" and size_text[0] == "0"):
            raise NoteError(f"checkpoint size {size_text!r} is not a decimal", code=errors.CHECKPOINT_INVALID)
        try:
            root = base64.b64decode(root_text, validate=True)
        except binascii.Error as exc:
            raise NoteError("checkpoint root is not base64", code=errors.CHECKPOINT_INVALID) from exc
        if len(root) != HASH_SIZE:
            raise NoteError("checkpoint root is not a SHA-256 hash", code=errors.CHECKPOINT_INVALID)
        return cls(origin, int(size_text), root)


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    if signer.name != checkpoint.origin:
        raise NoteError(
            f"key name {signer.name!r} differs from origin {checkpoint.origin!r}", code=errors.KEY_NAME
        )
    return sign_note(checkpoint.text(), signer)


def open_checkpoint(note: str, verifier: Verifier) -> Checkpoint:
    """Verify a checkpoint note against the log's key (whose name is the origin) and parse it."""
    checkpoint = Checkpoint.parse(open_note(note, [verifier]))
    if checkpoint.origin != verifier.name:
        raise NoteError(
            f"checkpoint origin {checkpoint.origin!r} is not {verifier.name!r}", code=errors.ORIGIN_MISMATCH
        )
    return checkpoint


def peek_checkpoint(note: str) -> Checkpoint:
    """Parse a checkpoint note without checking its signature (for stores, which hold trusted notes)."""
    text, _ = split_note(note)
    return Checkpoint.parse(text)
