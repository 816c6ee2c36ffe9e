"""The auditors' console: public shells holding nothing, data behind the tokens, filters, keyset pages
bounded in what they read, downloads, summaries, CSP, rate limits and hostile parameters."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from audit import AuditLog
from audit.api import ConsoleOptions, create_app
from audit.console import ExceptionInfo, LogStatus, queries
from audit.console.app import HERE
from audit.console.queries import Filters
from audit.note import Ed25519Signer, Verifier
from audit.stores import Query
from tests.consoledata import EXCEPTION, T0, decision, fill

TOKEN = "auditor-token-1"
COUNT = 1200
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def logged(
    tmp_path_factory: pytest.TempPathFactory, signer: Ed25519Signer
) -> Iterator[tuple[AuditLog, Path]]:
    where = tmp_path_factory.mktemp("console")
    log = AuditLog.open(where / "audit.db", signer=signer)
    fill(log, COUNT)
    (where / "tokens").write_text(f"# auditors\n{TOKEN}\n")
    yield log, where
    log.close()


@pytest.fixture
def client(logged: tuple[AuditLog, Path]) -> Iterator[TestClient]:
    log, where = logged
    waiver = ExceptionInfo(EXCEPTION, ("gpu-team-quota",), approved_by="cfo@example.com", expires=T0)
    app = create_app(log, where / "tokens", console=ConsoleOptions(exceptions=(waiver,)))
    with TestClient(app) as test_client:
        yield test_client


def _indexes(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr data-index="(\d+)">', html)]


def _expected(check: Any, below: int = COUNT) -> list[int]:
    return [i for i in range(below - 1, -1, -1) if check(decision(i))]


def test_page_shells_are_public_and_hold_nothing_from_the_log(client: TestClient) -> None:
    for path in (
        "/console/login",
        "/console/decisions",
        "/console/decisions/7",
        "/console/log",
        "/console/key",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "req-0" not in response.text and "team-a/" not in response.text
    assert client.get("/console/data/decisions").status_code == 401
    assert client.get("/console/data/decisions", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/console/data/decisions/1").status_code == 401
    assert client.get("/console/data/decisions.csv").status_code == 401
    assert client.get("/v1/entries").status_code == 401  # the API is not opened by the console's paths
    assert client.get("/console/../v1/entries").status_code in (401, 404)


def test_every_page_is_served_under_a_csp_without_inline_scripts(client: TestClient) -> None:
    for path in ("/console/login", "/console/decisions", "/console/decisions/3", "/console/policies"):
        response = client.get(path)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        for script in re.findall(r"<script[^>]*>(.*?)</script>", response.text, flags=re.S):
            assert script.strip() == "", f"inline script in {path}"
        assert not re.search(r"\son[a-z]+=", response.text), f"inline event handler in {path}"
    for template in (HERE / "templates").glob("*.html"):
        assert "<style" not in template.read_text() and "style=" not in template.read_text(), template


def test_the_decision_and_log_pages_render_the_verification_mount_points(client: TestClient) -> None:
    page = client.get("/console/decisions/42").text
    assert '<section id="verification" data-index="42" data-api="">' in page
    assert '<p id="verification-status" role="status" aria-live="polite" data-state="idle">' in page
    assert '<script type="module" src="/console/static/verifypage.js"></script>' in page
    log = client.get("/console/log").text
    assert '<section id="consistency" data-api="">' in log
    assert '<p id="consistency-status" role="status" aria-live="polite" data-state="idle"></p>' in log
    assert '<script type="module" src="/console/static/verifypage.js"></script>' in log


def test_filters_return_exactly_the_matching_decisions_newest_first(client: TestClient) -> None:
    html = client.get("/console/data/decisions?verdict=denied&namespace=team-b&size=200", headers=AUTH).text
    want = _expected(lambda e: e["verdict"] == "denied" and e["resource"]["namespace"] == "team-b")
    assert _indexes(html) == want[:200] and want
    html = client.get(f"/console/data/decisions?exception={EXCEPTION}&size=200", headers=AUTH).text
    assert _indexes(html) == _expected(lambda e: EXCEPTION in e["exceptions"])[:200]
    html = client.get("/console/data/decisions?exception=*&kind=Job&size=200", headers=AUTH).text
    assert _indexes(html) == _expected(lambda e: e["exceptions"] and e["resource"]["kind"] == "Job")[:200]
    since, until = "2026-09-02T00:00:00", "2026-09-02T06:00:00Z"
    html = client.get(f"/console/data/decisions?since={since}&until={until}&size=200", headers=AUTH).text
    want = _expected(lambda e: "2026-09-02T00:00" <= e["time"] < "2026-09-02T06:00")
    assert _indexes(html) == want and want
    html = client.get(
        "/console/data/decisions?policy=model-approved-source&user=alice@team-b", headers=AUTH
    ).text
    assert _indexes(html) == _expected(lambda e: e["user"]["username"] == "alice@team-b")[:50]


def test_keyset_pages_walk_the_whole_filter_without_gaps_or_repeats(client: TestClient) -> None:
    want = _expected(lambda e: e["verdict"] == "warned")
    seen: list[int] = []
    url: str | None = "/console/data/decisions?verdict=warned&size=100"
    while url is not None:
        html = client.get(url, headers=AUTH).text
        seen.extend(_indexes(html))
        older = re.search(r'<a href="/console/decisions\?([^"]*)" rel="next"', html)
        url = "/console/data/decisions?" + older.group(1).replace("&amp;", "&") if older else None
    assert seen == want
    newer = client.get("/console/data/decisions?verdict=warned&size=25&after=300", headers=AUTH).text
    assert _indexes(newer) == sorted((i for i in want if i > 300), reverse=False)[:25][::-1]


class CountingStore:
    """Wraps a store and records the index ranges its queries covered."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.ranges = inner, list[tuple[int, int]]()

    def find(self, query: Query) -> Any:
        assert query.before is not None, "a console read without an upper bound"
        self.ranges.append((query.after + 1, query.before))
        return self.inner.find(query)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_page_reads_a_bounded_number_of_entries_whatever_the_filter(
    logged: tuple[AuditLog, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    log, _ = logged
    monkeypatch.setattr(queries, "WINDOW", 64)
    monkeypatch.setattr(queries, "PAGE_BUDGET", 256)
    store = CountingStore(log.store)
    counted = AuditLog(store, origin=log.origin)  # type: ignore[arg-type]
    page = queries.page_before(counted, Filters(Query(namespace="nowhere")), None, 50)
    examined = sum(high - low for low, high in store.ranges)
    assert page.rows == [] and examined == 256 and page.low == COUNT - 256
    assert page.older == COUNT - 256  # the cursor to search further, not a walk of the whole log


def test_the_window_query_is_answered_by_the_primary_key(logged: tuple[AuditLog, Path]) -> None:
    from audit.stores.sql import where

    _, where_dir = logged
    tail, params = where(Query(verdict="denied", namespace="team-a", after=999, before=2000), "?", "instr")
    db = sqlite3.connect(where_dir / "audit.db")
    plan = " ".join(
        str(row[-1]) for row in db.execute("EXPLAIN QUERY PLAN SELECT idx FROM entries" + tail, params)
    )
    db.close()
    assert "USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in plan, plan


def test_downloads_hold_the_current_filter_and_defuse_spreadsheet_formulas(
    client: TestClient, logged: tuple[AuditLog, Path]
) -> None:
    response = client.get("/console/data/decisions.csv?verdict=denied&namespace=team-a", headers=AUTH)
    assert response.status_code == 200 and response.headers["x-policyengine-complete"] == "true"
    assert response.headers["content-disposition"] == 'attachment; filename="decisions.csv"'
    rows = list(csv.DictReader(io.StringIO(response.text)))
    want = _expected(lambda e: e["verdict"] == "denied" and e["resource"]["namespace"] == "team-a")
    assert [int(r["index"]) for r in rows] == want
    assert {r["denied_by"] for r in rows} == {"gpu-team-quota"}
    lines = client.get("/console/data/decisions.jsonl?verdict=warned", headers=AUTH).text.splitlines()
    assert [json.loads(line)["index"] for line in lines] == _expected(lambda e: e["verdict"] == "warned")
    from audit.console.downloads import to_csv
    from audit.log import LoggedEntry

    hostile = LoggedEntry(0, {"user": {"username": '=HYPERLINK("http://x")'}, "uid": "+1"}, b"")
    cells = next(iter(csv.DictReader(io.StringIO(to_csv([hostile]).decode()))))
    assert cells["user"].startswith("'=") and cells["uid"] == "'+1"


def test_the_decision_page_shows_results_exceptions_and_the_canonical_entry(client: TestClient) -> None:
    html = client.get("/console/data/decisions/11", headers=AUTH).text
    assert "gpu-team-quota" in html and "excepted" in html and EXCEPTION in html
    assert "cfo@example.com" in html and "(expired)" in html
    assert "req-000011" in html and "alice@ml-research" in html
    canonical = re.search(r'<pre id="canonical" tabindex="0">(.*?)</pre>', html, flags=re.S)
    assert canonical is not None
    assert json.loads(canonical.group(1).replace("&#34;", '"').replace("&quot;", '"')) == decision(11)
    missing = client.get(f"/console/data/decisions/{COUNT + 5}", headers=AUTH)
    assert missing.status_code == 404 and f"the log holds {COUNT} entries" in missing.text


def test_policies_and_exceptions_pages_summarise_the_range(client: TestClient) -> None:
    html = client.get("/console/data/policies?since=2026-09-01&until=2026-09-08", headers=AUTH).text
    assert '<svg class="chart"' in html and '<title id="chart-title">' in html
    in_range = [decision(i) for i in range(COUNT) if decision(i)["time"] < "2026-09-08"]
    denies = sum(1 for e in in_range if e["verdict"] == "denied")
    warns = sum(1 for e in in_range if e["verdict"] == "warned")
    assert f"gpu-team-quota: {denies} denied, 0 warned" in html
    assert f"model-approved-source: 0 denied, {warns} warned" in html
    html = client.get("/console/data/exceptions?since=2026-09-01&until=2026-10-01", headers=AUTH).text
    uses = sum(1 for i in range(COUNT) if decision(i)["exceptions"])
    assert (
        EXCEPTION in html and "expired" in html and f"<td>{uses}</td>" in html and "cfo@example.com" in html
    )


def test_the_log_page_names_the_checkpoint_its_signer_and_this_servers_verification(
    logged: tuple[AuditLog, Path], verifier: Verifier
) -> None:
    log, where = logged
    status = LogStatus()
    app = create_app(log, where / "tokens", console=ConsoleOptions(status=status))
    with TestClient(app) as client:
        html = client.get("/console/data/log", headers=AUTH).text
        assert f"{COUNT} entries" in html and log.origin in html and "has not verified" in html
        assert f"{verifier.name}+{verifier.key_id.hex()}" in html
        status.verify(log, verifier)
        html = client.get("/console/data/log", headers=AUTH).text
        assert "Intact" in html and f"{COUNT} entries and" in html


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("verdict=maybe", "verdict"),
        ("source=cron", "source"),
        ("since=yesterday", "since"),
        ("until=9999-12-31T23:59:59-23:59", "until"),
        ("before=-1", "before"),
        ("after=1e9", "after"),
        ("before=" + "9" * 40, "before"),
        ("size=100000", "size"),
        ("namespace=" + "n" * 300, "namespace"),
        ("user=a%0Ab", "user"),
    ],
)
def test_hostile_parameters_get_400_naming_the_field(client: TestClient, query: str, field: str) -> None:
    response = client.get(f"/console/data/decisions?{query}", headers=AUTH)
    assert response.status_code == 400 and f"{field}:" in response.text


