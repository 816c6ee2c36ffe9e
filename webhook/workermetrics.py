"""One ``/metrics`` view across the processes of ``serve --workers N``.

Each worker writes its metric snapshot (JSON) to a private directory the parent made before starting
them, every ``SNAPSHOT_INTERVAL`` seconds, at shutdown and before it answers a scrape; the worker that
answers merges every snapshot. Counters and histograms are summed over all snapshots, those of dead
workers included (as prometheus_client's multiprocess mode keeps them), so a worker killed and restarted
does not take counters backwards; a dead worker's snapshot is folded into ``retired.json`` so that the
files read stay few. Gauges come from live workers only and merge by what they mean (``GAUGE_MERGE``).
What is read is bounded (``MAX_SNAPSHOTS`` files of at most ``MAX_SNAPSHOT_BYTES``); a snapshot that
does not parse is skipped and logged, never fails the scrape.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webhook.logs import get_logger
from webhook.prometheus import Family, Point, render_families

SNAPSHOT_INTERVAL = 1.0  # seconds between a worker's snapshots
MAX_SNAPSHOTS = 64  # snapshot files read per scrape (live workers plus dead ones not yet folded)
MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024
STALE_AFTER = 10 * SNAPSHOT_INTERVAL  # seconds: an older snapshot's gauges no longer count
RETIRED = "retired.json"
_LOCK = ".lock"
_SNAPSHOT = re.compile(r"^worker-(\d{1,10})-[0-9a-f]{16}\.json$")
_KINDS = ("counter", "gauge", "histogram")

# How each gauge merges across live workers (default: max, for what every worker holds a copy of: the
# policy set served, its size, the inventory's object counts). Additive ones are summed; health and
# readiness take the minimum, so that one worker out of service shows.
GAUGE_MERGE: dict[str, str] = {
    "policyengine_requests_in_flight": "sum",
    "policyengine_audit_queue_depth": "sum",
    "policyengine_audit_failures": "sum",
    "policyengine_audit_healthy": "min",
    "policyengine_inventory_synced": "min",
    # each worker reloads the certificate itself: the soonest expiry is the one that matters, and the
    # refused changes of every worker count
    "policyengine_tls_certificate_expiry_seconds": "min",
    "policyengine_tls_certificate_reload_failures": "sum",
}


@dataclass
class Snapshot:
    pid: int
    families: list[Family]
    live: bool  # its gauges count: its worker runs and wrote it within STALE_AFTER
    dead: bool = False  # its worker is gone: the snapshot can be folded


class SharedMetrics:
    """This worker's side of the shared directory: writes its own snapshot, merges everyone's."""

    def __init__(self, directory: Path, collect: Callable[[], list[Family]], pid: int | None = None) -> None:
        self.directory = directory
        self.collect = collect
        self.pid = os.getpid() if pid is None else pid
        # A token in the name: a restarted worker that is given a dead one's pid must not overwrite the
        # dead one's counters before they are folded.
        self.path = directory / f"worker-{self.pid}-{secrets.token_hex(8)}.json"
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported: set[tuple[str, float]] = set()
        self._folded: set[str] = set()  # the names retired.json lists, as last read

    def write(self) -> list[Family]:
        """Collect this worker's metrics and replace its snapshot with them; returns them."""
        with self._write_lock:
            own = self.collect()
            _atomic_write(self.path, json.dumps({"pid": self.pid, "families": [_dump(f) for f in own]}))
            return own

    def render(self) -> str:
        """The exposition of every worker's metrics. This worker's own snapshot is written first, so no
        scrape ever shows more than the files hold (a worker killed after answering cannot take a later
        scrape's counters below what this one showed)."""
        own = self.write()
        with self._locked(fcntl.LOCK_SH):
            others = [s for s, path in self._read() if path != self.path]
        return render_families(merge([Snapshot(self.pid, own, True), *others]))

    def fold(self) -> None:
        """Fold the snapshots of dead workers into ``retired.json`` (counters and histograms only).
        Readers hold the lock shared, so none sees a snapshot both folded and still on its own."""
        if not self._any_dead():
            return
        with self._locked(fcntl.LOCK_EX):
            found = self._read()
            retired = [s for s, path in found if path.name == RETIRED]
            for name in self._folded:  # a fold interrupted after writing retired.json: already counted
                (self.directory / name).unlink(missing_ok=True)
            dead = [(s, path) for s, path in found if s.dead and path.name != RETIRED]
            if not dead:
                return
            folded = merge([*retired, *(s for s, _ in dead)], counters_only=True)
            # retired.json names what it folded, and readers skip those names while the files remain.
            body = {"pid": 0, "families": [_dump(f) for f in folded], "folded": [p.name for _, p in dead]}
            _atomic_write(self.directory / RETIRED, json.dumps(body))
            for _, path in dead:
                path.unlink(missing_ok=True)

    def _any_dead(self) -> bool:
        """Whether a snapshot's name names a process that is gone (a cheap look before a fold)."""
        for name in os.listdir(self.directory):
            m = _SNAPSHOT.match(name)
            if m and name != self.path.name and (int(m.group(1)) == self.pid or not _alive(int(m.group(1)))):
                return True
        return False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="metrics-snapshot", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._quietly(self.write)

    def around(
        self, inner: Callable[[Any], AbstractAsyncContextManager[Any]]
    ) -> Callable[[Any], AbstractAsyncContextManager[Any]]:
        """An app lifespan that runs ``inner`` and writes snapshots while the app serves."""

        @asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[Any]:
            async with inner(app) as state:
                self.start()
                try:
                    yield state
                finally:
                    self.stop()

        return lifespan

    def _run(self) -> None:
        while not self._stop.wait(SNAPSHOT_INTERVAL):
            self._quietly(self.write)
            self._quietly(self.fold)

    def _quietly(self, step: Callable[[], object]) -> None:
        try:
            step()
        except Exception:  # a full disk must not stop the worker; the next round tries again
            get_logger().exception("metrics snapshot failed", extra={"directory": str(self.directory)})

    @contextlib.contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        fd = os.open(self.directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)

    def _read(self) -> list[tuple[Snapshot, Path]]:
        """The snapshots in the directory (bounded), the retired one first."""
        names = sorted(n for n in os.listdir(self.directory) if _SNAPSHOT.match(n))
        if len(names) > MAX_SNAPSHOTS:
            self._report(f"{len(names)} snapshots", 0.0, f"only the first {MAX_SNAPSHOTS} are read")
            names = names[:MAX_SNAPSHOTS]
        found: list[tuple[Snapshot, Path]] = []
        retired = self._load(self.directory / RETIRED)
        self._folded = set()
        if retired is not None:
            retired[0].live, retired[0].dead = False, False
            found.append((retired[0], self.directory / RETIRED))
            self._folded = retired[1]
        for name in names:
            if name not in self._folded:
                loaded = self._load(self.directory / name)
                if loaded is not None:
                    found.append((loaded[0], self.directory / name))
        return found

    def _load(self, path: Path) -> tuple[Snapshot, set[str]] | None:
        try:
            with path.open("rb") as f:
                stat = os.fstat(f.fileno())
                mtime = stat.st_mtime
                text = f.read(MAX_SNAPSHOT_BYTES + 1)
        except FileNotFoundError:  # folded or replaced under us
            return None
        except OSError as err:
            self._report(path.name, 0.0, err.strerror or str(err))
            return None
        try:
            if len(text) > MAX_SNAPSHOT_BYTES:
                raise ValueError(f"larger than {MAX_SNAPSHOT_BYTES} bytes")
            raw = json.loads(text)
            snapshot = _snapshot(raw)
            folded = raw.get("folded", [])
            if not isinstance(folded, list) or not all(isinstance(n, str) for n in folded):
                raise ValueError("folded is not a list of names")
        except (ValueError, TypeError, KeyError, RecursionError) as err:
            self._report(path.name, mtime, str(err))
            return None
        # One process writes one path: a snapshot under another name with this worker's pid is a dead
        # worker's whose pid was given again.
        if path != self.path:  # never its own: this worker is running
            snapshot.dead = not _alive(snapshot.pid) or snapshot.pid == self.pid
        snapshot.live = not snapshot.dead and time.time() - mtime <= STALE_AFTER
        return snapshot, set(folded)

    def _report(self, what: str, mtime: float, problem: str) -> None:
        """Logged once per file version: a bad snapshot must not flood the log at every scrape."""
        if (what, mtime) in self._reported:
            return
        if len(self._reported) > 1000:
            self._reported.clear()
        self._reported.add((what, mtime))
        get_logger().warning(
            "metrics snapshot skipped",
            extra={"directory": str(self.directory), "snapshot": what, "problem": problem},
        )


