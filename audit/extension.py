"""Whether a new tree head extends the last checkpoint, decided from the stored state a writer has at hand.

After each batch the writer signs the new head only if it extends the latest checkpoint. When few
entries separate them (one batch, or a few from other replicas), recomputing the head from the
checkpointed head's compact range and the new leaf hashes is one read of each, where building and
checking a consistency proof takes several; anything it cannot show is left to the proof.
"""

from __future__ import annotations

from audit.errors import ProofError
from audit.stores import Store, TreeHead

DIRECT_LIMIT = 4096  # leaves read at most; a longer gap (a writer reopening) goes through the proof


def shown_to_extend(store: Store, size: int, root: bytes, head: TreeHead) -> bool:
    """True when ``head`` is recomputed from the stored head of ``size`` (whose root must be ``root``)
    and the stored leaves after it; False when that does not show it (not that it does not extend)."""
    if not 0 < size <= head.size or head.size - size > DIRECT_LIMIT:
        return False
    old = store.head_at(size)
    if old is None or old.size != size or old.root != root:
        return False
    try:
        compact = old.compact()
    except ProofError:
        return False
    if compact.root() != root:
        return False
    compact.extend(store.leaf_hashes(size, head.size))
    return compact.size == head.size and compact.root() == head.root
