"""Property tests: the compact range, proofs and verifiers against a naive recursive RFC 6962 tree."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from audit import merkle
from audit.errors import ProofError


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(data: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, written from the definition."""
    if not data:
        return hashlib.sha256(b"").digest()
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = _k(len(data))
    return hashlib.sha256(b"\x01" + mth(data[:k]) + mth(data[k:])).digest()


def path(m: int, data: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH."""
    if len(data) == 1:
        return []
    k = _k(len(data))
    if m < k:
        return [*path(m, data[:k]), mth(data[k:])]
    return [*path(m - k, data[k:]), mth(data[:k])]


def subproof(m: int, data: list[bytes], whole: bool) -> list[bytes]:
    """RFC 6962 §2.1.2 SUBPROOF."""
    n = len(data)
    if m == n:
        return [] if whole else [mth(data)]
    k = _k(n)
    if m <= k:
        return [*subproof(m, data[:k], whole), mth(data[k:])]
    return [*subproof(m - k, data[k:], False), mth(data[:k])]


leaves_st = st.lists(st.binary(max_size=8), min_size=1, max_size=70)


def _oracle(data: list[bytes]) -> merkle.SubtreeHash:
    return lambda start, end: mth(data[start:end])


@settings(max_examples=150, deadline=None)
@given(leaves_st)
def test_compact_range_root_matches_reference(data: list[bytes]) -> None:
    compact = merkle.CompactRange()
    for i, item in enumerate(data):
        compact.append(merkle.leaf_hash(item))
        assert compact.root() == mth(data[: i + 1])
    restored = merkle.CompactRange.from_bytes(compact.size, compact.to_bytes())
    assert restored.root() == compact.root()
    for start, end, digest in compact.nodes():
        assert digest == mth(data[start:end])


@settings(max_examples=150, deadline=None)
@given(leaves_st, st.data())
def test_inclusion_proofs_match_reference_and_verify(data: list[bytes], draw: st.DataObject) -> None:
    index = draw.draw(st.integers(0, len(data) - 1))
    proof = merkle.inclusion_proof(index, len(data), _oracle(data))
    assert proof == path(index, data)
    root = mth(data)
    leaf = merkle.leaf_hash(data[index])
    merkle.verify_inclusion(index, len(data), leaf, proof, root)
    if proof:
        position = draw.draw(st.integers(0, len(proof) - 1))
        broken = list(proof)
        broken[position] = bytes([broken[position][0] ^ 1]) + broken[position][1:]
        _rejects(lambda: merkle.verify_inclusion(index, len(data), leaf, broken, root))
        _rejects(lambda: merkle.verify_inclusion(index, len(data), leaf, proof[:-1], root))
    _rejects(lambda: merkle.verify_inclusion(index, len(data), leaf, [*proof, root], root))


@settings(max_examples=150, deadline=None)
@given(leaves_st, st.data())
def test_consistency_proofs_match_reference_and_verify(data: list[bytes], draw: st.DataObject) -> None:
    size1 = draw.draw(st.integers(1, len(data)))
    proof = merkle.consistency_proof(size1, len(data), _oracle(data))
    assert proof == subproof(size1, data, True)
    root1, root2 = mth(data[:size1]), mth(data)
    merkle.verify_consistency(size1, len(data), root1, root2, proof)
    if size1 < len(data):
        _rejects(lambda: merkle.verify_consistency(size1, len(data), root2, root2, proof))
        position = draw.draw(st.integers(0, len(proof) - 1))
        broken = list(proof)
        broken[position] = bytes([broken[position][0] ^ 1]) + broken[position][1:]
        _rejects(lambda: merkle.verify_consistency(size1, len(data), root1, root2, broken))


def _rejects(check: object) -> None:
    try:
        check()  # type: ignore[operator]
    except ProofError:
        return
    raise AssertionError("a broken proof verified")


def subtree_proof(start: int, end: int, data: list[bytes]) -> list[bytes]:
    """A subtree consistency proof built from definitions: within the aligned block, then up to the root."""
    width = 1 << (end - start - 1).bit_length()
    block_end = min(start + width, len(data))
    block = data[start:block_end]
    inner = subproof(end - start, block, True)
    above = path(start, data)[len(path(0, block)) :]
    return inner + above


@settings(max_examples=150, deadline=None)
@given(leaves_st, st.data())
def test_subtree_consistency_against_proofs_built_from_definitions(
    data: list[bytes], draw: st.DataObject
) -> None:
    from audit.subtree import verify_subtree_consistency

    n = len(data)
    level = draw.draw(st.integers(0, max(0, (n - 1).bit_length())))
    width = 1 << level
    start = draw.draw(st.integers(0, (n - 1) // width)) * width
    end = draw.draw(st.integers(start + 1, min(start + width, n)))
    proof = subtree_proof(start, end, data)
    root1, root2 = mth(data[start:end]), mth(data)
    verify_subtree_consistency(start, end, n, root1, root2, proof)
    if proof:
        position = draw.draw(st.integers(0, len(proof) - 1))
        broken = list(proof)
        broken[position] = bytes([broken[position][0] ^ 1]) + broken[position][1:]
        _rejects(lambda: verify_subtree_consistency(start, end, n, root1, root2, broken))
    if start > 0 or end < n:
        _rejects(lambda: verify_subtree_consistency(start, end, n, root2, root2, proof))