def merge(snapshots: list[Snapshot], *, counters_only: bool = False) -> list[Family]:
    """Families summed across ``snapshots`` (counters, histograms), gauges merged by ``GAUGE_MERGE``
    over the live ones. Series of a kind or bucket layout that disagrees with the first seen are dropped."""
    merged: dict[str, Family] = {}
    series: dict[str, dict[tuple[tuple[str, str], ...], Point]] = {}
    for snapshot in snapshots:
        for family in snapshot.families:
            if family.kind == "gauge" and (counters_only or not snapshot.live):
                continue
            into = merged.get(family.name)
            if into is None:
                into = merged[family.name] = Family(family.name, family.description, family.kind)
                series[family.name] = {}
            if into.kind != family.kind:
                continue
            rule = GAUGE_MERGE.get(family.name, "max")
            for point in family.points:
                key = tuple(sorted(point.labels.items()))
                known = series[family.name].get(key)
                if known is None:
                    copy = Point(
                        dict(point.labels), point.value, point.bounds, point.buckets, point.sum, point.count
                    )
                    series[family.name][key] = copy
                    into.points.append(copy)
                else:
                    _combine(known, point, family.kind, rule)
    return list(merged.values())


def _combine(into: Point, point: Point, kind: str, rule: str) -> None:
    if kind == "histogram":
        if into.bounds != point.bounds or len(into.buckets) != len(point.buckets):
            return
        into.buckets = tuple(a + b for a, b in zip(into.buckets, point.buckets, strict=True))
        into.sum += point.sum
        into.count += point.count
    elif kind == "counter" or rule == "sum":
        into.value += point.value
    else:
        into.value = min(into.value, point.value) if rule == "min" else max(into.value, point.value)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process holds the pid: it exists
        return True
    return True


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _dump(family: Family) -> dict[str, Any]:
    points: list[dict[str, Any]] = []
    for p in family.points:
        if family.kind == "histogram":
            points.append(
                {
                    "labels": p.labels,
                    "bounds": list(p.bounds),
                    "buckets": list(p.buckets),
                    "sum": p.sum,
                    "count": p.count,
                }
            )
        else:
            points.append({"labels": p.labels, "value": p.value})
    return {"name": family.name, "description": family.description, "kind": family.kind, "points": points}


