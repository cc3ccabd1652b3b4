"""Leaderboard: submission checks, entry files, ranking, Markdown and HTML pages, heatmaps."""

from __future__ import annotations

import hashlib
import json
from html.parser import HTMLParser

import pytest

from benchmark.errors import ResultError
from benchmark.results import (
    RANKING_RULE,
    build,
    leaderboard_tables,
    load_entries,
    read_entry,
    result_to_json,
    submit,
    write_result,
)
from tests.results.results_factory import SHA, build_result, settings_for


def _submit(tmp_path, result, name="results.json"):
    path = tmp_path / "runs" / name
    write_result(path, result)
    return submit(path, tmp_path / "lb")


def _entry_files(tmp_path):
    base = tmp_path / "lb" / "entries"
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*.json")) if base.exists() else []


# ---------------------------------------------------------------- submission checks

def _settings_without(key):
    s = settings_for("pgd")
    del s[key]
    return {"pgd": s}


@pytest.mark.parametrize("kwargs, match", [
    (dict(sha={"src": None}), "model 'src' has no checkpoint sha256"),
    (dict(num_images=3, split_size=4, image_limit=3),
     r"partial run \(3 of 4 images of voc2012/val, image_limit 3\)"),
    (dict(num_images=3, split_size=4), r"partial run \(3 of 4 images"),
    (dict(image_limit=2), "partial run"),
    (dict(attacks=()), "no attack to submit"),
    (dict(attacks=("pgd",), settings=_settings_without("eps")), "attack 'pgd' lacks its settings"),
    (dict(attacks=("pgd",), settings=_settings_without("steps")), "attack 'pgd' lacks its settings"),
])
def test_incomplete_or_partial_rejected(tmp_path, kwargs, match):
    if "sha" in kwargs:
        kwargs["sha"] = {**SHA, **kwargs["sha"]}
    with pytest.raises(ResultError, match=match) as err:
        _submit(tmp_path, build_result(**kwargs))
    assert "\n" not in str(err.value) and "results.json" in str(err.value)
    assert _entry_files(tmp_path) == []


def test_empty_version_rejected(tmp_path):
    raw = result_to_json(build_result())
    raw["versions"]["mmseg"] = ""
    path = tmp_path / "results.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ResultError, match="versions.mmseg is empty"):
        submit(path, tmp_path / "lb")


@pytest.mark.parametrize("mutate, match", [
    (lambda raw: raw.pop("seeds"), "missing key 'seeds'"),
    (lambda raw: raw["dataset"].update(extra=1), "unknown key 'dataset.extra'"),
    (lambda raw: raw["metrics"][0].update(miou="0.7"), "expected a number"),
])
def test_malformed_rejected(tmp_path, mutate, match):
    raw = result_to_json(build_result())
    mutate(raw)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ResultError, match=match):
        submit(path, tmp_path / "lb")
    assert _entry_files(tmp_path) == []


