"""The committed leaderboard is generated, never hand-edited: rebuilding it gives the same pages."""

from benchmark.models.zoo import REPO_ROOT
from benchmark.results import build, load_entries
from benchmark.results.audit import check_consistency

BOARD = REPO_ROOT / "leaderboard"


def test_committed_pages_equal_a_rebuild_from_the_entries(tmp_path):
    build(BOARD, tmp_path)
    for page in ("leaderboard.md", "index.html"):
        assert (tmp_path / page).read_text() == (BOARD / page).read_text(), page
    assert sorted(p.name for p in (tmp_path / "heatmaps").iterdir()) == sorted(
        p.name for p in (BOARD / "heatmaps").iterdir())


def test_committed_entries_are_intact_and_self_consistent():
    entries = load_entries(BOARD)  # refuses an entry whose content no longer matches its file name
    assert entries
    for entry in entries:
        check_consistency(entry, entry.attack.name)
