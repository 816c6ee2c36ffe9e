"""audit/console/static/verify.js run in headless chromium: the RFC 6962 vectors, and proofs,
checkpoints and consistency proofs made by the Python audit package over a real SQLite log, with the
hostile cases (tampered entry, wrong key, forged signature, inconsistent checkpoints) it must refuse
exactly as the Python verifier does."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from audit import AuditLog, keygen, load_signer, load_verifier, verify_proof
from audit.errors import AuditError
from audit.keys import KeyFiles
from audit.merkle import node_hash
from audit.proof import InclusionProof
from tests.browser import chromium_session
from tests.e2e.verifyserver import Server, entry, running_server

pytestmark = [pytest.mark.e2e]
ORIGIN = "example.com/policyengine-audit"
VECTORS = Path(os.environ.get("POLICYENGINE_SHARED", "/work/shared")) / "vectors" / "merkle"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[Any]:
    with chromium_session() as driver:
        driver.get(server.base + "/verify-test/harness.html")
        for _ in range(300):  # hang guard
            if driver.execute_script("return document.body.dataset.ready") == "1":
                break
            driver.implicitly_wait(0.1)
        else:
            raise AssertionError("the harness page did not load verify.js")
        yield driver


def run(browser: Any, kind: str, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    script = "const done = arguments[2]; window.runCases(arguments[0], arguments[1]).then(done);"
    result: list[dict[str, Any]] = browser.execute_async_script(script, kind, cases)
    return result


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return keygen(ORIGIN, tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return keygen(ORIGIN, tmp_path_factory.mktemp("other-keys"))  # same origin, another key


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory, keys: KeyFiles) -> Iterator[AuditLog]:
    """A log of 1000 entries with a checkpoint at each of SIZES (and wherever a batch ended)."""
    audit_log = AuditLog.open(tmp_path_factory.mktemp("log") / "audit.db", signer=load_signer(keys.key))
    fill(audit_log, 1000)
    yield audit_log
    audit_log.close()


def fill(audit_log: AuditLog, count: int, **over: Any) -> None:
    """Append ``count`` entries (group-committed), with a signed checkpoint at each of SIZES."""
    start = 0
    for end in [size for size in SIZES if size <= count]:
        futures = [audit_log.submit(entry(i, **(over if i == 40 else {}))) for i in range(start, end)]
        assert [f.result(timeout=60) for f in futures] == list(range(start, end))
        audit_log.sign_pending()
        start = end


def _vectors(kind: str) -> list[dict[str, Any]]:
    folder = VECTORS / kind
    if not folder.is_dir():
        pytest.skip(f"{folder} missing (set POLICYENGINE_SHARED)")
    files = sorted(folder.rglob("*.json"))
    return [{**json.loads(path.read_text()), "file": str(path.relative_to(folder))} for path in files]


@pytest.mark.shared
@pytest.mark.parametrize("kind", ["inclusion", "consistency"])
def test_merkle_vectors_agree(browser: Any, kind: str) -> None:
    vectors = _vectors(kind)
    assert len(vectors) == 98
    results = run(browser, kind, vectors)
    wrong = [(v["file"], r) for v, r in zip(vectors, results, strict=True) if r["ok"] == v["wantErr"]]
    assert wrong == []
    assert sum(r["ok"] for r in results) == 6


@pytest.mark.shared
def test_hashes_match_the_reference_tree(browser: Any) -> None:
    tree = json.loads((VECTORS / "rfc6962-reference-tree.json").read_text())
    left, right = bytes(range(32)), bytes(range(32, 64))
    case = {"leaves": tree["leafInputsHex"], "left": left.hex(), "right": right.hex()}
    [result] = run(browser, "hashes", [case])
    assert result["leaves"] == tree["leafHashes"]
    assert result["node"] == node_hash(left, right).hex()


INDEXES = [0, 1, 2, 3, 7, 8, 99, 255, 256, 500, 511, 512, 998, 999]
SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 16, 29, 93, 193, 256, 257, 493, 511, 512, 513, 999, 1000]


@pytest.mark.parametrize("key_file", ["vkey", "pub"])
def test_proofs_of_a_real_log_verify(browser: Any, log: AuditLog, keys: KeyFiles, key_file: str) -> None:
    key = getattr(keys, key_file).read_text()
    proofs = [log.prove(i) for i in INDEXES]
    results = run(browser, "proof", [{"text": text, "key": key} for text in proofs])
    verifier = load_verifier(keys.vkey)
    for i, text, result in zip(INDEXES, proofs, results, strict=True):
        checkpoint, data = verify_proof(text, verifier)  # the Python verifier agrees
        assert result == {
            "ok": True,
            "index": str(i),
            "size": str(checkpoint.size),
            "signer": f"{ORIGIN}+{verifier.key_id.hex()}",
            "entry": data.decode(),
        }


def test_proofs_against_every_older_checkpoint_verify(browser: Any, log: AuditLog, keys: KeyFiles) -> None:
    sizes = SIZES
    cases = [{"text": log.prove(size - 1, size), "key": keys.vkey.read_text()} for size in sizes]
    results = run(browser, "proof", cases)
    assert [r["size"] for r in results] == [str(s) for s in sizes]


def _flip(blob: str, at: int = 0) -> str:
    raw = bytearray(base64.b64decode(blob))
    raw[at] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _hostile_proofs(log: AuditLog, keys: KeyFiles, other: KeyFiles) -> dict[str, tuple[str, Path, str]]:
    """name -> (proof text, key file, the code both verifiers must give)."""
    key = keys.vkey
    good = InclusionProof.parse(log.prove(300))
    head, _, sig_line = good.checkpoint_note.rstrip("\n").rpartition("\n")
    name, _, blob = sig_line.rpartition(" ")  # name is "\u2014 origin"
    raw = base64.b64decode(blob)
    forged_sig = f"{head}\n{name} {base64.b64encode(raw[:4] + bytes(64)).decode()}\n"
    flipped_sig = f"{head}\n{name} {_flip(blob, 10)}\n"
    origin, size = good.checkpoint_note.split("\n")[:2]
    bigger = good.checkpoint_note.replace(f"{origin}\n{size}\n", f"{origin}\n{int(size) + 1}\n", 1)
    tampered = (good.extra or b"").replace(b"w300", b"w301")
    entry_tampered = InclusionProof(good.index, good.hashes, good.checkpoint_note, extra=tampered)
    hash_tampered = InclusionProof(
        good.index,
        (bytes([good.hashes[0][0] ^ 1]) + good.hashes[0][1:], *good.hashes[1:]),
        good.checkpoint_note,
        good.extra,
    )
    wrong_index = InclusionProof(301, good.hashes, good.checkpoint_note, good.extra)
    with_note = lambda note: InclusionProof(good.index, good.hashes, note, good.extra).text()  # noqa: E731
    return {
        "tampered entry": (entry_tampered.text(), key, "root_mismatch"),
        "tampered path hash": (hash_tampered.text(), key, "root_mismatch"),
        "proof for another index": (wrong_index.text(), key, "root_mismatch"),
        "wrong key": (good.text(), other.vkey, "signature_unknown_key"),
        "wrong PEM key": (good.text(), other.pub, "signature_unknown_key"),
        "forged signature": (with_note(forged_sig), key, "signature_invalid"),
        "flipped signature bit": (with_note(flipped_sig), key, "signature_invalid"),
        "checkpoint size changed": (with_note(bigger), key, "signature_invalid"),
        "truncated path": (
            InclusionProof(300, good.hashes[:-1], good.checkpoint_note, good.extra).text(),
            key,
            "proof_length",
        ),
        "leading zero index": (good.text().replace("\nindex 300\n", "\nindex 0300\n"), key, "proof_format"),
        "no blank line": (good.text().replace("\n\n", "\n"), key, "proof_format"),
        "bad header": ("c2sp.org/tlog-proof@v2" + good.text()[22:], key, "proof_format"),
        "control character in note": (
            with_note(good.checkpoint_note.replace("\n", "\r\n", 1)),
            key,
            "note_invalid",
        ),
    }


def test_hostile_proofs_fail_with_the_python_verifiers_code(
    browser: Any, log: AuditLog, keys: KeyFiles, other_keys: KeyFiles
) -> None:
    hostile = _hostile_proofs(log, keys, other_keys)
    results = run(browser, "proof", [{"text": t, "key": k.read_text()} for t, k, _ in hostile.values()])
    got = {name: r.get("code") for name, r in zip(hostile, results, strict=True)}
    assert got == {name: code for name, (_, _, code) in hostile.items()}
    for text, key, code in hostile.values():
        with pytest.raises(AuditError) as caught:
            verify_proof(text, load_verifier(key, ORIGIN))
        assert caught.value.code == code


def _consistency_case(log: AuditLog, key: str, old: tuple[int, str], new: tuple[int, str]) -> dict[str, Any]:
    proof = log.consistency(old[0], new[0]) if old[0] else []
    return {
        "older": old[1],
        "newer": new[1],
        "key": key,
        "proof": [base64.b64encode(h).decode() for h in proof],
    }


def test_every_pair_of_real_checkpoints_is_consistent(browser: Any, log: AuditLog, keys: KeyFiles) -> None:
    checkpoints = [(size, note) for size, note in log.store.checkpoints() if size in SIZES]
    assert len(checkpoints) == len(SIZES)
    pairs = [(a, b) for a in checkpoints for b in checkpoints if a[0] <= b[0]]
    results = run(browser, "extends", [_consistency_case(log, keys.pub.read_text(), a, b) for a, b in pairs])
    assert [r for r in results if not r["ok"]] == []
    assert len(results) == len(checkpoints) * (len(checkpoints) + 1) // 2


def test_a_forked_log_is_inconsistent(browser: Any, log: AuditLog, keys: KeyFiles, tmp_path: Path) -> None:
    """The same key signs a second log that differs at entry 40: its checkpoints do not extend the
    first log's, whichever way the proof is taken, and a shrunk log is refused too."""
    fork = AuditLog.open(tmp_path / "fork.db", signer=load_signer(keys.key))
    fill(fork, 1000, user="mallory")
    key = keys.vkey.read_text()
    theirs = (1000, fork.checkpoint() or "")
    ours_small = next((s, n) for s, n in log.store.checkpoints() if s == 93)
    ours_big = next((s, n) for s, n in log.store.checkpoints() if s == 1000)
    cases = [
        _consistency_case(fork, key, ours_small, theirs),  # fork's honest proof, our old root
        _consistency_case(log, key, ours_small, theirs),  # our honest proof, their new root
        {"older": ours_big[1], "newer": theirs[1], "key": key, "proof": []},  # same size, two roots
        {"older": theirs[1], "newer": ours_small[1], "key": key, "proof": []},  # the log shrank
        {**_consistency_case(log, key, ours_small, ours_big), "proof": ["AAAA"]},  # not a hash
    ]
    fork.close()
    codes = [r.get("code") for r in run(browser, "extends", cases)]
    assert codes == ["root_mismatch", "root_mismatch", "root_mismatch", "size_out_of_range", "hash_size"]


