"""The auditors' console in a real browser: headless chromium against a real `serve` over TLS whose
audit log holds a few thousand decisions. Sign-in, filters, pages, a decision, downloads, a wrong
token; a screenshot of each page lands in the test's output folder (tmp_path/screenshots)."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from audit import AuditLog, keygen, load_signer
from tests.browser import headless_chromium, machine_chromium
from tests.consoledata import EXCEPTION, decision, fill
from tests.e2e.test_serve import Server, _free_port, _start, _stop, certs  # noqa: F401 (certs is a fixture)

pytestmark = pytest.mark.e2e
COUNT = 3000
TOKEN = "auditor-e2e-token"
WAIT = 30.0  # seconds: a hang guard only, never the thing measured
WAIVER = f"""\
apiVersion: policyengine.io/v1
kind: PolicyException
metadata: {{name: {EXCEPTION}}}
spec:
  policies: [no-latest-tag]
  match: {{namespaces: [team-a]}}
  expires: "2026-10-01T00:00:00Z"
  reason: quarter-end training run
  approvedBy: cfo@example.com
"""


@dataclass
class Console:
    base: str
    server: Server
    browser: Any
    shots: Path
    downloads: Path
    vkey: Path
    db: Path

    def open(self, path: str) -> None:
        self.browser.get(self.base + path)

    def shot(self, name: str) -> None:
        self.browser.save_screenshot(str(self.shots / f"{name}.png"))

    def wait(self, what: str, check: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                value = check()
            except Exception:  # the element is not there yet (selenium raises while the page loads)
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"waited {WAIT} s for {what}; page {self.browser.current_url}:\n"
                            f"{self.browser.page_source[:3000]}")  # fmt: skip
            time.sleep(0.1)

    def by(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.browser.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.browser.find_elements(By.CSS_SELECTOR, css))

    def loaded(self) -> str:
        """Wait for the page's data fragment; return its HTTP status."""
        return str(self.wait("the page's data", lambda: self.by("#data").get_attribute("data-loaded")))

    def row_indexes(self) -> list[int]:
        return [int(r.get_attribute("data-index")) for r in self.all("#decisions-table tbody tr")]

    def sign_in(self, token: str) -> None:
        self.wait("the login form", lambda: self.by("#token"))
        self.by("#token").clear()
        self.by("#token").send_keys(token)
        self.by("#login-form button[type=submit]").click()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[Console]:  # noqa: F811
    machine_chromium()
    tmp = tmp_path_factory.mktemp("console")
    keys = keygen("e2e.example/audit", tmp / "keys")
    log = AuditLog.open(tmp / "audit.db", signer=load_signer(keys.key))
    fill(log, COUNT)  # written before serve starts: serve appends to the same log with the same key
    log.close()
    (tmp / "tokens").write_text(f"# auditors\n{TOKEN}\n")
    (tmp / "waivers").mkdir()
    (tmp / "waivers" / "waiver.yaml").write_text(WAIVER)
    port = _free_port()
    server = _start(
        tmp / "serve", certs,
        "--policies", str(tmp / "waivers"),
        "--audit-log", str(tmp / "audit.db"), "--audit-key", str(keys.key),
        "--audit-api-port", str(port), "--audit-api-tokens", str(tmp / "tokens"),
    )  # fmt: skip
    shots = tmp / "screenshots"
    shots.mkdir()
    downloads = tmp / "downloads"
    downloads.mkdir()
    browser = headless_chromium(downloads)
    try:
        yield Console(
            f"https://127.0.0.1:{port}", server, browser, shots, downloads, keys.vkey, tmp / "audit.db"
        )
    finally:
        browser.quit()
        _stop(server)


def _expected(check: Callable[[dict[str, Any]], bool]) -> list[int]:
    return [i for i in range(COUNT - 1, -1, -1) if check(decision(i))]


def test_a_page_without_a_token_sends_the_auditor_to_sign_in_and_a_wrong_token_is_refused(
    console: Console,
) -> None:
    console.open("/console/decisions?verdict=denied")
    console.wait("the login page", lambda: "/console/login" in console.browser.current_url)
    console.shot("login")
    console.sign_in("not-the-token")
    message = console.wait("the refusal", lambda: console.by("#login-message").text)
    assert message == "The token was refused."
    assert "/console/login" in console.browser.current_url
    assert console.browser.execute_script("return sessionStorage.getItem('policyengine.token')") is None
    console.shot("login-refused")


