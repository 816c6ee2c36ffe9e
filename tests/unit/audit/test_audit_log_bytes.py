"""The bytes a log keeps for a given input are pinned: entries, leaf hashes, tree heads and checkpoint
notes. A faster way of building, encoding, committing or signing must leave every byte as it was."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import AuditLog, errors
from audit.entry import EntryError, canonical, encode_entry, make_entry
from audit.note import Ed25519Signer

ORIGIN = "example.com/pinned-audit"
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
# Digests of what int16e wrote for the same input (sequential appends, one checkpoint per entry).
PINNED_ENTRIES = "84b9716ee2de0a82dc6bdb0f5d6aa9f2ec6538bf1d6204256eb09c482f88776c"
PINNED_HEADS = "ff16b8e2db235f7e7fc29888ad61f452db554d05141ef821ab04d019a0b8be61"
PINNED_CHECKPOINTS = "d6b7a5fed92e2d91daca8d527192906abbab222f096a94d2bb58197bdc1d19cb"


def values(i: int) -> dict[str, Any]:
    """Varied entries: unicode, control characters, astral values, commits, exceptions, many results."""
    return {
        "time": T0 + timedelta(seconds=i, microseconds=i * 7),
        "source": ("admission", "ci", "background")[i % 3],
        "uid": f"uid-{i}-\u00e9\U0001f600",
        "operation": ("CREATE", "UPDATE", "DELETE")[i % 3],
        "resource": {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "namespace": f"team-{i % 4}",
                     "name": f"job\t{i}\"q\"\\"},
        "verdict": ("allowed", "denied", "warned")[i % 3],
        "user": f"user-{i}@example.com",
        "groups": ["system:authenticated", f"g\u0001{i}", "\u2028line"],
        "policy_set_digest": "sha256:" + "ab" * 32,
        "results": [
            {"policy": f"policy-{j}", "action": "deny", "outcome": ("pass", "fail", "skip")[(i + j) % 3],
             "message": f"m\u00fc\n{j} \U0001f680", **({"exception": f"exc-{j}"} if j == 2 else {})}
            for j in range(i % 6)
        ],
        "exceptions": [f"exc-{i}"] if i % 5 == 0 else [],
        "dry_run": i % 2 == 1,
        "commit": "0123456789abcdef0123456789abcdef01234567" if i % 7 == 0 else None,
    }  # fmt: skip


def sha(parts: list[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def test_encoded_entry_is_the_reference_canonical_form() -> None:
    for i in range(40):
        entry, data = encode_entry(**values(i))
        assert entry == make_entry(**values(i))
        assert data == canonical(entry) == rfc8785.dumps(entry)


def test_encoded_entry_still_rejects_what_cannot_be_stored() -> None:
    with pytest.raises(EntryError) as float_group:
        encode_entry(**{**values(1), "groups": ["ok", 1.5]})
    assert float_group.value.code == errors.ENTRY_FLOAT
    with pytest.raises(EntryError) as lone_surrogate:
        encode_entry(**{**values(1), "uid": "a\ud800b"})
    assert lone_surrogate.value.code == errors.ENTRY_UNICODE
    entry, data = encode_entry(**{**values(1), "groups": ["ok", 7]})  # an integer is JSON: kept as before
    assert data == rfc8785.dumps(entry)


def test_log_bytes_are_pinned(tmp_path: Path) -> None:
    signer = Ed25519Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    log = AuditLog.open(str(tmp_path / "audit.db"), signer=signer)
    try:
        for i in range(24):
            entry, data = encode_entry(**values(i))
            index = (
                log.submit_encoded(entry, data) if i % 2 else log.submit(make_entry(**values(i)))
            ).result()
            assert index == i
    finally:
        log.close()  # a batch's checkpoint may be signed after its entries are answered: read after
    with AuditLog.open(str(tmp_path / "audit.db")) as read:
        stored = list(read.iter_entries())
        heads = [read.store.head_at(size) for size in range(1, 25)]
        checkpoints = read.store.checkpoints()
    assert sha([e.data + e.leaf_hash for e in stored]) == PINNED_ENTRIES
    assert sha([h.root + h.range_blob for h in heads if h is not None]) == PINNED_HEADS
    assert [size for size, _ in checkpoints] == list(range(25))
    assert sha([note.encode() for _, note in checkpoints]) == PINNED_CHECKPOINTS
