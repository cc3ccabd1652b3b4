"""results_markdown cell by cell, and the heatmap file.

The fixture's counts sit in one image (tests/results/results_factory.py): a resample that draws it
gives exactly the full-data value, one that does not has no pixel and is left out, so every interval
is [value, value]; cells read ``v [v, v]``.
"""

import pytest

from benchmark.results import results_heatmap, results_markdown
from benchmark.results.report import write_reports

MIOU = {
    ("src", "clean"): 0.7512, ("t1", "clean"): 0.6, ("t2", "clean"): 0.123456,
    ("src", "pgd"): 0.01, ("t1", "pgd"): 0.5555, ("t2", "pgd"): 0.1,
    ("src", "transegpgd"): 0.0, ("t1", "transegpgd"): 0.33335, ("t2", "transegpgd"): 1.0,
}


def _table(markdown: str) -> list[list[str]]:
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in rows]


def _tables(markdown: str) -> list[list[list[str]]]:
    """Each Markdown table of ``markdown`` (blocks separated by blank lines)."""
    return [t for t in (_table(block) for block in markdown.split("\n\n")) if t]


def test_markdown_cells(make_result):
    md = results_markdown(make_result(miou=MIOU))
    caption = md.splitlines()[0]
    assert "%" in caption and "2 decimals" in caption and "white-box" in caption
    assert "interval" in caption and "bootstrap" in caption
    table, comparisons, summary, perturbation = _tables(md)
    assert table[0] == ["attack", "src (white-box, clean 75.12 [75.12, 75.12])", "t1 (clean 60.00 [60.00, 60.00])",
                        "t2 (clean 12.35 [12.35, 12.35])"]
    assert table[1] == ["---", "---:", "---:", "---:"]
    assert table[2] == ["pgd", "1.00 [1.00, 1.00]", "55.55 [55.55, 55.55]", "10.00 [10.00, 10.00]"]
    assert table[3] == ["transegpgd", "0.00 [0.00, 0.00]", "33.34 [33.34, 33.34]", "100.00 [100.00, 100.00]"]
    assert len(table) == 4
    assert comparisons[0] == ["target", "first", "second", "difference [interval]"]
    assert comparisons[2] == ["src (white-box)", "pgd", "transegpgd", "+1.00 [+1.00, +1.00] *"]
    assert comparisons[3][:3] == ["t1", "pgd", "transegpgd"] and comparisons[3][3].endswith("] *")
    assert float(comparisons[3][3].split()[0]) == pytest.approx(100 * (0.5555 - 0.33335), abs=0.006)
    assert comparisons[4] == ["t2", "pgd", "transegpgd", "-90.00 [-90.00, -90.00] *"]
    assert len(comparisons) == 5
    # the fixture's classes 0 and 2 are labelled, each with the value's share predicted right: mAcc = aAcc = v
    assert summary[0] == ["target", "source", "condition", "mIoU", "mAcc", "aAcc", "success"]
    assert summary[2] == ["src", "", "clean", "75.12", "75.12", "75.12", "-"]
    assert summary[3] == ["src", "src", "pgd", "1.00", "1.00", "1.00", "50.00"]
    # every attack moves image i by (i + 1)/255 with L2 0.5 (i + 1) (tests/results/results_factory.py)
    assert perturbation[2] == ["src", "pgd", "2.50", "4.00", "1.250"]


def test_per_class_table_and_csv(make_result, tmp_path):
    import csv

    from benchmark.results.report import per_class_table

    result = make_result(miou=MIOU)
    table = _table(per_class_table(result))
    assert table[0] == ["class", "clean", "pgd", "transegpgd"]
    assert table[2] == ["background", "75.12 / 75.12", "1.00 / 1.00", "0.00 / 0.00"]
    assert table[3] == ["aeroplane", "- / -", "- / -", "- / -"]  # absent from every image: undefined
    write_reports(result, tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "per_class_metrics.csv")))
    assert len(rows) == len(result.metrics) * 3 and rows[0]["class"] == "background"
    assert float(rows[0]["iou"]) == result.metrics[0].per_class_iou[0] and rows[1]["iou"] == ""


def test_markdown_with_seeds_shows_mean_std_and_each_seed(make_result):
    md = results_markdown(make_result(seeds=(0, 1, 2), miou=MIOU))
    table = _table(md)
    assert table[2][2] == "55.55 ± 0.00 [55.55, 55.55]"  # same counts for every seed: std 0
    assert "## Each seed" in md
    per_seed = next(t for t in _tables(md) if t[0] == ["source", "attack", "seed", "src", "t1", "t2"])
    assert per_seed[2] == ["src", "pgd", "0", "1.00", "55.55", "10.00"]
    assert len(per_seed) == 2 + 2 * 3


def test_markdown_matrix_for_several_sources(make_result, tmp_path):
    result = make_result(sources=[("src",), ("t1",)], targets=("src", "t1", "t2"), miou=MIOU)
    md, heatmaps = write_reports(result, tmp_path)
    assert "## Source src" in md and "## Source t1" in md and "## Source x target matrices" in md
    matrix = next(t for t in _tables(md) if t[0][0].startswith("pgd:"))
    assert matrix[2] == ["src", "1.00 [1.00, 1.00] (white-box)", "55.55 [55.55, 55.55]", "10.00 [10.00, 10.00]"]
    assert matrix[3] == ["t1", "1.00 [1.00, 1.00]", "55.55 [55.55, 55.55] (white-box)", "10.00 [10.00, 10.00]"]
    assert [p.name for p in heatmaps] == ["heatmap_src.png", "heatmap_t1.png", "matrix_pgd.png",
                                          "matrix_transegpgd.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in heatmaps)


def test_markdown_ensemble_marks_every_source(make_result):
    md = results_markdown(make_result(source=("src", "src2"), ensemble="logits",
                                      targets=("src", "src2", "t1"), attacks=("pgd",)))
    header = _table(md)[0]
    assert header[1].startswith("src (white-box") and header[2].startswith("src2 (white-box")
    assert "white-box" not in header[3]
    assert "ens-logits-src+src2" in md


def test_heatmap_png(tmp_path, make_result):
    result = make_result(miou=MIOU)
    a, b = tmp_path / "a.png", tmp_path / "sub" / "b.png"
    results_heatmap(result, a)
    results_heatmap(result, b)
    data = a.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert data == b.read_bytes()  # deterministic: no timestamps in the file
