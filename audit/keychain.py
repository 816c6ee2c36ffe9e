"""The log's chain of checkpoint keys: co-signed hand-overs from one key to the next, and revocations.

A hand-over is a C2SP checkpoint of the latest signed size with one extension line naming the next key,
signed by both keys (a signed note with two signatures); after its size only the new key signs. A
revocation says from which size a key's signatures count no more. The chain starts at the key the
auditor pins and every later key is learned from a co-signed hand-over, so the store is not trusted for
it. Stores keep hand-overs as ``handover.N`` and revocations as ``revoked.<vkey>`` metadata; both are
set once and never changed.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from audit import errors
from audit.checkpoint import Checkpoint, peek_checkpoint
from audit.errors import KeyFileError, NoteError, StoreCorrupt
from audit.note import DASH, Signer, Verifier, split_note
from audit.stores import Store

HANDOVER_PREFIX = "key-handover "  # the checkpoint extension line that names the next key
MAX_HANDOVERS = 1000  # a store claiming more is not read further (each is one metadata lookup)
MAX_SIZE_DIGITS = 19  # a revocation size the stores' 64-bit integers can hold


def handover_meta(number: int) -> str:
    return f"handover.{number}"


def revoked_meta(verifier: Verifier) -> str:
    return f"revoked.{verifier.vkey()}"


@dataclass(frozen=True)
class KeyRange:
    """One key of the chain and the checkpoint sizes it signs: [first, last] (last None: still signing)."""

    verifier: Verifier
    first: int
    last: int | None
    revoked_from: int | None

    def trusted_at(self, size: int) -> bool:
        if size < self.first or (self.last is not None and size > self.last):
            return False
        return self.revoked_from is None or size < self.revoked_from


@dataclass(frozen=True)
class ChainProblem:
    size: int  # the size of the hand-over where trust breaks
    code: str
    message: str


def sign_handover(checkpoint: Checkpoint, old: Signer, new: Signer) -> str:
    """The hand-over note for ``checkpoint``: its text plus the new key's line, signed by old then new."""
    for signer in (old, new):
        if signer.name != checkpoint.origin:
            raise NoteError(
                f"key name {signer.name!r} differs from origin {checkpoint.origin!r}", code=errors.KEY_NAME
            )
    text = checkpoint.text() + HANDOVER_PREFIX + new.verifier().vkey() + "\n"
    lines = []
    for signer in (old, new):
        blob = base64.b64encode(signer.verifier().key_id + signer.sign(text.encode())).decode()
        lines.append(f"{DASH}{signer.name} {blob}\n")
    return text + "\n" + "".join(lines)


def parse_handover(note: str) -> tuple[Checkpoint, Verifier]:
    """The checkpoint and the next key a hand-over names (signatures unchecked)."""
    text, _ = split_note(note)
    checkpoint = Checkpoint.parse(text)
    extensions = text.split("\n")[3:-1]
    if len(extensions) != 1 or not extensions[0].startswith(HANDOVER_PREFIX):
        raise NoteError("a hand-over names exactly one next key", code=errors.CHECKPOINT_INVALID)
    new = Verifier.from_vkey(extensions[0][len(HANDOVER_PREFIX) :])
    if new.name != checkpoint.origin:
        raise NoteError(f"the next key is named {new.name!r}, not the origin", code=errors.KEY_NAME)
    return checkpoint, new


def _signed_by(note: str, verifier: Verifier) -> bool:
    """Whether ``verifier`` signed ``note``; a signature of its that does not verify is an error."""
    text, signatures = split_note(note)
    found = False
    for name, kid, signature in signatures:
        if (name, kid) == (verifier.name, verifier.key_id):
            if not verifier.verify(text.encode(), signature):
                raise NoteError(f"signature by {name} does not verify", code=errors.SIGNATURE_INVALID)
            found = True
    return found


