"""An admission's audit entry is queued to the log's group commit and awaited on the event loop: no
thread is parked waiting for it, so every review in flight can be in the same batch, and a busy default
executor does not delay the answers."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from audit import AuditLog, Query, keygen
from tests.unit.webhook.builders import engine_for, pod, review
from webhook.admission import Admitter
from webhook.audit_recorder import AuditRecorder
from webhook.inventories import StaticInventory
from webhook.review import parse_review
from webhook.telemetry import build_telemetry

HANG_GUARD = 30.0  # seconds: only to fail a broken recorder instead of hanging the suite
BUDGET = 10.0  # seconds: each admission's budget; a generous one, since nothing here should wait at all


def test_reviews_are_recorded_while_every_default_executor_thread_is_busy(
    policy_dir: Path, tmp_path: Path
) -> None:
    keygen("webhook.example/audit", tmp_path / "keys")
    recorder = AuditRecorder.open(str(tmp_path / "audit.db"), str(tmp_path / "keys" / "audit.key"))
    engine = engine_for(policy_dir)
    release = threading.Event()

    async def admit_three() -> list[int | None]:
        loop = asyncio.get_running_loop()
        busy = ThreadPoolExecutor(max_workers=1)
        loop.set_default_executor(busy)
        hogged = loop.run_in_executor(None, release.wait, HANG_GUARD)  # the only default thread, taken
        admitter = Admitter(
            inventory=StaticInventory(),
            recorder=recorder,
            telemetry=build_telemetry({}),
            executor=ThreadPoolExecutor(max_workers=1),
            timeout=BUDGET,  # a recording that waited for the hogged thread would fail by then
        )
        answers = await asyncio.gather(
            *(admitter.admit(engine, parse_review(review(pod(), uid=f"u{i}")), inline=True) for i in range(3))
        )
        release.set()
        await hogged
        return [a.audit_index for a in answers]

    try:
        indexes = asyncio.run(asyncio.wait_for(admit_three(), 2 * HANG_GUARD))
    finally:
        release.set()
        recorder.close()
    assert sorted(i for i in indexes if i is not None) == [0, 1, 2]
    log = AuditLog.open(str(tmp_path / "audit.db"))
    try:
        assert sorted(e.entry["uid"] for e in log.query(Query())) == ["u0", "u1", "u2"]
    finally:
        log.close()