def test_routes_are_read_only(client: TestClient) -> None:
    for path in ("/console/decisions", "/console/data/decisions", "/console/login", "/console/data/session"):
        assert client.post(path, headers=AUTH).status_code == 405
        assert client.delete(path, headers=AUTH).status_code == 405


def test_expensive_queries_are_rate_limited_per_token(logged: tuple[AuditLog, Path]) -> None:
    log, where = logged
    app = create_app(log, where / "tokens")
    app.state.console.limit.capacity = 25.0
    app.state.console.limit.rate = 0.001
    with TestClient(app) as client:
        codes = [client.get("/console/data/decisions.csv", headers=AUTH).status_code for _ in range(4)]
        assert codes[:2] == [200, 200] and codes[2:] == [429, 429]
        refused = client.get("/console/data/decisions.csv", headers=AUTH)
        assert int(refused.headers["retry-after"]) >= 1 and app.state.console.limit.refused == 3
        assert client.get("/console/data/decisions/1", headers=AUTH).status_code == 200  # cheap


@pytest.mark.parametrize("target", [":memory:", "sqlite"])
def test_a_query_bounded_above_returns_only_the_window(
    target: str, tmp_path: Path, signer: Ed25519Signer
) -> None:
    log = AuditLog.open(tmp_path / "w.db" if target == "sqlite" else target, signer=signer)
    try:
        fill(log, 300)
        found = [row.index for row in log.query(Query(after=99, before=230))]
        assert found == list(range(100, 230))
        denied = [row.index for row in log.query(Query(verdict="denied", after=99, before=230, limit=5))]
        assert denied == [100, 105, 110, 115, 120]
    finally:
        log.close()


