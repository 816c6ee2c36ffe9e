"""The audit package's one exception tree and its catalogue of stable snake_case codes.

An error's ``code`` is its class's own code, or a finer code of that class's kind given where it is raised
(``raise ProofError(..., code=HASH_SIZE)``). Codes appear in CLI output, the auditors' API and tests::

    AuditError                      audit_error
    ├── EntryError                  entry_invalid        an entry cannot be made canonical
    │     entry_naive_time entry_source entry_verdict entry_unicode entry_integer entry_float
    │     entry_key entry_type
    ├── ProofError                  proof_invalid        a Merkle proof does not verify
    │     hash_size proof_length root_mismatch range_invalid index_out_of_range size_out_of_range
    │     subtree_invalid no_checkpoint
    ├── NoteError                   note_invalid         a signed note is malformed or unsigned
    │     checkpoint_invalid key_name vkey_invalid origin_mismatch signature_invalid
    │     signature_unknown_key
    ├── KeyFileError                key_invalid          a key file cannot be read or is the wrong kind
    │     key_exists key_origin key_mismatch log_missing usage key_rotated key_revoked
    ├── ProofFormatError            proof_format         a tlog-proof text cannot be parsed
    │     proof_no_entry
    ├── StoreError                  store_error          the storage backend failed
    │   │ store_busy
    │   ├── StoreCorrupt            store_corrupt        stored state disagrees with itself
    │   │     origin_mismatch truncated head_mismatch root_mismatch range_mismatch
    │   └── StoreUnavailable        store_unavailable    the backend cannot be reached (it may come back)
    ├── InconsistentCheckpoint      checkpoint_inconsistent   refusing to sign a forked tree
    ├── ReadOnlyLog                 log_read_only        append without a signer
    ├── LogClosed                   log_closed           append after close
    ├── ExportError                 export_invalid       an export directory is incomplete
    │     export_no_key archive_invalid archive_empty archive_exists
    ├── EntriesArchived             entries_archived     the entries asked for were archived and dropped
    └── (AuditError itself)         api_no_tokens        the auditors' API has no token to accept

A verification (``VerifyReport.code``) is ``ok`` or names the first thing wrong: checkpoint_signature
checkpoint_misfiled trusted_checkpoint root_mismatch entry_missing entry_hash index_mismatch truncated
head_mismatch unsigned_entries handover_invalid key_revoked key_not_trusted archive_mismatch. The auditors'
API answers ``busy`` (503) at its query cap.
"""

from __future__ import annotations

# Finer codes of an error class (the class each belongs to is in the tree above).
ENTRY_NAIVE_TIME = "entry_naive_time"  # an entry time without a timezone
ENTRY_SOURCE = "entry_source"  # an entry source that is not one of entry.SOURCES
ENTRY_VERDICT = "entry_verdict"  # an entry verdict that is not one of entry.VERDICTS
ENTRY_UNICODE = "entry_unicode"  # a string that is not valid Unicode (a lone surrogate)
ENTRY_INTEGER = "entry_integer"  # an integer outside the I-JSON safe range
ENTRY_FLOAT = "entry_float"  # a float (entries hold none: their canonical form would be ambiguous)
ENTRY_KEY = "entry_key"  # an object key that is not a string
ENTRY_TYPE = "entry_type"  # a value that is not a JSON type
HASH_SIZE = "hash_size"  # a hash that is not 32 bytes
PROOF_LENGTH = "proof_length"  # a proof with too many or too few hashes
ROOT_MISMATCH = "root_mismatch"  # hashes that do not lead to the root they should
RANGE_INVALID = "range_invalid"  # a compact range with the wrong number of hashes
INDEX_OUT_OF_RANGE = "index_out_of_range"  # an index outside the tree
SIZE_OUT_OF_RANGE = "size_out_of_range"  # tree sizes no consistency proof can join
SUBTREE_INVALID = "subtree_invalid"  # a range that is not a subtree
NO_CHECKPOINT = "no_checkpoint"  # no checkpoint for the size asked
CHECKPOINT_INVALID = "checkpoint_invalid"  # a checkpoint body that is not origin, size and root
KEY_NAME = "key_name"  # a key name that is empty, has spaces or '+', or is not the origin
VKEY_INVALID = "vkey_invalid"  # a verifier key that is not name+keyid+base64 of an Ed25519 key
ORIGIN_MISMATCH = "origin_mismatch"  # a checkpoint or log of another origin
SIGNATURE_INVALID = "signature_invalid"  # a signature by a known key that does not verify
SIGNATURE_UNKNOWN_KEY = "signature_unknown_key"  # no signature by a known key
KEY_EXISTS = "key_exists"  # keygen would overwrite key files
KEY_ORIGIN = "key_origin"  # a key that needs, or is not, the log's origin
KEY_MISMATCH = "key_mismatch"  # the log is signed with another key
LOG_MISSING = "log_missing"  # no audit log at the path given
USAGE = "usage"  # a command-line argument the audit verbs cannot use
PROOF_NO_ENTRY = "proof_no_entry"  # a tlog-proof with no entry to check
STORE_BUSY = "store_busy"  # the SQLite log is locked by another writer
TRUNCATED = "truncated"  # checkpoints cover entries that are not there
HEAD_MISMATCH = "head_mismatch"  # the stored tree head disagrees with the entries
RANGE_MISMATCH = "range_mismatch"  # the stored compact range disagrees with the leaves
EXPORT_NO_KEY = "export_no_key"  # an export of a log that never signed anything
API_NO_TOKENS = "api_no_tokens"  # the auditors' API tokens file holds no token
KEY_ROTATED = "key_rotated"  # a key that was handed over to another and signs no more
ARCHIVE_INVALID = "archive_invalid"  # an archive directory whose manifest cannot be used
ARCHIVE_EMPTY = "archive_empty"  # no signed prefix before the time given that is not archived yet
ARCHIVE_EXISTS = "archive_exists"  # an archive would be written over a directory that is not empty

