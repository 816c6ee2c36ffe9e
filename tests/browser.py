"""Headless Debian chromium driven by Selenium through the machine's chromedriver (never downloaded).

Under CI (POLICYENGINE_REQUIRE_SHARED=1 or CI=true, which .ci/run sets) a missing chromium or
chromedriver fails the test instead of skipping it, like the kubectl tests.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = ("/usr/bin/chromium", "chromium", "chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver", "chromedriver")


def _which(names: tuple[str, ...]) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def machine_chromium() -> tuple[str, str]:
    """The paths of chromium and chromedriver, or skip (fail under CI) naming what is missing."""
    chromium, driver = _which(CHROMIUM), _which(CHROMEDRIVER)
    missing = [name for name, path in (("chromium", chromium), ("chromium-driver", driver)) if path is None]
    if missing or chromium is None or driver is None:
        reason = f"{' and '.join(missing)} not installed (Debian packages chromium, chromium-driver)"
        if os.environ.get("POLICYENGINE_REQUIRE_SHARED") == "1" or os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return chromium, driver


def headless_chromium(
    downloads: Path | None = None,
    width: int = 1440,
    height: int = 900,
    *,
    flags: tuple[str, ...] = (),
    accept_insecure_certs: bool = True,
) -> Any:
    """A new headless chromium session (the caller quits it). By default its TLS errors are accepted: the
    tests' servers use a test CA the browser does not know; the connection is still TLS."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = machine_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}", "--no-first-run", "--disable-extensions", *flags):  # fmt: skip
        options.add_argument(flag)
    options.accept_insecure_certs = accept_insecure_certs
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if downloads is not None:
        options.add_experimental_option(
            "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
        )
    session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    session.set_script_timeout(60)  # a hang guard only
    return session


@contextmanager
def chromium_session(*flags: str) -> Iterator[Any]:
    """A headless chromium that verifies TLS as a browser does (with extra command-line ``flags``), quit
    on exit."""
    session = headless_chromium(width=1280, flags=flags, accept_insecure_certs=False)
    try:
        yield session
    finally:
        session.quit()