def test_keys_are_parsed_strictly(browser: Any, keys: KeyFiles, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    vkey = keys.vkey.read_text().strip()
    name, kid, blob = vkey.split("+", 2)
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    alg2 = base64.b64encode(bytes([2]) + bytes(32)).decode()
    short = base64.b64encode(bytes([1]) + bytes(31)).decode()
    cases = {
        "vkey": (vkey, "ok"),
        "pem": (keys.pub.read_text(), "ok"),
        "wrong key id": (f"{name}+{'0' * 8}+{blob}", "vkey_invalid"),
        "other name": (f"other.example/log+{kid}+{blob}", "vkey_invalid"),
        "not Ed25519 (algorithm byte)": (f"{name}+{kid}+{alg2}", "vkey_invalid"),
        "short key": (f"{name}+{kid}+{short}", "vkey_invalid"),
        "EC PEM": (ec_pem, "vkey_invalid"),
        "garbage": ("hello", "vkey_invalid"),
        "huge": ("A" * 100_000, "vkey_invalid"),
        "space in name": (f"a b+{kid}+{blob}", "key_name"),
    }
    results = run(browser, "key", [{"key": text} for text, _ in cases.values()])
    got = {name: ("ok" if r["ok"] else r["code"]) for name, r in zip(cases, results, strict=True)}
    assert got == {name: want for name, (_, want) in cases.items()}


def test_oversized_or_overlong_inputs_are_refused_before_work(
    browser: Any, log: AuditLog, keys: KeyFiles
) -> None:
    good = log.prove(5)
    key = keys.vkey.read_text()
    many_hashes = good.replace(
        "\n\n", "\n" + "\n".join([base64.b64encode(bytes(32)).decode()] * 65) + "\n\n", 1
    )
    many_signatures = (
        good.rstrip("\n")
        + "\n"
        + "\n".join([f"\u2014 x {base64.b64encode(bytes(68)).decode()}"] * 101)
        + "\n"
    )
    huge_note = good.replace("\n\n", "\n\n" + "x" * (1 << 20), 1)
    cases = [
        {"text": many_hashes, "key": key},
        {"text": many_signatures, "key": key},
        {"text": huge_note, "key": key},
        {
            "text": "c2sp.org/tlog-proof@v1\nindex 99999999999999999999\n\n" + (log.checkpoint() or ""),
            "key": key,
        },
    ]
    codes = [r.get("code") for r in run(browser, "proof", cases)]
    assert codes == ["proof_length", "note_invalid", "note_invalid", "proof_format"]
