"""A PostgreSQL cluster of a test's own, to stop and start under a running writer (the shared server of
POLICYENGINE_TEST_PG must never be stopped). It is created by scripts/start-postgres.sh, so it needs the
same PostgreSQL binaries; like every PostgreSQL test it skips when POLICYENGINE_TEST_PG is unset, and
fails instead when POLICYENGINE_REQUIRE_PG=1 (CI).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STARTED = re.compile(
    r"cluster in (?P<data>\S+) \(user (?P<user>[^,]+), port (?P<port>\d+), log (?P<log>\S+)\)"
)


@dataclass
class Cluster:
    dsn: str
    data: Path
    user: str
    port: int
    log: Path

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    def start(self) -> None:
        self._ctl("-l", str(self.log), "start")

    def _ctl(self, *args: str) -> None:
        command = [str(_bin() / "pg_ctl"), "-D", str(self.data), "-w", *args]
        if os.geteuid() == 0:  # the cluster belongs to the unprivileged user the script chose
            command = ["su", "-s", "/bin/sh", self.user, "-c", " ".join(f"'{a}'" for a in command)]
        subprocess.run(command, check=True, capture_output=True, timeout=60)


def own_cluster() -> Iterator[Cluster]:
    """Start a cluster, yield it, remove it (whatever state the test left it in)."""
    if not os.environ.get("POLICYENGINE_TEST_PG"):
        reason = "POLICYENGINE_TEST_PG is not set (PostgreSQL tests need scripts/start-postgres.sh)"
        if os.environ.get("POLICYENGINE_REQUIRE_PG") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "start-postgres.sh")], capture_output=True, text=True, timeout=120
    )
    found = STARTED.search(done.stderr)
    assert done.returncode == 0 and found, done.stderr
    cluster = Cluster(
        done.stdout.strip(), Path(found["data"]), found["user"], int(found["port"]), Path(found["log"])
    )
    import psycopg

    # A later plain `pg_ctl start` must listen where the script's command line said.
    with psycopg.connect(cluster.dsn, autocommit=True) as con:
        con.execute(f"ALTER SYSTEM SET port = {cluster.port}")
        con.execute("ALTER SYSTEM SET listen_addresses = '127.0.0.1'")
        con.execute(f"ALTER SYSTEM SET unix_socket_directories = '{cluster.data.parent / 'run'}'")
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            cluster.stop()
        shutil.rmtree(cluster.data.parent, ignore_errors=True)


def _bin() -> Path:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name))
    if dirs:
        return Path(dirs[-1])
    found = shutil.which("pg_ctl")
    assert found, "pg_ctl not found"
    return Path(found).parent