def test_filters_show_exactly_the_matching_decisions_and_pages_walk_older(console: Console) -> None:
    console.open("/console/login?next=%2Fconsole%2Fdecisions")
    console.sign_in(TOKEN)
    console.wait("the decisions page", lambda: console.browser.current_url.endswith("/console/decisions"))
    assert console.loaded() == "200"
    assert console.row_indexes() == list(range(COUNT - 1, COUNT - 51, -1))
    assert "token" not in console.browser.current_url.lower()
    console.shot("decisions")

    from selenium.webdriver.support.select import Select

    Select(console.by("#f-verdict")).select_by_value("denied")
    console.by("#f-namespace").send_keys("team-b")
    console.by("#filters button[type=submit]").click()
    console.wait("the filtered page", lambda: "namespace=team-b" in console.browser.current_url)
    assert console.loaded() == "200"
    want = _expected(lambda e: e["verdict"] == "denied" and e["resource"]["namespace"] == "team-b")
    assert console.row_indexes() == want[:50]
    assert console.by("#f-namespace").get_attribute("value") == "team-b"  # the form keeps the filter
    console.shot("decisions-filtered")

    console.by("#older").click()
    console.wait("the older page", lambda: "before=" in console.browser.current_url)
    console.loaded()
    assert console.row_indexes() == want[50:100]

    console.open(f"/console/decisions?exception={EXCEPTION}&kind=Job")
    console.loaded()
    assert (
        console.row_indexes()
        == _expected(lambda e: EXCEPTION in e["exceptions"] and e["resource"]["kind"] == "Job")[:50]
    )


def test_the_csv_download_holds_the_current_filter(console: Console) -> None:
    console.open("/console/decisions?verdict=warned&user=alice%40team-b")
    assert console.loaded() == "200"
    console.by("button[data-filename='decisions.csv']").click()
    target = console.downloads / "decisions.csv"
    console.wait("the CSV download", lambda: target.is_file() and target.stat().st_size > 0)
    status = console.wait("the download status", lambda: console.by("#download-status").text)
    assert status == "Downloaded every matching decision."
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    want = _expected(lambda e: e["verdict"] == "warned" and e["user"]["username"] == "alice@team-b")
    assert [int(r["index"]) for r in rows] == want and want


def test_a_decision_shows_its_results_exceptions_and_identity(console: Console) -> None:
    index = _expected(lambda e: EXCEPTION in e["exceptions"])[0]
    console.open("/console/decisions")
    console.loaded()
    console.open(f"/console/decisions/{index}")
    assert console.loaded() == "200"
    entry = decision(index)
    assert console.by("#decision-verdict").text == entry["verdict"]
    cells = [c.text for c in console.all("#results-table tbody td")]
    assert "gpu-team-quota" in cells and "excepted" in cells and EXCEPTION in cells
    waiver = [c.text for c in console.all("#decision-exceptions tbody td")]
    assert waiver[:2] == [EXCEPTION, "cfo@example.com"] and waiver[2].startswith("2026-10-01T00:00:00")
    assert entry["uid"] in console.by("#canonical").text
    section = console.by("#verification")
    assert section.get_attribute("data-index") == str(index) and section.get_attribute("data-api") == ""
    console.shot("decision")


def test_policies_exceptions_log_and_key_pages_render(console: Console) -> None:
    console.open("/console/decisions")
    console.loaded()
    console.open("/console/policies?since=2026-09-01T00:00&until=2026-09-22T00:00")
    assert console.loaded() == "200"
    assert console.by("svg.chart").get_attribute("role") == "img"
    totals = {r.find_element("css selector", "td").text for r in console.all("#policies-table tbody tr")}
    assert totals == {"gpu-team-quota", "model-approved-source"}
    console.shot("policies")

    console.open("/console/exceptions?since=2026-09-01T00:00&until=2026-09-22T00:00")
    assert console.loaded() == "200"
    row = [c.text for c in console.all("#exceptions-table tbody tr:first-child td")]
    uses = sum(1 for i in range(COUNT) if decision(i)["exceptions"])
    assert row[0] == EXCEPTION and row[3] == "cfo@example.com" and row[4] == str(uses)
    console.shot("exceptions")

    console.open("/console/log")
    assert console.loaded() == "200"
    size = int(console.by("#checkpoint-size").text.split()[0])
    assert size >= COUNT
    console.shot("log")

    console.open("/console/key")
    console.wait("the key form", lambda: console.by("#public-key"))
    console.by("#public-key").send_keys(console.vkey.read_text().strip())
    console.by("#key-form button[type=submit]").click()
    assert (
        console.wait("the key saved", lambda: console.by("#key-status").text) == "Key saved in this browser."
    )
    stored = console.browser.execute_script("return localStorage.getItem('policyengine.publicKey')")
    assert stored == console.vkey.read_text().strip()
    console.shot("key")


