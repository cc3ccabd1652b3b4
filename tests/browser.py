"""Debian's chromium through selenium, headless, for the tests of pages users open (the leaderboard,
the documentation site). Tests that use it are skipped, with the reason, where chromium, chromedriver
or selenium is missing (``.ci/run`` installs them when it can)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
#: The marks of a browser test module: slow, and skipped without chromium + chromedriver.
MARKS = [pytest.mark.slow,
         pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="no chromium + chromedriver on this machine "
                            "(Debian: apt-get install chromium chromium-driver)")]


@contextmanager
def headless_chromium(profile: Path, size: str = "1400,1000", browser_log: bool = False) -> Iterator:
    """A selenium driver of a fresh headless chromium (profile folder ``profile``, window ``size``);
    ``browser_log`` keeps the console log for ``driver.get_log("browser")``. Quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", f"--window-size={size}"):
        options.add_argument(flag)
    if browser_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