# What a verification reports (VerifyReport.code).
OK = "ok"
CHECKPOINT_SIGNATURE = "checkpoint_signature"  # a stored checkpoint whose signature does not verify
CHECKPOINT_MISFILED = "checkpoint_misfiled"  # a checkpoint stored under another size than its own
TRUSTED_CHECKPOINT = "trusted_checkpoint"  # a checkpoint the auditor kept that does not verify
ENTRY_MISSING = "entry_missing"  # a gap in the entries
ENTRY_HASH = "entry_hash"  # an entry that does not match its stored leaf hash
INDEX_MISMATCH = "index_mismatch"  # an entry's query columns that differ from the entry
UNSIGNED_ENTRIES = "unsigned_entries"  # entries no checkpoint covers where one must
HANDOVER_INVALID = "handover_invalid"  # a key hand-over not co-signed by the old and the new key
KEY_REVOKED = "key_revoked"  # a signature by a key revoked from a size at or below the checkpoint's
KEY_NOT_TRUSTED = "key_not_trusted"  # a checkpoint signed by no key the chain trusts at its size
ARCHIVE_MISMATCH = "archive_mismatch"  # archives that do not join each other or the live log

# What the auditors' API answers besides an AuditError's code.
BUSY = "busy"  # the API is at its query cap (503, Retry-After)

API_CODES = frozenset({BUSY})

VERIFY_CODES = frozenset(
    {
        OK,
        CHECKPOINT_SIGNATURE,
        CHECKPOINT_MISFILED,
        TRUSTED_CHECKPOINT,
        ROOT_MISMATCH,
        ENTRY_MISSING,
        ENTRY_HASH,
        INDEX_MISMATCH,
        TRUNCATED,
        HEAD_MISMATCH,
        UNSIGNED_ENTRIES,
        HANDOVER_INVALID,
        KEY_REVOKED,
        KEY_NOT_TRUSTED,
        ARCHIVE_MISMATCH,
    }
)


class AuditError(Exception):
    code = "audit_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class EntryError(AuditError):
    code = "entry_invalid"


class ProofError(AuditError):
    code = "proof_invalid"


class NoteError(AuditError):
    code = "note_invalid"


class KeyFileError(AuditError):
    code = "key_invalid"


class ProofFormatError(AuditError):
    code = "proof_format"


class StoreError(AuditError):
    code = "store_error"


class StoreCorrupt(StoreError):
    code = "store_corrupt"


class StoreUnavailable(StoreError):
    code = "store_unavailable"


class InconsistentCheckpoint(AuditError):
    code = "checkpoint_inconsistent"


class ReadOnlyLog(AuditError):
    code = "log_read_only"


class LogClosed(AuditError):
    code = "log_closed"


class ExportError(AuditError):
    code = "export_invalid"


class EntriesArchived(AuditError):
    code = "entries_archived"


_CLASSES: tuple[type[AuditError], ...] = (
    AuditError,
    EntryError,
    ProofError,
    NoteError,
    KeyFileError,
    ProofFormatError,
    StoreError,
    StoreCorrupt,
    StoreUnavailable,
    InconsistentCheckpoint,
    ReadOnlyLog,
    LogClosed,
    ExportError,
    EntriesArchived,
)

# Every code an AuditError can carry: each class's own, and the finer ones above.
ERROR_CODES = frozenset(
    {cls.code for cls in _CLASSES}
    | {
        ENTRY_NAIVE_TIME,
        ENTRY_SOURCE,
        ENTRY_VERDICT,
        ENTRY_UNICODE,
        ENTRY_INTEGER,
        ENTRY_FLOAT,
        ENTRY_KEY,
        ENTRY_TYPE,
        HASH_SIZE,
        PROOF_LENGTH,
        ROOT_MISMATCH,
        RANGE_INVALID,
        INDEX_OUT_OF_RANGE,
        SIZE_OUT_OF_RANGE,
        SUBTREE_INVALID,
        NO_CHECKPOINT,
        CHECKPOINT_INVALID,
        KEY_NAME,
        VKEY_INVALID,
        ORIGIN_MISMATCH,
        SIGNATURE_INVALID,
        SIGNATURE_UNKNOWN_KEY,
        KEY_EXISTS,
        KEY_ORIGIN,
        KEY_MISMATCH,
        LOG_MISSING,
        USAGE,
        PROOF_NO_ENTRY,
        STORE_BUSY,
        TRUNCATED,
        HEAD_MISMATCH,
        RANGE_MISMATCH,
        EXPORT_NO_KEY,
        API_NO_TOKENS,
        KEY_ROTATED,
        KEY_REVOKED,
        ARCHIVE_INVALID,
        ARCHIVE_EMPTY,
        ARCHIVE_EXISTS,
    }
)

CODES = ERROR_CODES | VERIFY_CODES | API_CODES  # the whole catalogue
