"""The audit package's one exception tree; every error carries a stable snake_case ``code``.

::

    AuditError                      audit_error
    ├── EntryError                  entry_invalid        an entry cannot be made canonical
    ├── ProofError                  proof_invalid        a Merkle proof does not verify
    ├── NoteError                   note_invalid         a signed note is malformed or unsigned
    ├── KeyFileError                key_invalid          a key file cannot be read or is the wrong kind
    ├── ProofFormatError            proof_format         a tlog-proof text cannot be parsed
    ├── StoreError                  store_error          the storage backend failed
    │   ├── StoreCorrupt            store_corrupt        stored state disagrees with itself
    │   └── StoreUnavailable        store_unavailable    the backend cannot be reached (it may come back)
    ├── InconsistentCheckpoint      checkpoint_inconsistent   refusing to sign a forked tree
    ├── ReadOnlyLog                 log_read_only        append without a signer
    ├── LogClosed                   log_closed           append after close
    └── ExportError                 export_invalid       an export directory is incomplete
"""

from __future__ import annotations


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
