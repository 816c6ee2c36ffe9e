"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification: pure functions only.

Proof generation takes a ``SubtreeHash`` oracle (``(start, end) -> MTH(D[start:end])``) so a store can
answer from whatever it keeps. ``CompactRange`` is the O(log n) state of an append-only tree. Verifiers
follow RFC 9162 §2.1.3.2 and §2.1.4.2, with the policy of transparency-dev/merkle: a consistency proof
from size 0 always fails, and equal sizes need an empty proof and equal roots.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from audit import errors
from audit.errors import ProofError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

SubtreeHash = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two strictly smaller than ``size`` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


@dataclass
class CompactRange:
    """The perfect subtrees covering leaves [0, size): one hash per set bit of size, largest first."""

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def append(self, leaf: bytes) -> None:
        self.hashes.append(leaf)
        bits = self.size
        while bits & 1:
            right = self.hashes.pop()
            self.hashes[-1] = node_hash(self.hashes[-1], right)
            bits >>= 1
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        # ``append`` inlined: verification runs this once per entry of the whole log.
        hashes, size, sha256 = self.hashes, self.size, hashlib.sha256
        for leaf in leaves:
            hashes.append(leaf)
            bits = size
            while bits & 1:
                right = hashes.pop()
                hashes[-1] = sha256(b"\x01" + hashes[-1] + right).digest()
                bits >>= 1
            size += 1
            self.size = size  # kept current, so that a failure midway leaves a consistent range

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        root = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            root = node_hash(left, root)
        return root

    def nodes(self) -> list[tuple[int, int, bytes]]:
        """Each subtree as (start, end, hash), left to right."""
        out: list[tuple[int, int, bytes]] = []
        start = 0
        widths = [1 << bit for bit in reversed(range(self.size.bit_length())) if self.size >> bit & 1]
        for width, digest in zip(widths, self.hashes, strict=True):
            out.append((start, start + width, digest))
            start += width
        return out

    def to_bytes(self) -> bytes:
        return b"".join(self.hashes)

    @classmethod
    def from_bytes(cls, size: int, blob: bytes) -> CompactRange:
        count = size.bit_count()
        if len(blob) != count * HASH_SIZE:
            raise ProofError(f"compact range of size {size} needs {count} hashes", code=errors.RANGE_INVALID)
        return cls(size, [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)])


def root_of(leaves: Iterable[bytes]) -> bytes:
    """MTH of a sequence of leaf hashes."""
    compact = CompactRange()
    compact.extend(leaves)
    return compact.root()


def inclusion_proof(index: int, size: int, mth: SubtreeHash) -> list[bytes]:
    """RFC 6962 PATH(index, D[0:size]), leaf's sibling first."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of size {size}", code=errors.INDEX_OUT_OF_RANGE)
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(mth(lo + k, hi))
            hi = lo + k
        else:
            path.append(mth(lo, lo + k))
            lo += k
    path.reverse()
    return path


def consistency_proof(size1: int, size2: int, mth: SubtreeHash) -> list[bytes]:
    """RFC 6962 PROOF(size1, D[0:size2]); empty when the sizes are equal."""
    if not 0 < size1 <= size2:
        raise ProofError(f"no consistency proof from {size1} to {size2}", code=errors.SIZE_OUT_OF_RANGE)
    path: list[bytes] = []
    lo, hi, whole = 0, size2, True
    while size1 != hi:
        k = _split(hi - lo)
        if size1 <= lo + k:
            path.append(mth(lo + k, hi))
            hi = lo + k
        else:
            path.append(mth(lo, lo + k))
            lo += k
            whole = False
    if not whole:
        path.append(mth(lo, hi))
    path.reverse()
    return path


def _check_hashes(proof: Sequence[bytes] | None) -> list[bytes]:
    hashes = list(proof or [])
    for digest in hashes:
        if len(digest) != HASH_SIZE:
            raise ProofError("every proof hash must be 32 bytes", code=errors.HASH_SIZE)
    return hashes


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes] | None) -> bytes:
    """The root an inclusion proof implies (RFC 9162 §2.1.3.2); raises ProofError if malformed."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of size {size}", code=errors.INDEX_OUT_OF_RANGE)
    if len(leaf) != HASH_SIZE:
        raise ProofError("a leaf hash must be 32 bytes", code=errors.HASH_SIZE)
    fn, sn, r = index, size - 1, leaf
    for p in _check_hashes(proof):
        if sn == 0:
            raise ProofError("inclusion proof is too long", code=errors.PROOF_LENGTH)
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short", code=errors.PROOF_LENGTH)
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes] | None, root: bytes) -> None:
    """Raise ProofError unless ``proof`` shows ``leaf`` at ``index`` in the tree ``root`` of ``size``."""
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError("inclusion proof does not lead to the root", code=errors.ROOT_MISMATCH)


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes] | None
) -> None:
    """Raise ProofError unless ``proof`` shows the tree (size1, root1) is a prefix of (size2, root2)."""
    path = _check_hashes(proof)
    if size1 <= 0 or size2 < size1:
        raise ProofError(f"no consistency proof from {size1} to {size2}", code=errors.SIZE_OUT_OF_RANGE)
    if size1 == size2:
        if path:
            raise ProofError("equal sizes need an empty proof", code=errors.PROOF_LENGTH)
        if root1 != root2:
            raise ProofError("equal sizes with different roots", code=errors.ROOT_MISMATCH)
        return
    if not path:
        raise ProofError("empty consistency proof", code=errors.PROOF_LENGTH)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long", code=errors.PROOF_LENGTH)
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short", code=errors.PROOF_LENGTH)
    if fr != root1 or sr != root2:
        raise ProofError("consistency proof does not lead to the roots", code=errors.ROOT_MISMATCH)