class KeyChain:
    """The keys a verifier trusts, from the pinned first key through every valid hand-over."""

    def __init__(
        self,
        genesis: Verifier,
        handovers: Sequence[str] = (),
        revocations: Mapping[str, int] | None = None,
        pinned: Sequence[Verifier] = (),
    ) -> None:
        revocations = revocations or {}
        self.genesis = genesis
        self.ranges: list[KeyRange] = [KeyRange(genesis, 0, None, revocations.get(genesis.vkey()))]
        self.handovers: list[Checkpoint] = []
        self.problem: ChainProblem | None = None
        pinned_ids = {v.key_id for v in pinned if v.name == genesis.name}
        for note in handovers:
            self.problem = self._follow(note, revocations, pinned_ids)
            if self.problem is not None:
                break

    @property
    def current(self) -> Verifier:
        return self.ranges[-1].verifier

    def _follow(self, note: str, revocations: Mapping[str, int], pinned: set[bytes]) -> ChainProblem | None:
        last = self.ranges[-1]
        try:
            checkpoint, new = parse_handover(note)
            if checkpoint.origin != self.genesis.name:
                return ChainProblem(last.first, errors.HANDOVER_INVALID, "a hand-over of another origin")
            if checkpoint.size < last.first:
                message = f"hand-over at size {checkpoint.size} before the previous one at {last.first}"
                return ChainProblem(last.first, errors.HANDOVER_INVALID, message)
            if any(r.verifier.key_id == new.key_id for r in self.ranges):
                return ChainProblem(
                    checkpoint.size, errors.HANDOVER_INVALID, "a hand-over to a key used before"
                )
            old_signed, new_signed = _signed_by(note, last.verifier), _signed_by(note, new)
        except NoteError as exc:
            return ChainProblem(last.first, errors.HANDOVER_INVALID, f"hand-over: {exc.message}")
        size = checkpoint.size
        if not new_signed:
            return ChainProblem(
                size, errors.HANDOVER_INVALID, f"hand-over {size} is not signed by the new key"
            )
        if new.key_id not in pinned:  # a key the auditor pinned needs no word from the old one
            if not old_signed:
                message = f"hand-over {size} is not signed by the key it hands over from"
                return ChainProblem(size, errors.HANDOVER_INVALID, message)
            if not last.trusted_at(size):
                message = f"hand-over {size} is signed by a key revoked from size {last.revoked_from}"
                return ChainProblem(size, errors.KEY_REVOKED, message)
        self.ranges[-1] = KeyRange(last.verifier, last.first, size, last.revoked_from)
        self.ranges.append(KeyRange(new, size, None, revocations.get(new.vkey())))
        self.handovers.append(checkpoint)
        return None

    def open(self, note: str) -> Checkpoint:
        """The checkpoint once a key the chain trusts at its size signed it; NoteError otherwise."""
        text, signatures = split_note(note)
        checkpoint = Checkpoint.parse(text)
        if checkpoint.origin != self.genesis.name:
            raise NoteError(f"checkpoint origin {checkpoint.origin!r}", code=errors.ORIGIN_MISMATCH)
        known = {(r.verifier.name, r.verifier.key_id): r for r in self.ranges}
        signed: list[KeyRange] = []
        for name, kid, signature in signatures:
            key = known.get((name, kid))
            if key is None:
                continue  # a key outside the chain proves nothing, whoever it is
            if not key.verifier.verify(text.encode(), signature):
                raise NoteError(f"signature by {name} does not verify", code=errors.SIGNATURE_INVALID)
            signed.append(key)
        size = checkpoint.size
        if any(key.trusted_at(size) for key in signed):
            return checkpoint
        revoked = [k for k in signed if k.revoked_from is not None and size >= k.revoked_from]
        if revoked:
            message = f"signed by {revoked[0].verifier.vkey()}, revoked from size {revoked[0].revoked_from}"
            raise NoteError(message, code=errors.KEY_REVOKED)
        if signed:
            key = signed[0]
            span = f"[{key.first}, {'now' if key.last is None else key.last}]"
            raise NoteError(f"signed by a key that signs sizes {span} only", code=errors.KEY_NOT_TRUSTED)
        raise NoteError("no signature by a key of the log's chain", code=errors.SIGNATURE_UNKNOWN_KEY)


def read_handovers(store: Store) -> list[str]:
    out: list[str] = []
    for number in range(1, MAX_HANDOVERS + 1):
        note = store.meta(handover_meta(number))
        if note is None:
            break
        out.append(note)
    return out


def read_revocations(store: Store, notes: Sequence[str], genesis: Verifier) -> dict[str, int]:
    """Revocations of the genesis key and of every key a hand-over names."""
    keys = [genesis]
    for note in notes:
        try:
            keys.append(parse_handover(note)[1])
        except NoteError:
            continue  # the chain reports the malformed hand-over
    out: dict[str, int] = {}
    for key in keys:
        value = store.meta(revoked_meta(key))
        if value is not None:
            out[key.vkey()] = parse_revocation(value)
    return out


