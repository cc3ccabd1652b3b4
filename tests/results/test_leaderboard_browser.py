"""The leaderboard page in a real headless browser (Debian's chromium through selenium): rows after
clicking each column header, the sort indicator, the embedded heatmaps, the settings disclosure.

Skipped, with the reason, where chromium, chromedriver or selenium is missing (``.ci/run`` installs
them when it can)."""

import pytest

from tests.browser import MARKS, headless_chromium
from tests.results.test_leaderboard import board  # noqa: F401  (the ranked fixture board)

selenium = pytest.importorskip("selenium", reason="selenium is not installed")
pytestmark = MARKS


@pytest.fixture()
def browser(tmp_path):
    with headless_chromium(tmp_path / "profile", "1600,1200") as driver:
        yield driver


def _rows(table):
    """(group, attack, sort value of every column) of each body row, in page order."""
    out = []
    for row in table.find_elements("css selector", ":scope > tbody > tr"):
        cells = row.find_elements("css selector", ":scope > td")
        out.append((int(row.get_attribute("data-group")), cells[1].get_attribute("data-v"),
                    [c.get_attribute("data-v") for c in cells]))
    return out


def test_sorting_every_column_keeps_incomplete_entries_below(board, browser, tmp_path):  # noqa: F811
    page = board / "out" / "index.html"
    browser.get(page.as_uri())
    table = browser.find_elements("css selector", "table.board")[0]
    heads = table.find_elements("css selector", ":scope > thead th")
    initial = [attack for _, attack, _ in _rows(table)]
    assert initial == ["bim", "pgd", "segpgd", "cospgd", "fgsm_like", "wb_only"]  # the ranking
    for index, head in enumerate(heads):
        for expected in ("ascending", "descending"):
            head.click()
            assert head.get_attribute("aria-sort") == expected
            assert head.find_element("css selector", ".arrow").text == ("▲" if expected == "ascending" else "▼")
            assert all(other.get_attribute("aria-sort") == "none" for other in heads if other != head)
            rows = _rows(table)
            groups = [g for g, _, _ in rows]
            assert groups == sorted(groups), f"column {index}: an incomplete entry rose above a complete one"
            for group in set(groups):
                values = [v[index] for g, _, v in rows if g == group and v[index] != ""]
                numeric = head.get_attribute("data-type") == "num"
                keys = [float(v) for v in values] if numeric else values
                assert keys == sorted(keys, reverse=expected == "descending"), f"column {index} ({expected})"
    browser.save_screenshot(str(tmp_path / "leaderboard.png"))


def test_heatmaps_are_embedded_and_settings_open_from_the_row(board, browser):  # noqa: F811
    browser.get((board / "out" / "index.html").as_uri())
    images = browser.find_elements("css selector", "img.heatmap")
    assert len(images) == 3
    assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 100", img)
               for img in images)  # decoded from the data URI: no file beside the page is needed
    details = browser.find_elements("css selector", "table.board > tbody > tr > td details")[0]
    assert not details.get_attribute("open")
    details.find_element("css selector", "summary").click()
    assert details.get_attribute("open") == "true"
    text = details.text
    assert "step_schedule" in text and "settings hash" in text
    link = details.find_element("css selector", "a")
    assert link.get_attribute("href").endswith(".json") and "/entries/" in link.get_attribute("href")