def _snapshot(raw: Any) -> Snapshot:
    """A snapshot read back, every field checked (a bad one raises ValueError naming it)."""
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    pid = raw.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid < 0:
        raise ValueError("pid is not a process id")
    families = raw.get("families")
    if not isinstance(families, list):
        raise ValueError("families is not a list")
    return Snapshot(pid, [_family(f, i) for i, f in enumerate(families)], live=False)


def _family(raw: Any, index: int) -> Family:
    where = f"families[{index}]"
    if not isinstance(raw, dict):
        raise ValueError(f"{where} is not an object")
    name, description, kind, points = (raw.get(k) for k in ("name", "description", "kind", "points"))
    if not isinstance(name, str) or not isinstance(description, str) or kind not in _KINDS:
        raise ValueError(f"{where}: name, description or kind is missing or wrong")
    if not isinstance(points, list):
        raise ValueError(f"{where}.points is not a list")
    return Family(
        name, description, kind, [_point(p, kind, f"{where}.points[{i}]") for i, p in enumerate(points)]
    )


def _point(raw: Any, kind: str, where: str) -> Point:
    if not isinstance(raw, dict):
        raise ValueError(f"{where} is not an object")
    labels = raw.get("labels")
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise ValueError(f"{where}.labels is not a map of strings")
    if kind != "histogram":
        return Point(labels, _number(raw.get("value"), f"{where}.value"))
    bounds = raw.get("bounds")
    buckets = raw.get("buckets")
    if not isinstance(bounds, list) or not isinstance(buckets, list) or len(buckets) != len(bounds) + 1:
        raise ValueError(f"{where}: bounds and buckets do not match")
    counts = tuple(_count(b, f"{where}.buckets") for b in buckets)
    return Point(
        labels,
        bounds=tuple(float(_number(b, f"{where}.bounds")) for b in bounds),
        buckets=counts,
        sum=_number(raw.get("sum"), f"{where}.sum"),
        count=_count(raw.get("count"), f"{where}.count"),
    )


def _number(value: Any, where: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where} is not a number")
    return value


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where} is not a count")
    return value
