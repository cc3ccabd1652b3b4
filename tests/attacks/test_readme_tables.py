"""The README's attack, modifier and speed tables name every registered attack (issue 13)."""

import re

from benchmark.attacks import ATTACKS, LISTED_COMBINATIONS, MODIFIERS
from benchmark.models.zoo import REPO_ROOT


def test_readme_tables_cover_every_registered_attack_and_modifier():
    readme = (REPO_ROOT / "README.md").read_text()
    first_cells = {cell for line in readme.splitlines() if line.startswith("| `")
                   for cell in re.findall(r"`([^`]+)`", line.split(" | ")[0])}
    assert set(ATTACKS) <= first_cells, sorted(set(ATTACKS) - first_cells)
    assert set(MODIFIERS) <= first_cells, sorted(set(MODIFIERS) - first_cells)
    speed = readme[readme.index("| attack | s/step |"):]
    speed_rows = {m.group(1) for m in re.finditer(r"^\| `([^`]+)` \| [\d.]+ \|", speed, re.M)}
    missing = set(ATTACKS) | set(LISTED_COMBINATIONS)
    assert missing <= speed_rows, sorted(missing - speed_rows)
