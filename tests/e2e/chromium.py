"""Headless Debian chromium for the browser tests, driven by Selenium through Debian's chromedriver.

The paths are given explicitly so Selenium Manager never downloads a browser or a driver. Missing
binaries skip the test, or fail it under CI (POLICYENGINE_REQUIRE_SHARED=1 or CI=true).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def machine_chromium() -> tuple[str, str]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).is_file()]
    if missing:
        reason = f"{', '.join(missing)} missing (install Debian's chromium and chromium-driver)"
        if os.environ.get("POLICYENGINE_REQUIRE_SHARED") == "1" or os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM, CHROMEDRIVER


@contextmanager
def headless_chromium(*flags: str) -> Iterator[Any]:
    """A headless chromium WebDriver (with extra command-line ``flags``), quit on exit."""
    binary, driver_path = machine_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        *flags,
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_script_timeout(60)  # a hang guard only
    try:
        yield driver
    finally:
        driver.quit()
