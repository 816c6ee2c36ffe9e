"""The policy set being served, and its reload: load the new set fully, then swap it in atomically.

``LivePolicies`` holds one Engine at a time. ``reload`` builds a complete new Engine off to the side (all
documents validated, all CEL compiled); only then does a single reference assignment replace the old one,
so a request sees either the old set or the new one, never a mix. A failed reload keeps the last good
set and remembers why, for logs, metrics and ``/readyz``. Changes are found by polling a fingerprint of
the watched files (path, inode, size, mtime), which also catches Kubernetes ConfigMap volume updates
(a symlink swap); SIGHUP forces a reload.
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

Fingerprint = tuple[tuple[str, int, int, int], ...]
MAX_PROBLEMS_SHOWN = 20


@dataclass(frozen=True)
class ReloadOutcome:
    ok: bool
    digest: str = ""
    previous_digest: str = ""
    problems: tuple[str, ...] = ()
    seconds: float = 0.0


@dataclass
class _LastError:
    at: str
    problems: tuple[str, ...] = field(default=())


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
    """One served Engine, replaced whole by ``reload``. ``load`` builds an Engine or raises LoadError."""

    def __init__(self, load: Callable[[], Engine], watched: Sequence[str] = ()) -> None:
        self._load = load
        self.watched = tuple(watched)
        self._engine: Engine | None = None
        self._lock = threading.Lock()  # one reload at a time; readers never take it
        self._fingerprint: Fingerprint | None = None
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
        return fingerprint(self.watched) != self._fingerprint

    def reload(self) -> ReloadOutcome:
        with self._lock:
            previous = self._engine.digest if self._engine is not None else ""
            seen = fingerprint(self.watched)
            started = time.perf_counter()
            try:
                engine = self._load()
            except LoadError as err:
                problems = tuple(p.render() for p in err.problems[:MAX_PROBLEMS_SHOWN])
                return self._failed(seen, problems, previous, started)
            except Exception as err:  # a broken loader must not take the server down either
                return self._failed(seen, (f"{type(err).__name__}: {err}",), previous, started)
            self._fingerprint = seen
            self._swap(engine)
            return ReloadOutcome(True, engine.digest, previous, seconds=time.perf_counter() - started)

    def _failed(
        self, seen: Fingerprint, problems: tuple[str, ...], previous: str, started: float
    ) -> ReloadOutcome:
        # Remember the failing files' fingerprint: the same broken files are not reloaded in a loop.
        self._fingerprint = seen
        self._last_error = _LastError(at=_now(), problems=problems)
        return ReloadOutcome(False, previous, previous, problems, time.perf_counter() - started)

    def _swap(self, engine: Engine) -> None:
        self._engine = engine  # a single reference assignment: atomic for every reader
        self._loaded_at = _now()
        self._last_error = None

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
            out["loadedAt"] = self._loaded_at
        if self._last_error is not None:
            out["lastReloadError"] = {"at": self._last_error.at, "problems": list(self._last_error.problems)}
        return out


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