def test_unreadable_file_rejected(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("{not json")
    with pytest.raises(ResultError, match="invalid JSON"):
        submit(path, tmp_path / "lb")


def test_unsafe_name_rejected(tmp_path):
    with pytest.raises(ResultError, match="cannot be used in a leaderboard path"):
        _submit(tmp_path, build_result(attacks=("../pgd",), settings={"../pgd": settings_for("pgd")}))


def test_duplicate_rejected_with_one_line(tmp_path):
    first = _submit(tmp_path, build_result())
    assert len(first) == 2
    before = _entry_files(tmp_path)
    with pytest.raises(ResultError) as err:
        _submit(tmp_path, build_result(), name="again.json")
    message = str(err.value)
    assert "\n" not in message and "duplicate" in message and "pgd" in message
    assert _entry_files(tmp_path) == before
    # A different seed is different content: accepted.
    assert len(_submit(tmp_path, build_result(seed=1), name="seed1.json")) == 2


# ---------------------------------------------------------------- entry files

def test_entry_layout_and_content_hash(tmp_path):
    paths = _submit(tmp_path, build_result())
    files = _entry_files(tmp_path)
    assert [f.rsplit("-", 1)[0] for f in files] == ["voc2012-val/linf-8-t20-a2/src/pgd",
                                                    "voc2012-val/linf-8-t20-a2/src/transegpgd"]
    for path in paths:
        raw = json.loads(path.read_text())
        canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"))
        assert path.name.endswith(f"-{hashlib.sha256(canonical.encode()).hexdigest()[:12]}.json")


def test_entry_has_what_verify_needs(tmp_path):
    result = build_result(attacks=("transegpgd",), seed=7)
    (path,) = _submit(tmp_path, result)
    entry = read_entry(path)
    assert entry.seeds == (7,) and entry.adv_format == "float"
    assert entry.attack == result.attacks[0]
    assert entry.attack.settings["stage1_steps"] == 10
    assert entry.dataset == result.dataset and entry.versions == result.versions
    assert {m.name: (m.config, m.checkpoint_sha256) for m in entry.models} == {
        n: (f"configs/models/{n}.py", SHA[n]) for n in ("src", "t1", "t2")}
    assert entry.track.name == "linf-8-t20-a2" and entry.track.eps_255 == 8.0
    assert entry.miou("t1", "clean") == result.metric("t1", "clean").miou
    assert load_entries(tmp_path / "lb") == (entry,)


def test_edited_entry_refused(tmp_path):
    (path, _) = _submit(tmp_path, build_result())
    raw = json.loads(path.read_text())
    raw["metrics"][1]["miou"] = 0.0001
    path.write_text(json.dumps(raw))
    with pytest.raises(ResultError, match="does not match its location"):
        build(tmp_path / "lb", tmp_path / "out")


# ---------------------------------------------------------------- ranking fixture

RUNS = {  # attack: ({target: adversarial mIoU}, seed); targets src (white-box), t1, t2
    "pgd": ({"src": 0.01, "t1": 0.20, "t2": 0.30}, 0),
    "bim": ({"src": 0.02, "t1": 0.30, "t2": 0.20}, 0),     # same mean as pgd: tie -> by name
    "segpgd": ({"src": 0.00, "t1": 0.10, "t2": 0.50}, 0),
    "cospgd": ({"src": 0.03, "t1": 0.05}, 1),              # lacks t2: after complete entries
    "fgsm_like": ({"src": 0.04, "t2": 0.40}, 2),           # lacks t1
    "wb_only": ({"src": 0.001}, 3),                        # no black-box target: last
}
CLEAN = {"src": 0.75, "t1": 0.6, "t2": 0.5}
# The fixture's counts sit in one image, so every interval is [value, value] (tests/results/test_report.py).
EXPECTED = [  # rank, attack, black-box mean [interval], vs next, src, t1, t2, missing, reference, seeds
    ["1", "bim", "25.00 [25.00, 25.00]", "not distinguishable [+0.00, +0.00]", "2.00", "30.00", "20.00", "", "", "0"],
    ["2", "pgd", "25.00 [25.00, 25.00]", "[-5.00, -5.00]", "1.00", "20.00", "30.00", "", "", "0"],
    ["3", "segpgd", "30.00 [30.00, 30.00]", "-", "0.00", "10.00", "50.00", "", "", "0"],  # next lacks t2
    ["4 (missing)", "cospgd", "5.00 [5.00, 5.00]", "-", "3.00", "5.00", "-", "t2", "", "1"],
    ["5 (missing)", "fgsm_like", "40.00 [40.00, 40.00]", "-", "4.00", "-", "40.00", "t1", "", "2"],
    ["6 (missing)", "wb_only", "-", "-", "0.10", "-", "-", "t1, t2", "", "3"],
]
# one source model: no separate white-box mean column (it would repeat the src column)
HEADER = ["rank", "attack", "black-box mean", "vs next", "src (white-box, clean 75.00)",
          "t1 (clean 60.00)", "t2 (clean 50.00)", "missing", "reference", "seeds", "settings", "entry"]


@pytest.fixture
def board(tmp_path):
    for attack, (adv, seed) in RUNS.items():
        targets = tuple(adv)
        miou = {(t, "clean"): CLEAN[t] for t in targets} | {(t, attack): v for t, v in adv.items()}
        result = build_result(targets=targets, attacks=(attack,), miou=miou, seed=seed,
                              settings={attack: settings_for(attack)})
        _submit(tmp_path, result, name=f"{attack}.json")
    # A second source on the same dataset and track: its own table.
    _submit(tmp_path, build_result(source=("t1",), targets=("t1", "t2"), attacks=("pgd",),
                                   miou={("t2", "pgd"): 0.45}), name="other-source.json")
    # Another track (alpha = eps / steps).
    _submit(tmp_path, build_result(attacks=("pgd",), settings={"pgd": settings_for("pgd", alpha=None)}),
            name="ae.json")
    out = tmp_path / "out"
    build(tmp_path / "lb", out)
    return tmp_path


def test_ranking_with_ties_and_missing_targets(board):
    tables = leaderboard_tables(board / "lb")
    assert [t.key for t in tables] == ["voc2012-val/linf-8-t20-a2/src", "voc2012-val/linf-8-t20-a2/t1",
                                       "voc2012-val/linf-8-t20-ae/src"]
    main = tables[0]
    assert main.targets == ("src", "t1", "t2") and main.white_box == (True, False, False)
    assert [(r.rank, r.attack, r.missing) for r in main.rows] == [
        (1, "bim", ()), (2, "pgd", ()), (3, "segpgd", ()), (4, "cospgd", ("t2",)),
        (5, "fgsm_like", ("t1",)), (6, "wb_only", ("t1", "t2"))]
    assert main.rows[0].blackbox_mean == pytest.approx(0.25) and main.rows[5].blackbox_mean is None
    assert [r.tied_with_next for r in main.rows] == [True, False, False, False, False, False]
    assert main.rows[1].next_difference == pytest.approx((-0.05, -0.05))
    assert main.rows[0].blackbox_ci == pytest.approx((0.25, 0.25)) and main.rows[5].blackbox_ci is None


def _md_tables(text):
    tables, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            if current is None:
                current = []
                tables.append(current)
            current.append([c.strip() for c in line.strip().strip("|").split("|")])
        else:
            current = None
    return tables


def test_markdown_cell_by_cell(board):
    text = (board / "out" / "leaderboard.md").read_text()
    assert RANKING_RULE in text
    assert "percentages with 2 decimals" in text
    tables = _md_tables(text)
    assert len(tables) == 3
    main = tables[0]  # sections sorted by track name: linf-8-t20-a2 then -ae; inside, sources by name
    assert main[0] == HEADER
    assert main[1] == ["---:", "---", "---:", "---", "---:", "---:", "---:", "---", "---", "---", "---", "---"]
    assert [row[:10] for row in main[2:]] == EXPECTED
    for row in main[2:]:
        assert len(row[10]) == 12 and len(row[11]) == 12
    other = tables[1]
    assert other[0][4:6] == ["t1 (white-box, clean 70.00)", "t2 (clean 71.00)"]
    assert other[2][:7] == ["1", "pgd", "45.00 [45.00, 45.00]", "-", "5.00", "45.00", ""]


class _Tables(HTMLParser):
    """The board tables' cells as text (a disclosure shows as its summary), every tag, inline CSS/JS."""

    def __init__(self):
        super().__init__()
        self.tables, self.tags, self.cell, self.attrs = [], [], None, []
        self.inline = {"style": "", "script": ""}
        self._inline, self._nested, self._details, self._summary = None, 0, 0, False
        self.details = []  # per disclosure: its text

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if self._details:
            self._nested += tag == "table"
            self._summary = self._summary or tag == "summary"
            return
        if tag == "details":
            self._details, self._summary = 1, False
            self.details.append("")
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = ""
            self.attrs.append(dict(attrs))
        elif tag in self.inline:
            self._inline = tag

    def handle_endtag(self, tag):
        if self._details:
            if tag == "summary":
                self._summary = False
            elif tag == "details":
                self._details = 0
            return
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self.cell)
            self.cell = None
        elif tag in self.inline:
            self._inline = None

    def handle_data(self, data):
        if self._details:
            self.details[-1] += data
            if self._summary and self.cell is not None:
                self.cell += data
            return
        if self.cell is not None:
            self.cell += data
        if self._inline:
            self.inline[self._inline] += data