def test_a_download_is_bounded_in_rows_and_says_when_it_holds_only_the_newest(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit.console import downloads

    monkeypatch.setattr(downloads, "MAX_ROWS", 10)
    response = client.get("/console/data/decisions.jsonl?verdict=denied", headers=AUTH)
    lines = response.text.splitlines()
    want = _expected(lambda e: e["verdict"] == "denied")
    assert [json.loads(line)["index"] for line in lines] == want[:10]
    assert response.headers["x-policyengine-complete"] == "false"
    assert response.headers["x-policyengine-examined-from"] == str(want[9])
    monkeypatch.setattr(downloads, "MAX_ROWS", 10_000)
    monkeypatch.setattr(downloads, "SCAN_BUDGET", 100)
    monkeypatch.setattr(queries, "WINDOW", 50)
    response = client.get("/console/data/decisions.csv", headers=AUTH)
    assert len(response.text.splitlines()) == 1 + 100  # the header and the newest 100 entries
    assert response.headers["x-policyengine-complete"] == "false"
    assert response.headers["x-policyengine-examined-from"] == str(COUNT - 100)


def test_a_time_range_deep_in_the_log_is_found_by_index_not_by_walking_to_it(
    logged: tuple[AuditLog, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    log, _ = logged
    monkeypatch.setattr(queries, "PAGE_BUDGET", 256)  # far less than the entries above the range
    store = CountingStore(log.store)
    counted = AuditLog(store, origin=log.origin)  # type: ignore[arg-type]
    since, until = decision(100)["time"], decision(130)["time"]
    page = queries.page_before(counted, Filters(Query(since=since, until=until)), None, 50)
    assert [row.index for row in page.rows] == list(range(129, 99, -1))
    examined = sum(high - low for low, high in store.ranges)
    assert examined <= 2 * (130 - 100) + 2 * 9  # the range plus the hour's margin (7 min a decision)


def test_an_entry_appended_out_of_time_order_is_still_in_its_range(
    tmp_path: Path, signer: Ed25519Signer
) -> None:
    from datetime import timedelta

    from audit import make_entry

    log = AuditLog.open(":memory:", signer=signer)
    try:
        times = [T0 + timedelta(minutes=i) for i in range(200)]
        times[150] = T0 + timedelta(minutes=95)  # decided at minute 95, appended after minute 149
        for i, when in enumerate(times):
            log.append(
                make_entry(
                    time=when, source="ci", uid=f"u{i}", operation="CREATE", resource={}, verdict="allowed"
                )
            )
        since, until = (T0 + timedelta(minutes=90)).isoformat(), (T0 + timedelta(minutes=100)).isoformat()
        filters = Filters(
            Query(since=since.replace("+00:00", ".000000Z"), until=until.replace("+00:00", ".000000Z"))
        )
        page = queries.page_before(log, filters, None, 50)
        assert [row.index for row in page.rows] == [150, *range(99, 89, -1)]
    finally:
        log.close()


def test_the_newest_page_reads_about_a_page_not_a_window(
    logged: tuple[AuditLog, Path],
) -> None:
    log, _ = logged
    store = CountingStore(log.store)
    counted = AuditLog(store, origin=log.origin)  # type: ignore[arg-type]
    page = queries.page_before(counted, Filters(Query()), None, 50)
    assert [row.index for row in page.rows] == list(range(COUNT - 1, COUNT - 51, -1))
    assert store.ranges == [(COUNT - 100, COUNT)]


def test_a_log_with_an_archived_prefix_shows_its_live_entries(tmp_path: Path, signer: Ed25519Signer) -> None:
    """After `audit archive --drop` the pages read from the first live entry: no page, download or
    time range reaches into the dropped prefix (which the store refuses), and an archived decision
    says where the log starts."""
    from audit.archive import archive
    from tests.consoledata import STEP

    log = AuditLog.open(tmp_path / "audit.db", signer=signer, max_batch=16)
    try:
        fill(log, 300)
        summary = archive(log, T0 + 150 * STEP, tmp_path / "archive", drop=True)
        base = summary.size
        assert 0 < base <= 150
        (tmp_path / "tokens").write_text(f"{TOKEN}\n")
        with TestClient(create_app(log, tmp_path / "tokens")) as client:
            seen: list[int] = []
            url: str | None = "/console/data/decisions?size=100"
            while url is not None:
                response = client.get(url, headers=AUTH)
                assert response.status_code == 200, response.text
                seen.extend(_indexes(response.text))
                older = re.search(r'<a href="/console/decisions\?([^"]*)" rel="next"', response.text)
                url = f"/console/data/decisions?{older.group(1).replace('&amp;', '&')}" if older else None
            assert seen == list(range(299, base - 1, -1))
            early = client.get(
                f"/console/data/decisions?until={(T0 + 100 * STEP):%Y-%m-%dT%H:%M:%SZ}", headers=AUTH
            )
            assert early.status_code == 200 and _indexes(early.text) == []
            download = client.get("/console/data/decisions.csv", headers=AUTH)
            assert download.status_code == 200
            rows = list(csv.DictReader(io.StringIO(download.text)))
            assert [int(r["index"]) for r in rows] == list(range(299, base - 1, -1))
            gone = client.get("/console/data/decisions/3", headers=AUTH)
            assert gone.status_code == 404
            assert f"the log holds entries [{base}, 300); the older ones are archived" in gone.text
            assert client.get("/console/data/policies", headers=AUTH).status_code == 200
    finally:
        log.close()
