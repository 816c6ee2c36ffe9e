"""``AuditLog``: the signed, append-only decision log over a ``Store``.

Appends go through group commit and return an index once durable; after every batch the log checks
the new tree head against its latest checkpoint (a consistency proof) and signs it. A store that can
(SQLite) keeps that checkpoint in the batch's own transaction when the new head plainly extends it. Opening a log for
writing recovers: the stored head must match the stored leaves, and a committed but unsigned head is
signed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from audit import errors
from audit.checkpoint import Checkpoint, peek_checkpoint, sign_checkpoint
from audit.entry import IndexFields, canonical, index_fields, parse
from audit.errors import (
    InconsistentCheckpoint,
    KeyFileError,
    ProofError,
    ReadOnlyLog,
    StoreCorrupt,
    StoreUnavailable,
)
from audit.extension import shown_to_extend
from audit.keychain import KeyRing, load_chain
from audit.merkle import (
    SubtreeHash,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
)
from audit.note import Signer, Verifier
from audit.parallel import parallel_scans, store_scans
from audit.proof import InclusionProof
from audit.retention import archived_error, check_query, live_base
from audit.stores import Query, Record, Sealing, Store, StoredEntry, TreeHead, open_store
from audit.stores.sql import PAGE
from audit.verify import VerifyReport, verify_scans
from audit.writer import GroupCommit

LEAF_RUN = 256  # subtrees this narrow are hashed from their leaves


@dataclass(frozen=True)
class LoggedEntry:
    index: int
    entry: dict[str, Any]
    data: bytes


class AuditLog:
    def __init__(
        self,
        store: Store,
        *,
        origin: str | None,
        signer: Signer | None = None,
        max_batch: int = 256,
        max_delay: float = 0.0005,
        target: str | None = None,
    ) -> None:
        self.store = store
        self.origin = origin
        self.target = target  # the path or URL the store was opened from (verify --jobs reopens it)
        self._signer = signer
        self._ring: KeyRing | None = None
        # Queued: the entry's bytes and query columns; the writer thread hashes the bytes (an entry of a
        # few KB releases the GIL to hash, and the caller's thread, the event loop, would wait to get it back).
        self._writer: GroupCommit[tuple[bytes, IndexFields], int] | None = None
        self._sealer = store if isinstance(store, Sealing) else None  # checked once, not per batch
        self._sealed = False  # whether the last batch's checkpoint was kept with it (writer thread only)
        self._seal_error: Exception | None = None  # why it was not, raised once the batch is answered
        if signer is not None:
            self._writer = GroupCommit(
                self._commit, after=self._sign_after_batch, max_batch=max_batch, max_delay=max_delay
            )

    @classmethod
    def open(
        cls,
        target: str | os.PathLike[str] | Store,
        *,
        signer: Signer | None = None,
        origin: str | None = None,
        max_batch: int = 256,
        max_delay: float = 0.0005,
        next_signers: Sequence[Signer] = (),
    ) -> AuditLog:
        """Open a log: a SQLite path, ``postgresql://…``, ``:memory:`` or a Store.

        With a ``signer`` (whose key name is the origin) the log can append; it first recovers.
        Without one it is read-only (query, prove, verify, export). ``next_signers`` are keys the log
        may be handed over to: the writer signs with whichever the key chain names (``audit.keychain``).
        """
        store = open_store(target) if isinstance(target, (str, os.PathLike)) else target
        try:
            if signer is not None:
                if origin is not None and origin != signer.name:
                    raise KeyFileError(
                        f"key name {signer.name!r} is not the origin {origin!r}", code=errors.KEY_ORIGIN
                    )
                origin = signer.name
            stored = store.meta("origin", origin)
            if origin is not None and stored != origin:
                raise StoreCorrupt(
                    f"this log's origin is {stored!r}, not {origin!r}", code=errors.ORIGIN_MISMATCH
                )
            ring = None
            if signer is not None:
                ring = KeyRing(store, [signer, *next_signers])  # the key the chain says signs now
                signer = ring.signer
                recover(store)
        except BaseException:
            store.close()
            raise
        where = os.fspath(target) if isinstance(target, (str, os.PathLike)) else None
        log = cls(store, origin=stored, signer=signer, max_batch=max_batch, max_delay=max_delay, target=where)
        log._ring = ring
        if signer is not None:
            try:
                log.sign_pending()
            except BaseException:
                log.close()
                raise
        return log

    # Writing

    def append(self, entry: Mapping[str, Any]) -> int:
        """Append one entry; return its index once it is durable."""
        return self.submit(entry).result()

    def submit(self, entry: Mapping[str, Any]) -> Future[int]:
        """Queue an entry; the returned future gives its index once durable."""
        return self.submit_encoded(entry, canonical(entry))

    def submit_encoded(self, entry: Mapping[str, Any], data: bytes) -> Future[int]:
        """``submit`` of an entry whose canonical bytes were made with it (``audit.entry.encode_entry``):
        ``data`` must be ``canonical(entry)``; it is stored and hashed as given."""
        if self._writer is None:
            raise ReadOnlyLog("this audit log was opened without a signing key")
        return self._writer.submit((data, index_fields(entry)))

    @property
    def queue_depth(self) -> int:
        return self._writer.depth if self._writer is not None else 0

    def _commit(self, queued: list[tuple[bytes, IndexFields]]) -> list[int]:
        records = [Record(data, leaf_hash(data), fields) for data, fields in queued]
        if self._sealer is not None:
            head, self._sealed = self._sealer.append_sealed(records, self._seal)
        else:
            head, self._sealed = self.store.append(records), False
        return list(range(head.size - len(records), head.size))

    def _seal(self, old: TreeHead, new: TreeHead, latest: tuple[int, str] | None) -> str | None:
        """The checkpoint of ``new``, signed inside the batch's transaction, when it plainly extends the
        latest checkpoint: that one is of ``old``, the head ``new`` was computed from. Anything else
        (another writer's batch in between, a hand-over, any doubt) is left to ``sign_pending``."""
        if self._signer is None or self.origin is None or latest is None or latest[0] != old.size:
            return None
        try:
            if peek_checkpoint(latest[1]).root != old.root or old.compact().root() != old.root:
                return None
            if self._ring is not None:  # read in the transaction: no hand-over can slip in after it
                self._signer = self._ring.current(self.store)
            return sign_checkpoint(Checkpoint(self.origin, new.size, new.root), self._signer)
        except Exception as exc:  # the entries are written all the same; the trouble is raised after
            self._seal_error = exc
            return None

    def _sign_after_batch(self) -> None:
        # The batch is durable and answered; if the store went away its head is signed after the next
        # batch, or on the next open. Only a refusal to sign (a fork, a corrupt store) stops the writer.
        if self._sealed:  # signed in the batch's own transaction
            return
        failed, self._seal_error = self._seal_error, None
        if failed is not None and not isinstance(failed, StoreUnavailable):
            raise failed  # what sign_pending would raise (a handed-over key, a corrupt note)
        with suppress(StoreUnavailable):
            self.sign_pending()

    def outage(self) -> float | None:
        """Seconds the store has been out of reach (a server it reconnects to), None while it is not."""
        outage = getattr(self.store, "outage", None)
        return outage() if callable(outage) else None

    def sign_pending(self) -> str:
        """Sign the stored head unless already signed; refuse if it forks from the last checkpoint."""
        if self._signer is None or self.origin is None:
            raise ReadOnlyLog("signing needs the log's key")
        if self._ring is not None:
            self._signer = self._ring.current(self.store)  # a hand-over recorded since switches keys
        latest = self.store.latest_checkpoint()  # read before the head: the head can only be larger
        head = self.store.head()
        existing = self.store.checkpoint_at(head.size)
        if existing is not None:
            if peek_checkpoint(existing).root != head.root:
                raise InconsistentCheckpoint(f"a different root is already signed for size {head.size}")
            return existing
        if latest is not None:
            size, note = latest
            if size > head.size:
                raise StoreCorrupt(
                    f"checkpoint {size} is beyond the stored head {head.size}", code=errors.TRUNCATED
                )
            if size > 0 and not shown_to_extend(self.store, size, peek_checkpoint(note).root, head):
                proof = consistency_proof(size, head.size, self._oracle(size, head.size))
                try:
                    verify_consistency(size, head.size, peek_checkpoint(note).root, head.root, proof)
                except ProofError as exc:
                    raise InconsistentCheckpoint(
                        f"head {head.size} is not an extension of checkpoint {size}"
                    ) from exc
        note = sign_checkpoint(Checkpoint(self.origin, head.size, head.root), self._signer)
        return self.store.add_checkpoint(head.size, note)

    def rotate_key(self, new: Signer) -> str:
        """Hand the log over to ``new`` at the latest checkpoint (co-signed by both keys); return the note."""
        if self._ring is None:
            raise ReadOnlyLog("rotating needs the log's current key")
        self.sign_pending()  # the hand-over is at a signed head, so no entry is left for the old key
        note = self._ring.hand_over(self.store, new)
        self._signer = self._ring.signer
        return note

    def close(self) -> None:
        """Finish queued appends and close the store."""
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            self.store.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Reading

    def checkpoint(self) -> str | None:
        latest = self.store.latest_checkpoint()
        return latest[1] if latest else None

    def query(self, query: Query) -> list[LoggedEntry]:
        """Entries matching ``query``, judged on the entries themselves: the store's query columns only
        preselect, so an edited column cannot make an entry match that does not (verify reports it)."""
        check_query(self.store, query)
        out: list[LoggedEntry] = []
        for stored in self.store.find(query):
            entry = parse(stored.data)
            if query.matches(stored.index, index_fields(entry)):
                out.append(LoggedEntry(stored.index, entry, stored.data))
        return out

    def prove(self, index: int, size: int | None = None) -> str:
        """A C2SP tlog-proof of entry ``index`` against the checkpoint of ``size`` (default: latest)."""
        note = self.store.checkpoint_at(size) if size is not None else self.checkpoint()
        if note is None:
            raise ProofError(f"no checkpoint for size {size}", code=errors.NO_CHECKPOINT)
        tree_size = peek_checkpoint(note).size
        if 0 <= index < live_base(self.store).size:
            raise archived_error(self.store, index, f"a proof of entry {index}")
        hashes = inclusion_proof(index, tree_size, self._oracle(tree_size, tree_size))
        entry = self.store.entries(index, index + 1)[0]
        return InclusionProof(index, tuple(hashes), note, extra=entry.data).text()

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        return consistency_proof(size1, size2, self._oracle(size1, size2))

    def _oracle(self, old: int, new: int) -> SubtreeHash:
        """Subtree hashes for proofs, from stored heads where possible: O(log² n) reads, not O(n).

        An aligned perfect subtree [a, a+w) with a a multiple of 2w is a node of the compact range of
        every size in [a+w, a+2w); heads are stored per batch, so wide subtrees come from a head and
        only narrow ones are hashed from leaves.
        """
        table: dict[tuple[int, int], bytes] = {}

        def learn(head: TreeHead | None) -> None:
            if head is not None:
                table.update(((s, e), h) for s, e, h in head.compact().nodes())

        for size in {old, new}:
            learn(self.store.head_at(size))
        base = live_base(self.store)  # leaves below it were dropped: only its compact range is kept
        learn(base)

        def mth(start: int, end: int) -> bytes:
            hit = table.get((start, end))
            if hit is not None:
                return hit
            width = end - start
            if width <= LEAF_RUN and start >= base.size:
                return root_of(self.store.leaf_hashes(start, end))
            if width & (width - 1) == 0 and start % (2 * width) == 0:
                learn(self.store.head_between(end, start + 2 * width))
                hit = table.get((start, end))
                if hit is not None:
                    return hit
            if end <= base.size:
                raise archived_error(self.store, start, "this proof")
            half = 1 << ((width - 1).bit_length() - 1)
            return node_hash(mth(start, start + half), mth(start + half, end))

        return mth

    def verify(
        self,
        verifier: Verifier,
        *,
        trusted: tuple[str, ...] = (),
        pinned: Sequence[Verifier] = (),
        jobs: int = 1,
    ) -> VerifyReport:
        """Re-hash every entry and check every checkpoint signature and root.

        ``verifier`` is the log's first key; later keys are trusted through co-signed hand-overs, or
        when ``pinned`` (keys the auditor got otherwise). ``jobs`` > 1 checks the entries in that many
        processes, each reading the log itself (a log opened from a path or URL); the verdict and the
        first bad index are the same as with one.
        """
        chain = load_chain(self.store, verifier, pinned)
        checkpoints = self.store.checkpoints()  # before the head, which can only have grown since
        base = live_base(self.store)  # an archived prefix is checked with its archive (audit.archive)
        head, count = self.store.state()
        end = min(max(count, base.size), head.size + 1)  # an entry past the head is tampering
        if jobs > 1 and self.target is not None:
            scans = partial(parallel_scans, self.target, base.size, end, jobs)
        else:
            scans = partial(store_scans, self.store, base.size, end)
        report = verify_scans(
            scans, checkpoints, verifier, head=head, trusted=trusted, chain=chain, start=base
        )
        if report.ok and self.origin != verifier.name:
            # Every checkpoint verifies under the pinned key, so the log's own record of its origin (which
            # a writer checks on open) was edited.
            return replace(
                report,
                ok=False,
                first_bad_index=0,
                code=errors.ORIGIN_MISMATCH,
                message=f"the log says its origin is {self.origin!r}, its checkpoints say {verifier.name!r}",
            )
        return report

    def iter_entries(self, end: int | None = None) -> Iterator[StoredEntry]:
        """The live entries in index order: those of an archived prefix were dropped."""
        stop = self.store.state()[1] if end is None else end
        for start in range(live_base(self.store).size, stop, PAGE):
            yield from self.store.entries(start, min(start + PAGE, stop))


def recover(store: Store) -> TreeHead:
    """Check the stored head against the stored leaves; raise StoreCorrupt when they differ."""
    head, count = store.state()
    base = live_base(store)  # the live entries extend the archived prefix's compact range
    count = max(count, base.size)  # every entry archived and dropped: none left to count
    if count != head.size:
        raise StoreCorrupt(
            f"the log holds {count} entries but its head says {head.size}", code=errors.HEAD_MISMATCH
        )
    compact = base.compact()
    for start in range(base.size, count, PAGE):
        compact.extend(store.leaf_hashes(start, min(start + PAGE, count)))
    if compact.size != head.size or compact.root() != head.root:
        raise StoreCorrupt("the recomputed root differs from the stored root", code=errors.ROOT_MISMATCH)
    if compact.to_bytes() != head.range_blob:  # the state the next append would build on
        raise StoreCorrupt("the stored compact range differs from the leaves", code=errors.RANGE_MISMATCH)
    return head