def test_no_page_breaks_its_content_security_policy(console: Console) -> None:
    console.open("/console/decisions")
    console.loaded()
    for path in ("/console/decisions/5", "/console/policies", "/console/exceptions", "/console/log"):
        console.open(path)
        console.loaded()
    violations = [
        entry["message"]
        for entry in console.browser.get_log("browser")
        if "Content Security Policy" in entry["message"] or "Refused to" in entry["message"]
    ]
    assert violations == []


def test_a_token_that_stops_working_sends_the_auditor_back_to_sign_in(console: Console) -> None:
    console.open("/console/decisions")
    console.loaded()
    console.browser.execute_script("sessionStorage.setItem('policyengine.token', 'revoked-token')")
    console.open("/console/decisions/1")
    console.wait("the login page", lambda: "/console/login" in console.browser.current_url)
    assert console.wait("the reason", lambda: console.by("#login-message").text) == (
        "The token was refused. Sign in again."
    )
    assert console.browser.execute_script("return sessionStorage.getItem('policyengine.token')") is None
    console.sign_in(TOKEN)
    console.wait("the page asked for", lambda: console.browser.current_url.endswith("/console/decisions/1"))
    assert console.loaded() == "200"


UNLABELLED = """
return [...document.querySelectorAll('input, select, textarea')]
  .filter(el => el.type !== 'hidden' && el.labels.length === 0 && !el.getAttribute('aria-label'))
  .map(el => el.outerHTML);
"""


def test_every_control_has_a_label_and_the_keyboard_reaches_the_content_first(console: Console) -> None:
    from selenium.webdriver.common.keys import Keys

    console.open("/console/decisions")
    console.loaded()
    for path in (
        "/console/decisions",
        "/console/policies",
        "/console/exceptions",
        "/console/key",
        "/console/login",
    ):
        console.open(path)
        if path != "/console/key" and path != "/console/login":
            console.loaded()
        assert console.browser.execute_script(UNLABELLED) == [], path
        assert console.browser.execute_script("return document.documentElement.lang") == "en"
    console.open("/console/decisions")
    console.loaded()
    console.by("body").send_keys(Keys.TAB)
    focused = console.browser.switch_to.active_element
    assert focused.text == "Skip to content" and focused.get_attribute("href").endswith("#main")


def _verification(console: Console, index: int) -> tuple[str, str]:
    """Open decision ``index`` and wait for the browser's own check of it: (data-state, text)."""
    console.open(f"/console/decisions/{index}")
    assert console.loaded() == "200"
    status = console.wait(
        "the verification",
        lambda: (
            console.by("#verification-status").get_attribute("data-state") in ("ok", "failed")
            and console.by("#verification-status")
        ),
    )
    return str(status.get_attribute("data-state")), str(status.text)


def test_the_browser_verifies_a_decision_and_reports_a_tampered_one(console: Console) -> None:
    """Runs last: it edits one entry of the served log in the database, as an attacker with access to
    it would, and the page (not the server) finds out."""
    import sqlite3

    console.open("/console/login?next=%2Fconsole%2Fdecisions")
    console.sign_in(TOKEN)
    console.wait("the decisions page", lambda: console.browser.current_url.endswith("/console/decisions"))
    console.browser.execute_script(
        "localStorage.setItem('policyengine.publicKey', arguments[0])", console.vkey.read_text().strip()
    )
    index = _expected(lambda e: e["verdict"] == "denied")[3]
    state, text = _verification(console, index)
    assert state == "ok", text
    assert text.startswith("Included in checkpoint ") and " signed by e2e.example/audit+" in text
    console.shot("decision-verified")

    with sqlite3.connect(console.db) as db:
        (data,) = db.execute("SELECT data FROM entries WHERE idx = ?", (index,)).fetchone()
        edited = bytes(data).replace(b'"verdict":"denied"', b'"verdict":"allowed"')
        assert edited != bytes(data)
        db.execute("UPDATE entries SET data = ? WHERE idx = ?", (edited, index))
    state, text = _verification(console, index)
    assert state == "failed", text
    assert text.startswith("Verification failed.") and f"Entry {index} is not in checkpoint" in text
    assert console.by("#verification-status").get_attribute("data-code") == "root_mismatch"
    console.shot("decision-tampered")
