"""The policy set being served, and its reload: load the new set fully, then swap it in atomically.

``LivePolicies`` holds one Engine at a time. ``reload`` builds a complete new Engine off to the side (all
documents validated, all CEL compiled); only then does a single reference assignment replace the old one,
so a request sees either the old set or the new one, never a mix. A failed reload keeps the last good
set and remembers why, for logs, metrics and ``/readyz``. Changes are found by polling a fingerprint of
the watched files (path, inode, size, mtime), which also catches Kubernetes ConfigMap volume updates
(a symlink swap); SIGHUP forces a reload.

Files cannot switch governance off by being emptied, truncated or caught mid-write: a set with no
policies is refused, a set that lost policies is held until the same content is read again (and always
reported), and files are read only once their fingerprint has settled.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from policyengine.engine import Engine
from policyengine.errors import LoadError
from policyengine.loader import discover
from policyengine.requirements import Unconfigured, describe

Fingerprint = tuple[tuple[str, int, int, int], ...]
MAX_PROBLEMS_SHOWN = 20
MAX_NAMES_SHOWN = 50  # removed policies named in /readyz and logs (the count is always given)


@dataclass(frozen=True)
class ReloadOutcome:
    """``result``: loaded (swapped in), failed (refused: broken or empty), held (a shrink waiting for the
    same content to be read again) or unstable (the files changed while being read; read again later)."""

    ok: bool
    digest: str = ""
    previous_digest: str = ""
    problems: tuple[str, ...] = ()
    seconds: float = 0.0
    result: str = "loaded"
    removed: tuple[str, ...] = ()  # the names of the policies the new set no longer has


@dataclass
class _LastError:
    at: str
    problems: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class _Shrink:
    """A set that lost policies: held until the same content is read again, then applied or refused."""

    at: str
    fingerprint: Fingerprint
    digest: str
    removed: tuple[str, ...]
    previous: str  # the digest of the set served when the shrink was seen
    result: str = "held"  # held | applied | refused

    def detail(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "result": self.result,
            "removed": list(self.removed[:MAX_NAMES_SHOWN]),
            "removedCount": len(self.removed),
            "fromDigest": self.previous,
            "toDigest": self.digest,
        }


def fingerprint(paths: Sequence[str]) -> Fingerprint:
    """What changes when any watched policy or config file changes (or appears, or goes).

    The files are found by the loader's own walk, so the poll watches exactly what a reload reads
    (and a link loop costs it one problem, not an endless walk). Each file is stat'ed through its
    links: a ConfigMap volume's ``..data`` swap gives every file a new inode. A path the walk cannot
    read is part of the fingerprint too, so its repair is seen."""
    files, problems = discover(paths)
    entries = [_stat(file) for file in files]
    entries.extend((problem.render(), -1, -1, -1) for problem in problems)
    return tuple(entries)


def _stat(path: str) -> tuple[str, int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (path, -1, -1, -1)
    return (path, st.st_ino, st.st_size, st.st_mtime_ns)


class LivePolicies:
    """One served Engine, replaced whole by ``reload``. ``load`` builds an Engine or raises LoadError.

    Files never switch governance off by themselves: a set with no policies is refused unless
    ``allow_empty``; a set that lost policies (a shrink) is held until a later poll reads the same content
    again (or the reload is ``confirmed``, as SIGHUP does), and every shrink is reported; files are read
    only once their fingerprint is the same on two consecutive polls, and a read during which they
    changed is discarded and done again later.
    """

    def __init__(
        self,
        load: Callable[[], Engine],
        watched: Sequence[str] = (),
        *,
        allow_empty: bool = False,
        allow_unconfigured: bool = False,
    ) -> None:
        self._load = load
        self.watched = tuple(watched)
        self.allow_empty = allow_empty
        self.allow_unconfigured = allow_unconfigured
        self._engine: Engine | None = None
        self._lock = threading.Lock()  # one reload at a time; readers never take it
        self._fingerprint: Fingerprint | None = None  # the files as last read (served, or refused)
        self._pending: Fingerprint | None = None  # a new fingerprint seen once, waiting to settle
        self._held: _Shrink | None = None
        self._last_shrink: _Shrink | None = None
        self._loaded_at = ""
        self._last_error: _LastError | None = None

    @property
    def engine(self) -> Engine | None:
        return self._engine

    @property
    def ready(self) -> bool:
        return self._engine is not None

    def serve(self, engine: Engine) -> None:
        """Start serving an Engine built elsewhere (the CLI's fail-fast load at startup)."""
        with self._lock:
            self._fingerprint = fingerprint(self.watched)
            self._swap(engine)

    def changed(self) -> bool:
        """Whether to read the files now: they differ from the last read and their fingerprint is the
        same as at the previous call (a write in progress is not a policy set), or a held shrink is
        there to be confirmed."""
        seen = fingerprint(self.watched)
        with self._lock:
            if seen == self._fingerprint:
                # Back to what was read last (a writer restored the file): nothing waits any more.
                self._pending = self._held = None
                return False
            if self._held is not None and seen == self._held.fingerprint:
                return True
            settled = seen == self._pending
            self._pending = seen
            return settled

    def reload(self, confirmed: bool = False) -> ReloadOutcome:
        """Read the files and swap the new set in, unless it is broken, empty, read while changing, or a
        shrink not yet seen twice. ``confirmed`` (an operator's SIGHUP) applies a shrink at once."""
        with self._lock:
            served = self._engine
            previous = served.digest if served is not None else ""
            seen = fingerprint(self.watched)
            started = time.perf_counter()
            engine, problems = self._read()
            after = fingerprint(self.watched)
            if after != seen:
                # Written to while being read: whatever was read is not a policy set. The next poll
                # that sees ``after`` again reads it anew.
                self._pending = after
                return ReloadOutcome(
                    False, previous, previous, seconds=time.perf_counter() - started, result="unstable"
                )
            if engine is None:
                return self._failed(seen, problems, previous, started)
            removed = _removed(served, engine)
            if not engine.policy_set.policies and not self.allow_empty:
                if removed:
                    self._last_shrink = _Shrink(_now(), seen, engine.digest, removed, previous, "refused")
                problem = empty_set_problem(self.watched)
                return self._failed(seen, (problem,), previous, started, removed)
            if engine.policy_set.unconfigured and not self.allow_unconfigured:
                problem = unconfigured_problem(engine.policy_set.unconfigured)
                return self._failed(seen, (problem,), previous, started, removed)
            if removed and not confirmed and not self._confirms(seen, engine):
                self._held = _Shrink(_now(), seen, engine.digest, removed, previous)
                self._pending = None
                return ReloadOutcome(
                    False,
                    previous,
                    previous,
                    seconds=time.perf_counter() - started,
                    result="held",
                    removed=removed,
                )
            self._fingerprint = seen
            self._swap(engine)
            if removed:
                self._last_shrink = _Shrink(_now(), seen, engine.digest, removed, previous, "applied")
            return ReloadOutcome(
                True, engine.digest, previous, seconds=time.perf_counter() - started, removed=removed
            )

    def _read(self) -> tuple[Engine | None, tuple[str, ...]]:
        try:
            return self._load(), ()
        except LoadError as err:
            return None, tuple(p.render() for p in err.problems[:MAX_PROBLEMS_SHOWN])
        except Exception as err:  # a broken loader must not take the server down either
            return None, (f"{type(err).__name__}: {err}",)

    def _confirms(self, seen: Fingerprint, engine: Engine) -> bool:
        """The held shrink was read from these same files, with the same content, a poll ago."""
        held = self._held
        return held is not None and held.fingerprint == seen and held.digest == engine.digest

    def _failed(
        self,
        seen: Fingerprint,
        problems: tuple[str, ...],
        previous: str,
        started: float,
        removed: tuple[str, ...] = (),
    ) -> ReloadOutcome:
        # Remember the failing files' fingerprint: the same broken files are not reloaded in a loop.
        self._fingerprint = seen
        self._pending = self._held = None
        self._last_error = _LastError(at=_now(), problems=problems)
        return ReloadOutcome(
            False,
            previous,
            previous,
            problems,
            time.perf_counter() - started,
            result="failed",
            removed=removed,
        )

    def _swap(self, engine: Engine) -> None:
        self._engine = engine  # a single reference assignment: atomic for every reader
        self._loaded_at = _now()
        self._last_error = None
        self._pending = self._held = None

    def status(self) -> dict[str, Any]:
        engine = self._engine
        out: dict[str, Any] = {"ready": engine is not None}
        if engine is None:
            out["reason"] = (
                "no policy set loaded yet" if self._last_error is None else "the policy set failed to load"
            )
        else:
            out["digest"] = engine.digest
            out["policies"] = len(engine.policy_set.policies)
            # Policies served without their organisation facts (--allow-unconfigured): they judge nothing.
            out["unconfigured"] = [u.as_dict() for u in engine.policy_set.unconfigured]
            out["loadedAt"] = self._loaded_at
        if self._last_error is not None:
            out["lastReloadError"] = {"at": self._last_error.at, "problems": list(self._last_error.problems)}
        held, shrink = self._held, self._last_shrink
        if held is not None:
            out["pendingShrink"] = held.detail()
        if shrink is not None:
            out["lastShrink"] = shrink.detail()
        return out


def load_settled(
    load: Callable[[], Engine], watched: Sequence[str], *, attempts: int = 5, pause: float = 0.5
) -> Engine | None:
    """Load once the watched files hold still: a load during which their fingerprint changed (a write in
    progress) is done again after ``pause``. None when they were still changing after ``attempts``."""
    for attempt in range(attempts):
        if attempt:
            time.sleep(pause)
        before = fingerprint(watched)
        engine = load()
        if fingerprint(watched) == before:
            return engine
    return None


def empty_set_problem(paths: Sequence[str]) -> str:
    """Why a set with no policies is refused (at start and on reload)."""
    where = ", ".join(paths) if paths else "no --policies path"
    return (
        f"the policy set has no policies (read from {where}): an empty set admits everything; "
        "pass --allow-empty-policies to serve one"
    )


def unconfigured_problem(missing: Sequence[Unconfigured]) -> str:
    return (
        f"{len(missing)} policies lack the organisation facts they need in GovernanceConfig: "
        f"{describe(missing)}; give them with --config (policyengine init writes a starter), or pass "
        "--allow-unconfigured to serve with these policies not evaluated"
    )


def _removed(served: Engine | None, engine: Engine) -> tuple[str, ...]:
    """The names of the policies the served set has and the new one does not."""
    if served is None:
        return ()
    before = {p.name for p in served.policy_set.policies}
    return tuple(sorted(before - {p.name for p in engine.policy_set.policies}))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
