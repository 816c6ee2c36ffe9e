"""``keys.json`` of an export: every checkpoint key of the log with the sizes it signed, the co-signed
hand-overs between them and the revocations, so an auditor verifies a log whose key changed offline.

The key list is a reading aid (and lets openssl check each signature with the key's PEM); the verifier
rebuilds the chain from the hand-overs alone and refuses a list that disagrees with it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audit.errors import ExportError
from audit.keychain import (
    MAX_HANDOVERS,
    KeyChain,
    KeyRange,
    load_chain,
    parse_revocation,
    read_handovers,
)
from audit.keys import public_pem
from audit.note import Verifier
from audit.stores import Store

KEYS = "keys.json"
MAX_KEYS_BYTES = 4 << 20  # a thousand hand-overs are well under 1 MiB


def _listing(ranges: Sequence[KeyRange], size: int) -> list[dict[str, Any]]:
    return [
        {
            "vkey": r.verifier.vkey(),
            "pem": public_pem(r.verifier).decode(),
            "first_size": r.first,
            "last_size": size if r.last is None else r.last,
            "revoked_from": r.revoked_from,
        }
        for r in ranges
    ]


def write_keys(path: Path, store: Store, genesis: Verifier, size: int) -> None:
    """The chain as the store holds it, up to the exported ``size``."""
    chain = load_chain(store, genesis)
    valid = zip(read_handovers(store), chain.handovers, strict=False)  # a broken tail is not exported
    notes = [note for note, checkpoint in valid if checkpoint.size <= size]
    ranges = chain.ranges[: len(notes) + 1]
    last = ranges[-1]
    ranges[-1] = KeyRange(last.verifier, last.first, None, last.revoked_from)  # signs up to the export's end
    revocations = {r.verifier.vkey(): r.revoked_from for r in ranges if r.revoked_from is not None}
    body = {"keys": _listing(ranges, size), "handovers": notes, "revocations": revocations}
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


def read_keys(path: Path, genesis: Verifier, pinned: Sequence[Verifier] = ()) -> KeyChain:
    """The chain an export records; an export without ``keys.json`` has the one key it was written with."""
    if not path.exists():
        return KeyChain(genesis, (), {}, pinned)
    try:
        if path.stat().st_size > MAX_KEYS_BYTES:
            raise ExportError(f"{path} is larger than {MAX_KEYS_BYTES} bytes")
        body = json.loads(path.read_text(encoding="utf-8"))
        notes = [str(n) for n in body["handovers"]]
        revocations = {str(k): parse_revocation(str(v)) for k, v in dict(body["revocations"]).items()}
        listed = [(str(k["vkey"]), int(k["first_size"])) for k in body["keys"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ExportError(f"{path}: {exc}") from exc
    if len(notes) > MAX_HANDOVERS:
        raise ExportError(f"{path}: more than {MAX_HANDOVERS} hand-overs")
    chain = KeyChain(genesis, notes, revocations, pinned)
    derived = [(r.verifier.vkey(), r.first) for r in chain.ranges]
    # Against another first key than the listing's (a pinned key, a swapped audit.vkey) the checkpoint
    # signatures are what fails, with the index they fail at.
    if chain.problem is None and listed[:1] == derived[:1] and listed != derived:
        raise ExportError(f"{path}: the key list differs from the chain its hand-overs make")
    return chain