def test_html_tables_and_self_contained(board):
    page = (board / "out" / "index.html").read_text()
    parser = _Tables()
    parser.feed(page)
    assert len(parser.tables) == 3
    main = parser.tables[0]
    assert main[0] == HEADER
    assert [row[:10] for row in main[1:]] == EXPECTED
    # sort keys are the exact values
    first_row_attrs = parser.attrs[len(HEADER):len(HEADER) * 2]
    assert first_row_attrs[2]["data-v"] == repr(0.25) and first_row_attrs[1]["data-v"] == "bim"
    # self-contained: inline CSS and JS, nothing loaded from elsewhere
    assert "border-collapse" in parser.inline["style"] and "addEventListener" in parser.inline["script"]
    for tag, attrs in parser.tags:
        assert tag not in ("link", "iframe", "object", "embed")
        assert "src" not in attrs or (tag == "img" and attrs["src"].startswith("data:image/png;base64,"))
        assert not attrs.get("href", "").startswith(("http:", "https:", "//"))
    images = [attrs for tag, attrs in parser.tags if tag == "img"]
    assert len(images) == 3  # every table's heatmap, embedded
    import base64
    assert base64.b64decode(images[0]["src"].split(",", 1)[1]) == (
        board / "out" / "heatmaps" / "voc2012-val__linf-8-t20-a2__src.png").read_bytes()
    # each attack opens its settings, hash and entry file; no Markdown on the page
    assert '"step_schedule"' not in parser.details[0] and "step_schedule" in parser.details[0]
    assert "settings hash" in parser.details[0] and "(JSON)" in parser.details[0]
    assert "`" not in page.split("<script>")[0]
    assert all(attrs.get("aria-sort") == "none" for tag, attrs in parser.tags if tag == "th")
    assert RANKING_RULE in page.replace("&#x27;", "'")
    sections = [attrs for tag, attrs in parser.tags if tag == "section"]
    assert len(sections) == 2  # one per (dataset, track)


