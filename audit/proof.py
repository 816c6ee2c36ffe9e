"""C2SP tlog-proof texts (c2sp.org/tlog-proof@v1): an entry's inclusion proof plus the checkpoint.

The ``extra`` line carries the entry's canonical bytes so a proof verifies offline with only the log's
public key; the bytes are authenticated by hashing them into the proven leaf.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from audit import errors
from audit.checkpoint import Checkpoint, open_checkpoint
from audit.errors import ProofFormatError
from audit.merkle import leaf_hash, verify_inclusion
from audit.note import Verifier

HEADER = "c2sp.org/tlog-proof@v1"


@dataclass(frozen=True)
class InclusionProof:
    index: int
    hashes: tuple[bytes, ...]
    checkpoint_note: str
    extra: bytes | None = None

    def text(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode())
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(h).decode() for h in self.hashes)
        return "\n".join(lines) + "\n\n" + self.checkpoint_note

    @classmethod
    def parse(cls, text: str) -> InclusionProof:
        head, sep, note = text.partition("\n\n")
        if not sep:
            raise ProofFormatError("a tlog-proof needs a blank line before its checkpoint")
        lines = head.split("\n")
        if lines[0] != HEADER:
            raise ProofFormatError(f"first line must be {HEADER}")
        pos = 1
        extra: bytes | None = None
        try:
            if pos < len(lines) and lines[pos].startswith("extra "):
                extra = base64.b64decode(lines[pos][6:], validate=True)
                pos += 1
            if pos >= len(lines) or not lines[pos].startswith("index "):
                raise ProofFormatError("missing index line")
            digits = lines[pos][6:]
            if not digits.isascii() or not digits.isdigit() or (digits != "0" and digits[0] == "0"):
                raise ProofFormatError(f"index {digits!r} is not a decimal")
            hashes = tuple(base64.b64decode(line, validate=True) for line in lines[pos + 1 :])
        except binascii.Error as exc:
            raise ProofFormatError(f"bad base64 in proof: {exc}") from exc
        return cls(int(digits), hashes, note, extra)


def verify_proof(text: str, verifier: Verifier, entry: bytes | None = None) -> tuple[Checkpoint, bytes]:
    """Check a tlog-proof offline; return the checkpoint and the proven entry bytes.

    The entry comes from ``entry`` or else the proof's extra line. Raises NoteError (bad checkpoint
    signature), ProofError (proof does not verify) or ProofFormatError.
    """
    proof = InclusionProof.parse(text)
    data = entry if entry is not None else proof.extra
    if data is None:
        raise ProofFormatError("no entry given and no extra line in the proof", code=errors.PROOF_NO_ENTRY)
    checkpoint = open_checkpoint(proof.checkpoint_note, verifier)
    verify_inclusion(proof.index, checkpoint.size, leaf_hash(data), proof.hashes, checkpoint.root)
    return checkpoint, data
