"""The attack, modifier and speed tables of the documentation name every registered attack (issue 13; the
tables moved from the README to the site in issue 25: ``docs/explanation/attack-core.md``,
``reference-checks.md`` and ``performance.md``)."""

import re

from benchmark.attacks import ATTACKS, LISTED_COMBINATIONS, MODIFIERS
from benchmark.models.zoo import REPO_ROOT

PAGES = ("attack-core.md", "reference-checks.md", "performance.md")


def test_documented_tables_cover_every_registered_attack_and_modifier():
    text = "\n".join((REPO_ROOT / "docs" / "explanation" / page).read_text() for page in PAGES)
    first_cells = {cell for line in text.splitlines() if line.startswith("| `")
                   for cell in re.findall(r"`([^`]+)`", line.split(" | ")[0])}
    assert set(ATTACKS) <= first_cells, sorted(set(ATTACKS) - first_cells)
    assert set(MODIFIERS) <= first_cells, sorted(set(MODIFIERS) - first_cells)
    speed = text[text.index("| attack | s/step |"):]
    speed_rows = {m.group(1) for m in re.finditer(r"^\| `([^`]+)` \| [\d.]+ \|", speed, re.M)}
    missing = set(ATTACKS) | set(LISTED_COMBINATIONS)
    assert missing <= speed_rows, sorted(missing - speed_rows)
