"""The documentation site in a real headless browser (Debian's chromium through selenium, as
``tests/results/test_leaderboard_browser.py``): from the start page, follow the navigation to every page;
on each, every image decodes, furo's stylesheet applies, every relative link points to a file that exists,
and the browser logs no error (a missing file, a script failure).

Skipped, with the reason, where chromium, chromedriver or selenium is missing (``.ci/run`` installs
them when it can). ``DOCS_SCREENSHOT_DIR=folder`` saves the start page and the attack reference there."""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.browser import MARKS, headless_chromium
from tests.docs.conftest import page_sources

selenium = pytest.importorskip("selenium", reason="selenium is not installed")
pytestmark = MARKS

SCREENSHOTS = {"index.html": "start-page.png", "reference/attacks.html": "attack-reference.png"}


@pytest.fixture()
def browser(tmp_path):
    with headless_chromium(tmp_path / "profile", "1400,1000", browser_log=True) as driver:
        yield driver


def _page(built: Path, url: str) -> str:
    """The built page a file:// URL shows, relative to the site ('reference/cli.html')."""
    return Path(unquote(urlsplit(url).path)).resolve().relative_to(built.resolve()).as_posix()


def _check_page(browser, built: Path) -> list[str]:
    name = _page(built, browser.current_url)
    problems = []
    if not browser.find_elements("css selector", "article h1"):
        problems.append(f"{name}: no title")
    for img in browser.find_elements("css selector", "img"):
        if not browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img):
            problems.append(f"{name}: image {img.get_attribute('src')} does not decode")
    if not browser.execute_script("return getComputedStyle(document.body).getPropertyValue('--color-brand-primary')"):
        problems.append(f"{name}: furo's stylesheet did not apply")
    for href in browser.execute_script("return [...document.querySelectorAll('a[href]')].map(a => a.href)"):
        parts = urlsplit(href)
        if parts.scheme == "file" and not Path(unquote(parts.path)).exists():
            problems.append(f"{name}: broken link {href}")
    problems += [f"{name}: browser log: {entry['message']}" for entry in browser.get_log("browser")
                 if entry["level"] == "SEVERE"]
    return problems


def test_following_the_navigation_reaches_every_page_and_nothing_is_broken(built, browser):
    browser.get((built / "index.html").as_uri())
    expected = {p.with_suffix(".html").as_posix() for p in page_sources()}
    nav = [_page(built, href) for href in browser.execute_script(
        "return [...document.querySelectorAll('.sidebar-tree a.reference.internal')].map(a => a.href)")]
    assert set(nav) | {"index.html"} == expected, "the navigation does not list exactly the pages of docs/"
    visited, problems = ["index.html"], _check_page(browser, built)
    shots = os.environ.get("DOCS_SCREENSHOT_DIR")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(shots) / SCREENSHOTS["index.html"]))
    for target in nav:
        if target == "index.html" or target in visited:
            continue
        links = [a for a in browser.find_elements("css selector", ".sidebar-tree a.reference.internal")
                 if _page(built, a.get_attribute("href")) == target]
        assert links, f"{_page(built, browser.current_url)}: the navigation has no link to {target}"
        browser.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", links[0])
        links[0].click()  # follow the link as a reader does, from the page before
        assert _page(built, browser.current_url) == target
        visited.append(target)
        problems += _check_page(browser, built)
        if shots and target in SCREENSHOTS:
            browser.save_screenshot(str(Path(shots) / SCREENSHOTS[target]))
    assert set(visited) == expected
    assert problems == [], "\n".join(problems)