def test_heatmaps_and_rebuild_is_identical(board):
    out = board / "out"
    pngs = sorted(p.name for p in (out / "heatmaps").iterdir())
    assert pngs == ["voc2012-val__linf-8-t20-a2__src.png", "voc2012-val__linf-8-t20-a2__t1.png",
                    "voc2012-val__linf-8-t20-ae__src.png"]
    before = {p.name: p.read_bytes() for p in [out / "leaderboard.md", out / "index.html"]}
    build(board / "lb", board / "again")
    for name, data in before.items():
        assert (board / "again" / name).read_bytes() == data


def test_inconsistent_checkpoint_refused(tmp_path):
    _submit(tmp_path, build_result(attacks=("pgd",)))
    _submit(tmp_path, build_result(attacks=("bim",), settings={"bim": settings_for("bim")},
                                   sha={**SHA, "t1": "f" * 64}), name="b.json")
    with pytest.raises(ResultError, match="model 't1' appears with different checkpoints"):
        build(tmp_path / "lb", tmp_path / "out")


def test_a_factory_model_with_other_sources_is_refused(tmp_path):
    """Two entries naming target t1 built by the same factory spec from different source files are not
    comparable, even with the same checkpoint."""
    import dataclasses

    from benchmark.results import Origin

    def with_factory(result, digest):
        origin = Origin.from_dict({"import": "models/build.py", "distribution": None, "version": None,
                                   "sha256": {"build.py": digest}})
        return dataclasses.replace(result, models=tuple(
            dataclasses.replace(m, config="models/build.py:build", origin=origin) if m.name == "t1" else m
            for m in result.models))

    _submit(tmp_path, with_factory(build_result(attacks=("pgd",)), "a" * 64))
    _submit(tmp_path, with_factory(build_result(attacks=("bim",), settings={"bim": settings_for("bim")}), "a" * 64),
            name="b.json")
    build(tmp_path / "lb", tmp_path / "same")  # the same sources: one table
    _submit(tmp_path, with_factory(build_result(attacks=("segpgd",), settings={"segpgd": settings_for("segpgd")}),
                                   "b" * 64), name="c.json")
    with pytest.raises(ResultError, match="model 't1' appears with different checkpoints, configs, inference "
                                          "modes or factory sources"):
        build(tmp_path / "lb", tmp_path / "out")


def test_empty_leaderboard_builds(tmp_path):
    build(tmp_path / "lb", tmp_path / "out")
    assert "No entries yet." in (tmp_path / "out" / "leaderboard.md").read_text()
