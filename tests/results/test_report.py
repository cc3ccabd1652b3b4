"""results_markdown cell by cell, and the heatmap file."""

from benchmark.results import results_heatmap, results_markdown

MIOU = {
    ("src", "clean"): 0.7512, ("t1", "clean"): 0.6, ("t2", "clean"): 0.123456,
    ("src", "pgd"): 0.01, ("t1", "pgd"): 0.5555, ("t2", "pgd"): 0.1,
    ("src", "transegpgd"): 0.0, ("t1", "transegpgd"): 0.33335, ("t2", "transegpgd"): 1.0,
}


def _table(markdown: str) -> list[list[str]]:
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in rows]


def test_markdown_cells(make_result):
    md = results_markdown(make_result(miou=MIOU))
    caption = md.splitlines()[0]
    assert "%" in caption and "2 decimals" in caption and "white-box" in caption
    table = _table(md)
    assert table[0] == ["attack", "src (white-box, clean 75.12)", "t1 (clean 60.00)", "t2 (clean 12.35)"]
    assert table[1] == ["---", "---:", "---:", "---:"]
    assert table[2] == ["pgd", "1.00", "55.55", "10.00"]
    assert table[3] == ["transegpgd", "0.00", "33.34", "100.00"]
    assert len(table) == 4


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