def parse_revocation(value: str) -> int:
    """A stored revocation size; an unreadable one counts as revoked from 0 (it can only add doubt)."""
    text = value.strip()
    if text.isascii() and text.isdigit() and len(text) <= MAX_SIZE_DIGITS:
        return int(text)
    return 0


def load_chain(store: Store, genesis: Verifier, pinned: Sequence[Verifier] = ()) -> KeyChain:
    notes = read_handovers(store)
    return KeyChain(genesis, notes, read_revocations(store, notes, genesis), pinned)


class KeyRing:
    """The keys a writer holds, and which of them the chain says signs now.

    The writer asks before every signature: one metadata lookup finds a hand-over recorded since (by
    ``audit rotate-key`` or another replica), and the writer then signs with the new key if it holds
    it, or refuses to sign with a key handed away.
    """

    def __init__(self, store: Store, signers: Sequence[Signer]) -> None:
        first = signers[0].verifier().vkey()
        self.genesis = Verifier.from_vkey(store.meta("vkey", first) or first)
        self._signers = {s.verifier().key_id: s for s in signers}
        self._chain = load_chain(store, self.genesis)
        self.signer = self._pick()

    def _pick(self) -> Signer:
        if self._chain.problem is not None:
            raise StoreCorrupt(
                f"the log's key chain: {self._chain.problem.message}", code=errors.KEY_MISMATCH
            )
        current = self._chain.current
        signer = self._signers.get(current.key_id)
        if signer is not None:
            return signer
        if any(r.verifier.key_id in self._signers for r in self._chain.ranges):
            raise KeyFileError(
                f"this key was handed over; the log now signs with {current.vkey()}", code=errors.KEY_ROTATED
            )
        raise KeyFileError("this log is signed with another key", code=errors.KEY_MISMATCH)

    def current(self, store: Store) -> Signer:
        """The signer for the next checkpoint, after looking for a hand-over recorded since."""
        if store.meta(handover_meta(len(self._chain.handovers) + 1)) is not None:
            self._chain = load_chain(store, self.genesis)
            self.signer = self._pick()
        return self.signer

    def hand_over(self, store: Store, new: Signer) -> str:
        """Record a hand-over from the current key to ``new`` at the latest checkpoint; return its note."""
        old = self.current(store)
        latest = store.latest_checkpoint()
        if latest is None:
            raise KeyFileError("the log has no checkpoint to hand over at", code=errors.USAGE)
        if any(r.verifier.key_id == new.verifier().key_id for r in self._chain.ranges):
            raise KeyFileError("the new key is already a key of this log", code=errors.KEY_EXISTS)
        note = sign_handover(peek_checkpoint(latest[1]), old, new)
        number = len(self._chain.handovers) + 1
        if store.meta(handover_meta(number), note) != note:
            raise KeyFileError("another hand-over was recorded at the same time", code=errors.KEY_ROTATED)
        self._signers[new.verifier().key_id] = new
        self._chain = load_chain(store, self.genesis)
        self.signer = self._pick()
        return note


def revoke(store: Store, genesis: Verifier, key: Verifier, from_size: int) -> KeyRange:
    """Record that ``key``'s signatures count no more from ``from_size`` on; return its range."""
    chain = load_chain(store, genesis)
    ranges = [r for r in chain.ranges if r.verifier.key_id == key.key_id and r.verifier.name == key.name]
    if not ranges:
        raise KeyFileError(f"{key.vkey()} is not a key of this log", code=errors.KEY_MISMATCH)
    if ranges[0].last is None:
        raise KeyFileError(
            "the log still signs with this key: rotate to a new key first", code=errors.KEY_REVOKED
        )
    if not 0 <= from_size < 2**63:  # what the stores' sizes can be, and parse_revocation reads back
        raise KeyFileError(f"size {from_size} is not a log size", code=errors.USAGE)
    kept = store.meta(revoked_meta(key), str(from_size))
    if kept != str(from_size):
        raise KeyFileError(f"this key is already revoked from size {kept}", code=errors.KEY_REVOKED)
    return KeyRange(key, ranges[0].first, ranges[0].last, from_size)
