"""The Merkle code against every transparency-dev/merkle vector and the RFC 6962 reference tree."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from audit import merkle, subtree
from audit.errors import ProofError

VECTORS = Path("vectors/merkle")


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _cases(shared: Path, kind: str) -> list[tuple[str, dict[str, Any]]]:
    files = sorted((shared / VECTORS / kind).rglob("*.json"))
    return [(str(f.relative_to(shared / VECTORS)), json.loads(f.read_text())) for f in files]


def test_every_inclusion_vector_agrees(shared: Path) -> None:
    cases = _cases(shared, "inclusion")
    assert len(cases) == 98
    wrong = []
    for name, v in cases:
        try:
            proof = [_b64(p) for p in v["proof"] or []]
            merkle.verify_inclusion(v["leafIdx"], v["treeSize"], _b64(v["leafHash"]), proof, _b64(v["root"]))
            failed = False
        except ProofError:
            failed = True
        if failed != v["wantErr"]:
            wrong.append(name)
    assert wrong == []
    assert sum(not v["wantErr"] for _, v in cases) == 6


def test_every_consistency_vector_agrees(shared: Path) -> None:
    cases = _cases(shared, "consistency")
    assert len(cases) == 98
    wrong = []
    for name, v in cases:
        try:
            proof = [_b64(p) for p in v["proof"] or []]
            merkle.verify_consistency(v["size1"], v["size2"], _b64(v["root1"]), _b64(v["root2"]), proof)
            failed = False
        except ProofError:
            failed = True
        if failed != v["wantErr"]:
            wrong.append(name)
    assert wrong == []
    assert sum(not v["wantErr"] for _, v in cases) == 6


def test_every_subtree_inclusion_vector_agrees(shared: Path) -> None:
    cases = _cases(shared, "subtreeinclusion")
    assert len(cases) > 100
    wrong = []
    for name, v in cases:
        try:
            proof = [_b64(p) for p in v["proof"] or []]
            leaf, root = _b64(v["leafHash"]), _b64(v["root"])
            subtree.verify_subtree_inclusion(v["leafIdx"], v["start"], v["end"], leaf, proof, root)
            failed = False
        except ProofError:
            failed = True
        if failed != v["wantErr"]:
            wrong.append(name)
    assert wrong == []


def test_every_subtree_consistency_vector_agrees(shared: Path) -> None:
    cases = _cases(shared, "subtreeconsistency")
    assert len(cases) > 100
    wrong = []
    for name, v in cases:
        try:
            proof = [_b64(p) for p in v["proof"] or []]
            root1, root2 = _b64(v["root1"]), _b64(v["root2"])
            subtree.verify_subtree_consistency(v["start"], v["end"], v["size"], root1, root2, proof)
            failed = False
        except ProofError:
            failed = True
        if failed != v["wantErr"]:
            wrong.append(name)
    assert wrong == []


@pytest.fixture
def reference(shared: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((shared / VECTORS / "rfc6962-reference-tree.json").read_text())
    return data


def test_hasher_known_answers(reference: dict[str, Any]) -> None:
    kats = {k["desc"]: k["hash"] for k in reference["hasherKATs"]}
    assert merkle.EMPTY_ROOT.hex() == kats["empty tree (echo -n | sha256sum)"]
    assert merkle.leaf_hash(b"").hex() == kats["leaf of empty input: SHA-256(0x00)"]
    assert merkle.leaf_hash(b"L123456").hex() == kats["leaf 'L123456': SHA-256(0x00||'L123456')"]
    assert (
        merkle.node_hash(b"N123", b"N456").hex() == kats["node('N123','N456'): SHA-256(0x01||'N123'||'N456')"]
    )


def test_reference_tree_roots_and_proofs(reference: dict[str, Any]) -> None:
    leaves = [merkle.leaf_hash(bytes.fromhex(x)) for x in reference["leafInputsHex"]]
    assert [h.hex() for h in leaves] == reference["leafHashes"]
    for size, root in reference["rootsBySize"].items():
        assert merkle.root_of(leaves[: int(size)]).hex() == root

    def mth(start: int, end: int) -> bytes:
        return merkle.root_of(leaves[start:end])

    for case in reference["inclusion"]:
        proof = merkle.inclusion_proof(case["leafIndex"], case["treeSize"], mth)
        assert [p.hex() for p in proof] == case["proof"]
        root = bytes.fromhex(case["root"])
        merkle.verify_inclusion(
            case["leafIndex"], case["treeSize"], bytes.fromhex(case["leafHash"]), proof, root
        )
    for case in reference["consistency"]:
        proof = merkle.consistency_proof(case["size1"], case["size2"], mth)
        assert [p.hex() for p in proof] == case["proof"]
        root1, root2 = bytes.fromhex(case["root1"]), bytes.fromhex(case["root2"])
        merkle.verify_consistency(case["size1"], case["size2"], root1, root2, proof)
