"""Reading a small file an operator points the webhook at (a certificate, a key, a JWKS), bounded: a
file of the wrong kind, or a device that never ends, is refused instead of read into memory."""

from __future__ import annotations


def read_bounded(path: str, limit: int, error: type[Exception], what: str) -> bytes:
    """At most ``limit`` bytes of ``path``; ``error`` naming the file when it cannot be read or is
    larger (then it is not ``what``)."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as err:
        raise error(f"{path}: cannot read: {err.strerror or err}") from None
    if len(data) > limit:
        raise error(f"{path}: larger than {limit} bytes, not {what}")
    return data
