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
from audit.merkle import CompactRange, leaf_hash
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
) -> VerifyReport:
    """Check entries (with their stored leaf hashes and query columns when given) against every checkpoint.

    ``checkpoints`` are (size the store filed it under, note). ``head`` is the store's own tree head;
    ``trusted`` are checkpoint notes an auditor kept earlier (they catch a log cut back with its checkpoints).
    """
    problems: list[_Problem] = []
    expected: dict[int, Checkpoint] = {}
    span_start = 0
    for filed, note in sorted(checkpoints, key=lambda item: item[0]):
        try:
            checkpoint = open_checkpoint(note, verifier)
        except NoteError as exc:
            problems.append(
                _Problem(span_start, errors.CHECKPOINT_SIGNATURE, f"checkpoint {filed}: {exc.message}")
            )
            break
        if checkpoint.size != filed:
            problems.append(
                _Problem(
                    span_start, errors.CHECKPOINT_MISFILED, f"checkpoint {filed} says size {checkpoint.size}"
                )
            )
            break
        expected[filed] = checkpoint
        span_start = filed
    for note in trusted:
        try:
            checkpoint = open_checkpoint(note, verifier)
        except NoteError as exc:
            problems.append(_Problem(0, errors.TRUSTED_CHECKPOINT, f"trusted checkpoint: {exc.message}"))
            continue
        known = expected.get(checkpoint.size)
        if known is not None and known.root != checkpoint.root:
            problems.append(
                _Problem(
                    0, errors.ROOT_MISMATCH, f"trusted checkpoint {checkpoint.size} differs from the log's"
                )
            )
        expected.setdefault(checkpoint.size, checkpoint)
    sizes = sorted(expected)
    bad_limit = min((p.index for p in problems), default=None)

    compact = CompactRange()
    pending = iter(sizes)
    next_size = next(pending, None)
    previous = 0
    columns: _Problem | None = None
    if next_size == 0:
        if expected[0].root != compact.root():
            problems.append(_Problem(0, errors.ROOT_MISMATCH, "checkpoint 0 is not the empty tree"))
        next_size = next(pending, None)
    for item in entries:
        index, data = (item.index, item.data) if isinstance(item, StoredEntry) else item
        if bad_limit is not None and index >= bad_limit:
            break
        if index != compact.size:
            problems.append(_Problem(compact.size, errors.ENTRY_MISSING, f"entry {compact.size} is missing"))
            break
        digest = leaf_hash(data)
        if isinstance(item, StoredEntry) and item.leaf_hash != digest:
            problems.append(_Problem(index, errors.ENTRY_HASH, f"entry {index} does not match its leaf hash"))
            break
        if (
            columns is None
            and isinstance(item, StoredEntry)
            and item.fields is not None
            and _columns(item.fields) != _columns(_fields(data))
        ):
            # Not a break: when the entry itself was edited, the checkpoint's verdict is the one to report.
            columns = _Problem(
                index, errors.INDEX_MISMATCH, f"the query columns of entry {index} differ from it"
            )
        compact.append(digest)
        if compact.size == next_size:
            if compact.root() != expected[next_size].root:
                problems.append(
                    _Problem(
                        previous,
                        errors.ROOT_MISMATCH,
                        f"entries [{previous}, {next_size}) do not match checkpoint {next_size}",
                    )
                )
                break
            previous = next_size
            next_size = next(pending, None)
    count = compact.size
    if next_size is not None and not problems:
        problems.append(
            _Problem(
                count, errors.TRUNCATED, f"checkpoint {sizes[-1]} covers entries beyond the {count} present"
            )
        )
    if head is not None and not problems and (head.size != count or head.root != compact.root()):
        problems.append(
            _Problem(previous, errors.HEAD_MISMATCH, "the stored tree head does not match the entries")
        )
    if count and not checkpoints and not problems:
        # Every log signs the empty tree when it is created: entries with no checkpoint at all means the
        # checkpoints were removed, not that none were ever made.
        problems.append(
            _Problem(0, errors.UNSIGNED_ENTRIES, f"{count} entries and no checkpoint covers any of them")
        )
    if columns is not None:
        problems.append(columns)  # after the others, so that they win a tie on the index
    signed = previous
    if not problems:
        return VerifyReport(True, count, len(checkpoints), signed)
    first = min(problems, key=lambda p: p.index)
    return VerifyReport(False, count, len(checkpoints), signed, first.index, first.code, first.message)
