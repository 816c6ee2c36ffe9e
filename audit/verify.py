"""Full verification of a log: re-hash every entry, check every checkpoint, name the first bad index.

Pure over what it is given (entries in index order, checkpoint notes, the public key), so the same
function checks a live store and an exported directory. All checkpoint roots are recomputed from one
sequence of leaves, which also proves each pair of checkpoints consistent. The per-entry checks run in
``audit.scan`` over runs of entries (in this process or in several, ``verify --jobs``); the tree is
replayed here from their leaf hashes in index order, so the verdict does not depend on how many ran.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from audit import errors
from audit.checkpoint import Checkpoint
from audit.errors import NoteError
from audit.keychain import KeyChain
from audit.note import Verifier
from audit.scan import Problem, Row, Scan, as_row, scan_rows
from audit.stores import StoredEntry, TreeHead

KEY_CODES = frozenset({errors.KEY_NOT_TRUSTED})  # reported as itself, not as a bad signature
BATCH = 4096  # entries of an iterable checked together
# Runs of entries in index order, given the index at which to stop reading (None: read them all).
Scans = Callable[[int | None], Iterator[Scan]]
_Problem = Problem


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    entries: int
    checkpoints: int
    signed_size: int  # the largest checkpoint size that verified
    first_bad_index: int | None = None
    code: str = errors.OK
    message: str = "intact"

    @property
    def unsigned(self) -> int:
        """Entries after the last checkpoint: durable, but not yet covered by a signature."""
        return max(0, self.entries - self.signed_size)


def verify_log(
    entries: Iterable[StoredEntry | tuple[int, bytes]],
    checkpoints: Sequence[tuple[int, str]],
    verifier: Verifier,
    *,
    head: TreeHead | None = None,
    trusted: Sequence[str] = (),
    chain: KeyChain | None = None,
    start: TreeHead | None = None,
) -> VerifyReport:
    """Check entries (with their stored leaf hashes and query columns when given) against every checkpoint.

    ``checkpoints`` are (size the store filed it under, note). ``head`` is the store's own tree head;
    ``trusted`` are checkpoint notes an auditor kept earlier (they catch a log cut back with its checkpoints).
    ``chain`` holds the keys after ``verifier`` (the first) with their hand-overs and revocations.
    ``start`` is the head of a prefix checked elsewhere (an archive): the entries begin at its size, it
    must be signed by a checkpoint, and the checkpoints below it are checked for their signature only.
    """
    first = start.size if start is not None else 0
    return verify_scans(
        lambda limit: _scans(entries, limit, first),
        checkpoints,
        verifier,
        head=head,
        trusted=trusted,
        chain=chain,
        start=start,
    )


def verify_scans(
    scans: Scans,
    checkpoints: Sequence[tuple[int, str]],
    verifier: Verifier,
    *,
    head: TreeHead | None = None,
    trusted: Sequence[str] = (),
    chain: KeyChain | None = None,
    start: TreeHead | None = None,
) -> VerifyReport:
    """``verify_log`` over entries already checked in runs (``audit.scan``), replayed in index order
    (from ``start.size`` when a prefix was archived)."""
    problems: list[_Problem] = []
    chain = chain if chain is not None else KeyChain(verifier)
    revoked: list[tuple[int, str]] = []
    expected = _stored_checkpoints(checkpoints, chain, problems, revoked)
    _trusted_checkpoints(trusted, chain, expected, problems)
    _handovers(chain, expected, problems)
    _revoked_tail(revoked, expected, problems)
    bad_limit = min((p.index for p in problems), default=None)
    replay = _Replay(expected, start or TreeHead.empty())
    runs = scans(bad_limit)
    try:
        replay.run(runs, problems)
    finally:
        close = getattr(runs, "close", None)
        if close is not None:
            close()  # stop reading (and any worker still checking) once the verdict is known
    count = replay.compact.size
    if replay.next_size is not None and not problems:
        last = max(expected)
        problems.append(
            _Problem(count, errors.TRUNCATED, f"checkpoint {last} covers entries beyond the {count} present")
        )
    if head is not None and not problems and (head.size != count or head.root != replay.compact.root()):
        problems.append(
            _Problem(replay.previous, errors.HEAD_MISMATCH, "the stored tree head does not match the entries")
        )
    if count and not checkpoints and not problems:
        # Every log signs the empty tree when it is created: entries with no checkpoint at all means the
        # checkpoints were removed, not that none were ever made.
        problems.append(
            _Problem(0, errors.UNSIGNED_ENTRIES, f"{count} entries and no checkpoint covers any of them")
        )
    if replay.columns is not None:
        problems.append(replay.columns)  # after the others, so that they win a tie on the index
    signed = replay.previous
    if not problems:
        return VerifyReport(True, count, len(checkpoints), signed)
    first = min(problems, key=lambda p: p.index)
    return VerifyReport(False, count, len(checkpoints), signed, first.index, first.code, first.message)


def _stored_checkpoints(
    checkpoints: Sequence[tuple[int, str]],
    chain: KeyChain,
    problems: list[_Problem],
    revoked: list[tuple[int, str]],
) -> dict[int, Checkpoint]:
    """The store's checkpoints by size, up to the first that does not verify or is filed wrongly.

    One signed only by a revoked key is no evidence but no proof of tampering either: it lands in
    ``revoked`` and counts only when no trusted checkpoint covers its entries."""
    expected: dict[int, Checkpoint] = {}
    span_start = 0
    for filed, note in sorted(checkpoints, key=lambda item: item[0]):
        try:
            checkpoint = chain.open(note)
        except NoteError as exc:
            message = f"checkpoint {filed}: {exc.message}"
            if exc.code == errors.KEY_REVOKED:
                revoked.append((filed, message))
                continue
            code = exc.code if exc.code in KEY_CODES else errors.CHECKPOINT_SIGNATURE
            problems.append(_Problem(span_start, code, message))
            break
        if checkpoint.size != filed:
            message = f"checkpoint {filed} says size {checkpoint.size}"
            problems.append(_Problem(span_start, errors.CHECKPOINT_MISFILED, message))
            break
        expected[filed] = checkpoint
        span_start = filed
    return expected


def _trusted_checkpoints(
    trusted: Sequence[str], chain: KeyChain, expected: dict[int, Checkpoint], problems: list[_Problem]
) -> None:
    """Add the auditor's own checkpoints to ``expected``; one that contradicts the store's is a problem."""
    for note in trusted:
        try:
            checkpoint = chain.open(note)
        except NoteError as exc:
            problems.append(_Problem(0, errors.TRUSTED_CHECKPOINT, f"trusted checkpoint: {exc.message}"))
            continue
        known = expected.get(checkpoint.size)
        if known is not None and known.root != checkpoint.root:
            message = f"trusted checkpoint {checkpoint.size} differs from the log's"
            problems.append(_Problem(0, errors.ROOT_MISMATCH, message))
        expected.setdefault(checkpoint.size, checkpoint)


def _handovers(chain: KeyChain, expected: dict[int, Checkpoint], problems: list[_Problem]) -> None:
    """A broken hand-over is reported from the last checkpoint before it; a valid one is a checkpoint
    like the others, whose root the entries must reach."""
    if chain.problem is not None:
        start = max((size for size in expected if size <= chain.problem.size), default=0)
        message = f"key chain: {chain.problem.message}"
        problems.insert(0, _Problem(start, chain.problem.code, message))  # the cause wins a tie
    for checkpoint in chain.handovers:
        known = expected.get(checkpoint.size)
        if known is not None and known.root != checkpoint.root:
            message = f"the hand-over at {checkpoint.size} differs from the checkpoint of that size"
            problems.append(_Problem(checkpoint.size, errors.ROOT_MISMATCH, message))
        expected.setdefault(checkpoint.size, checkpoint)


def _revoked_tail(
    revoked: list[tuple[int, str]], expected: dict[int, Checkpoint], problems: list[_Problem]
) -> None:
    """Entries whose only checkpoints are signed by a revoked key: reported from the last trusted one."""
    covered = max(expected, default=-1)
    uncovered = [(size, message) for size, message in revoked if size > covered]
    if uncovered:
        start = max(covered, 0)
        problems.append(_Problem(start, errors.KEY_REVOKED, uncovered[0][1]))


class _Replay:
    """The entries hashed again in index order, each checkpoint's root compared as its size is reached."""

    def __init__(self, expected: dict[int, Checkpoint], start: TreeHead) -> None:
        self.expected = expected
        self.compact = start.compact()
        self._pending = iter(sorted(size for size in expected if size >= start.size))
        self.next_size = next(self._pending, None)  # the size of the next checkpoint to reach
        self.previous = start.size  # the size of the last checkpoint reached
        self.columns: _Problem | None = None  # the first entry whose query columns differ from it

    def run(self, scans: Iterable[Scan], problems: list[_Problem]) -> None:
        base = self.compact.size
        if self.next_size == base:
            if self.expected[base].root != self.compact.root():
                message = f"checkpoint {base} is not the " + ("empty tree" if not base else "archived prefix")
                problems.append(_Problem(base, errors.ROOT_MISMATCH, message))
            self.next_size = next(self._pending, None)
        elif base:  # the kept compact range of an archived prefix is bound to nothing a key signed
            message = f"no checkpoint signs the archived prefix [0, {base})"
            problems.append(_Problem(base, errors.ARCHIVE_MISMATCH, message))
        for scan in scans:
            if not self._feed(scan, problems):
                break

    def _feed(self, scan: Scan, problems: list[_Problem]) -> bool:
        """Append a run's leaves, checking each checkpoint reached; False once there is a problem."""
        compact = self.compact
        if scan.first_row is not None and compact.size != scan.start:
            # The previous run ended short of this one's start: the first absent index is the gap.
            problems.append(_Problem(compact.size, errors.ENTRY_MISSING, f"entry {compact.size} is missing"))
            return False
        leaves = scan.leaves
        done = 0
        while done < len(leaves):
            take = len(leaves) - done if self.next_size is None else self.next_size - compact.size
            compact.extend(leaves[done : done + take] if done or take < len(leaves) else leaves)
            done += min(take, len(leaves) - done)
            if compact.size != self.next_size:
                break
            if compact.root() != self.expected[self.next_size].root:
                message = (
                    f"entries [{self.previous}, {self.next_size}) do not match checkpoint {self.next_size}"
                )
                problems.append(_Problem(self.previous, errors.ROOT_MISMATCH, message))
                self._columns(scan, compact.size - 1)
                return False
            self.previous = self.next_size
            self.next_size = next(self._pending, None)
        self._columns(scan, compact.size - 1)
        if scan.stop is not None:
            problems.append(scan.stop)
            return False
        return True

    def _columns(self, scan: Scan, last: int) -> None:
        """Keep the first column mismatch among the entries replayed (up to index ``last``)."""
        if self.columns is None and scan.columns is not None and scan.columns.index <= last:
            self.columns = scan.columns


def _scans(
    entries: Iterable[StoredEntry | tuple[int, bytes]], limit: int | None, first: int = 0
) -> Iterator[Scan]:
    """Entries from an iterable (the first at index ``first``) in runs of BATCH. A failure to read the
    next entry (a malformed export) is raised only after the entries read before it were checked, as when
    they were checked one by one."""
    items = iter(entries)
    start = first
    while True:
        batch: list[Row] = []
        failure: Exception | None = None
        ended = True
        try:
            for item in items:
                row = as_row(item)
                if limit is not None and row[0] >= limit:
                    break
                batch.append(row)
                if len(batch) == BATCH:
                    ended = False
                    break
        except Exception as exc:
            failure = exc
        if batch:
            scan = scan_rows(batch, start)
            yield scan
            start += len(scan.leaves)
        if failure is not None:
            raise failure
        if ended:
            return
