"""Full verification of a log: re-hash every entry, check every checkpoint, name the first bad index.

Pure over what it is given (entries in index order, checkpoint notes, the public key), so the same
function checks a live store and an exported directory. All checkpoint roots are recomputed from one
sequence of leaves, which also proves each pair of checkpoints consistent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from audit import errors
from audit.checkpoint import Checkpoint, open_checkpoint
from audit.entry import IndexFields, index_fields, parse
from audit.errors import EntryError, NoteError
from audit.merkle import leaf_hash
from audit.note import Verifier
from audit.stores import StoredEntry, TreeHead


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


@dataclass(frozen=True)
class _Problem:
    index: int
    code: str
    message: str


def _fields(data: bytes) -> IndexFields | None:
    try:
        return index_fields(parse(data))
    except (ValueError, EntryError):
        return None


def _columns(fields: IndexFields | None) -> tuple[str, ...] | None:
    """The fields as SQL stores keep them (policies joined by newlines, which names never hold)."""
    if fields is None:
        return None
    f = fields
    return (f.time, f.source, f.verdict, f.namespace, f.user, f.kind, "\n".join(f.policies))


def verify_log(
    entries: Iterable[StoredEntry | tuple[int, bytes]],
    checkpoints: Sequence[tuple[int, str]],
    verifier: Verifier,
    *,
    head: TreeHead | None = None,
    trusted: Sequence[str] = (),
    start: TreeHead | None = None,
) -> VerifyReport:
    """Check entries (with their stored leaf hashes and query columns when given) against every checkpoint.

    ``checkpoints`` are (size the store filed it under, note). ``head`` is the store's own tree head;
    ``trusted`` are checkpoint notes an auditor kept earlier (they catch a log cut back with its checkpoints).
    ``start`` is the head of a prefix checked elsewhere (an archive): the entries begin at its size, it
    must be signed by a checkpoint, and the checkpoints below it are checked for their signature only.
    """
    problems: list[_Problem] = []
    expected = _stored_checkpoints(checkpoints, verifier, problems)
    _trusted_checkpoints(trusted, verifier, expected, problems)
    bad_limit = min((p.index for p in problems), default=None)
    replay = _Replay(expected, start or TreeHead.empty())
    replay.run(entries, bad_limit, problems)
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
    checkpoints: Sequence[tuple[int, str]], verifier: Verifier, problems: list[_Problem]
) -> dict[int, Checkpoint]:
    """The store's checkpoints by size, up to the first that does not verify or is filed wrongly."""
    expected: dict[int, Checkpoint] = {}
    span_start = 0
    for filed, note in sorted(checkpoints, key=lambda item: item[0]):
        try:
            checkpoint = open_checkpoint(note, verifier)
        except NoteError as exc:
            message = f"checkpoint {filed}: {exc.message}"
            problems.append(_Problem(span_start, errors.CHECKPOINT_SIGNATURE, message))
            break
        if checkpoint.size != filed:
            message = f"checkpoint {filed} says size {checkpoint.size}"
            problems.append(_Problem(span_start, errors.CHECKPOINT_MISFILED, message))
            break
        expected[filed] = checkpoint
        span_start = filed
    return expected


def _trusted_checkpoints(
    trusted: Sequence[str], verifier: Verifier, expected: dict[int, Checkpoint], problems: list[_Problem]
) -> None:
    """Add the auditor's own checkpoints to ``expected``; one that contradicts the store's is a problem."""
    for note in trusted:
        try:
            checkpoint = open_checkpoint(note, verifier)
        except NoteError as exc:
            problems.append(_Problem(0, errors.TRUSTED_CHECKPOINT, f"trusted checkpoint: {exc.message}"))
            continue
        known = expected.get(checkpoint.size)
        if known is not None and known.root != checkpoint.root:
            message = f"trusted checkpoint {checkpoint.size} differs from the log's"
            problems.append(_Problem(0, errors.ROOT_MISMATCH, message))
        expected.setdefault(checkpoint.size, checkpoint)


class _Replay:
    """The entries hashed again in index order, each checkpoint's root compared as its size is reached."""

    def __init__(self, expected: dict[int, Checkpoint], start: TreeHead) -> None:
        self.expected = expected
        self.compact = start.compact()
        self._pending = iter(sorted(size for size in expected if size >= start.size))
        self.next_size = next(self._pending, None)  # the size of the next checkpoint to reach
        self.previous = start.size  # the size of the last checkpoint reached
        self.columns: _Problem | None = None  # the first entry whose query columns differ from it

    def run(
        self,
        entries: Iterable[StoredEntry | tuple[int, bytes]],
        bad_limit: int | None,
        problems: list[_Problem],
    ) -> None:
        base = self.compact.size
        if self.next_size == base:
            if self.expected[base].root != self.compact.root():
                message = f"checkpoint {base} is not the " + ("empty tree" if not base else "archived prefix")
                problems.append(_Problem(base, errors.ROOT_MISMATCH, message))
            self.next_size = next(self._pending, None)
        elif base:  # the kept compact range of an archived prefix is bound to nothing a key signed
            message = f"no checkpoint signs the archived prefix [0, {base})"
            problems.append(_Problem(base, errors.ARCHIVE_MISMATCH, message))
        for item in entries:
            index, data = (item.index, item.data) if isinstance(item, StoredEntry) else item
            if bad_limit is not None and index >= bad_limit:
                break
            problem = self._entry(index, data, item)
            if problem is not None:
                problems.append(problem)
                break

    def _entry(self, index: int, data: bytes, item: StoredEntry | tuple[int, bytes]) -> _Problem | None:
        compact = self.compact
        if index != compact.size:
            return _Problem(compact.size, errors.ENTRY_MISSING, f"entry {compact.size} is missing")
        digest = leaf_hash(data)
        if isinstance(item, StoredEntry):
            if item.leaf_hash != digest:
                return _Problem(index, errors.ENTRY_HASH, f"entry {index} does not match its leaf hash")
            if (
                self.columns is None
                and item.fields is not None
                and _columns(item.fields) != _columns(_fields(data))
            ):
                # Not a stop: when the entry itself was edited, the checkpoint's verdict is the one to report.
                message = f"the query columns of entry {index} differ from it"
                self.columns = _Problem(index, errors.INDEX_MISMATCH, message)
        compact.append(digest)
        if compact.size != self.next_size:
            return None
        if compact.root() != self.expected[self.next_size].root:
            message = f"entries [{self.previous}, {self.next_size}) do not match checkpoint {self.next_size}"
            return _Problem(self.previous, errors.ROOT_MISMATCH, message)
        self.previous = self.next_size
        self.next_size = next(self._pending, None)
        return None
