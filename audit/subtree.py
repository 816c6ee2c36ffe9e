"""Subtree inclusion and consistency proofs (draft-ietf-plants-merkle-tree-certs), verification only.

The log does not use these; they exist so the whole shared transparency-dev/merkle vector set runs.
A subtree [start, end) is valid when start is a multiple of BIT_CEIL(end - start); its hash is the
RFC 6962 MTH of those leaves. Verification generalises RFC 9162 §2.1.4.2: left siblings that lie inside
the subtree also fold into the subtree's hash.
"""

from __future__ import annotations

from collections.abc import Sequence

from audit import errors
from audit.errors import ProofError
from audit.merkle import EMPTY_ROOT, HASH_SIZE, node_hash, verify_inclusion


def is_valid_subtree(start: int, end: int) -> bool:
    return 0 <= start < end and start % (1 << (end - start - 1).bit_length()) == 0


def verify_subtree_inclusion(
    index: int, start: int, end: int, leaf: bytes, proof: Sequence[bytes] | None, root: bytes
) -> None:
    """Raise ProofError unless ``leaf`` is at ``index`` in the subtree [start, end) with hash ``root``."""
    if not is_valid_subtree(start, end) or not start <= index < end:
        raise ProofError(f"[{start}, {end}) is not a subtree holding {index}", code=errors.SUBTREE_INVALID)
    verify_inclusion(index - start, end - start, leaf, proof, root)


def verify_subtree_consistency(
    start: int, end: int, size: int, root1: bytes, root2: bytes, proof: Sequence[bytes] | None
) -> None:
    """Raise ProofError unless subtree [start, end) with hash ``root1`` is part of the tree (size, root2)."""
    path = list(proof or [])
    if any(len(p) != HASH_SIZE for p in path):
        raise ProofError("every proof hash must be 32 bytes", code=errors.HASH_SIZE)
    if start == end:  # the empty subtree is part of every tree
        if path or root1 != EMPTY_ROOT:
            raise ProofError(
                "an empty subtree needs an empty proof and the empty root", code=errors.PROOF_LENGTH
            )
        return
    if not is_valid_subtree(start, end) or end > size:
        raise ProofError(
            f"[{start}, {end}) is not a subtree of a tree of size {size}", code=errors.SUBTREE_INVALID
        )
    if start == 0 and end == size:
        if path or root1 != root2:
            raise ProofError("the whole tree needs an empty proof and equal roots", code=errors.ROOT_MISMATCH)
        return
    if not path:
        raise ProofError("empty subtree consistency proof", code=errors.PROOF_LENGTH)
    fn, sn, st = end - 1, size - 1, start
    while fn != st and (fn & 1 or fn == sn):  # climb inside the subtree (or along the right edge)
        fn, sn, st = fn >> 1, sn >> 1, st >> 1
    if fn == st:  # the subtree is a node of the tree: its hash starts the chain
        path.insert(0, root1)
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("subtree consistency proof is too long", code=errors.PROOF_LENGTH)
        if fn & 1 or fn == sn:
            while not fn & 1 and fn != 0:
                fn, sn, st = fn >> 1, sn >> 1, st >> 1
            if fn > st:  # a left sibling inside the subtree
                fr = node_hash(c, fr)
            sr = node_hash(c, sr)
        else:
            sr = node_hash(sr, c)
        fn, sn, st = fn >> 1, sn >> 1, st >> 1
    if sn != 0:
        raise ProofError("subtree consistency proof is too short", code=errors.PROOF_LENGTH)
    if fr != root1 or sr != root2:
        raise ProofError("subtree consistency proof does not lead to the roots", code=errors.ROOT_MISMATCH)
