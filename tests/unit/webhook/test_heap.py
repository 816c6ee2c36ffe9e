"""A serving process keeps its policy set out of the garbage collector's full passes (webhook.heap),
after the first load and after every reload, without keeping what a replaced set left in cycles."""

from __future__ import annotations

import gc
import os
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.unit.webhook.builders import POLICIES, write_policies
from webhook.app import create_app
from webhook.services import WebhookServices


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test session keeps the collector as it was


def _wait(predicate: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _collected(obj: object) -> bool:
    """Whether ``obj`` is in one of the collector's generations (a frozen object is in none)."""
    return any(o is obj for o in gc.get_objects())


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_the_served_set_is_set_apart_once_loaded(services: WebhookServices) -> None:
    services.freeze_heap = True
    with TestClient(create_app(services)):
        engine = services.policies.engine
        assert engine is not None
        assert gc.get_freeze_count() > 0
        assert not _collected(engine)
        assert not _collected(engine.policy_set)


def test_a_reloaded_set_is_set_apart_and_frozen_cycles_are_reclaimed(
    services: WebhookServices, policy_dir: Path
) -> None:
    services.freeze_heap = True
    with TestClient(create_app(services)) as client:
        first = services.policies.engine
        cycle = _Cycle()
        gc.freeze()  # as if it had been alive when the set was set apart
        dropped = weakref.ref(cycle)
        del cycle  # garbage in a reference cycle, out of the collector's reach while frozen
        assert dropped() is not None
        path = write_policies(policy_dir, POLICIES.replace("endsWith(':latest')", "endsWith(':never')"))
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
        _wait(lambda: services.policies.engine is not first)
        _wait(lambda: dropped() is None)  # the reload collected once before setting apart again
        _wait(lambda: not _collected(services.policies.engine))
        assert client.get("/readyz").status_code == 200


def test_without_the_switch_the_collector_is_left_alone(services: WebhookServices) -> None:
    before = gc.get_freeze_count()
    with TestClient(create_app(services)):
        assert services.policies.engine is not None
        assert gc.get_freeze_count() == before
        assert _collected(services.policies.engine)
