"""Leaderboard pages from ranked tables: Markdown and one self-contained static HTML file.

Both show mIoU in percent with 2 decimals, one section per (dataset, track) and one table per source
in it, the ranking rule, and each target's clean mIoU in its column header. The HTML page has inline
CSS and a small inline script that sorts a table when a column header is clicked; it loads nothing
(heatmaps are plain links to the PNG files written beside it).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from benchmark.results.ranking import RANKING_RULE, Row, Table
from benchmark.results.report import WHITE_BOX_MARK, ci_text, diff_text, pct

TITLE = "TranSegPGD Bench leaderboard"
GENERATED = "Generated from the leaderboard entries by `benchmark leaderboard build`; never edit by hand."
UNITS = ("mIoU values are percentages with 2 decimals, [95 % interval]; '-' marks a target the entry lacks; "
         "'vs next' is the difference from the next rank's black-box mean, in points, with its interval.")
FIXED_COLUMNS = ("rank", "attack", "black-box mean", "vs next", "white-box")
TRAILING_COLUMNS = ("missing", "seeds", "settings", "entry")
TIED = "not distinguishable"


def heatmap_name(table: Table) -> str:
    """File name of a table's heatmap inside ``heatmaps/``."""
    return table.key.replace("/", "__") + ".png"


def _clean_text(low: float, high: float) -> str:
    return f"clean {pct(low)}" if pct(low) == pct(high) else f"clean {pct(low)}-{pct(high)}"


def target_headers(table: Table) -> list[str]:
    """``<target> (white-box, clean 75.12)`` / ``<target> (clean 60.00)`` per target column."""
    out = []
    for t, wb, (low, high) in zip(table.targets, table.white_box, table.clean):
        out.append(f"{t} ({WHITE_BOX_MARK + ', ' if wb else ''}{_clean_text(low, high)})")
    return out


def header(table: Table) -> list[str]:
    """Column titles of a table."""
    return [*FIXED_COLUMNS, *target_headers(table), *TRAILING_COLUMNS]


def next_text(row: Row) -> str:
    """``not distinguishable (-0.47 [-1.33, +0.20])``, ``-1.20 [-2.10, -0.30]``, or ``-``."""
    if row.next_difference is None:
        return "-"
    low, high = row.next_difference
    interval = f"[{diff_text(low)}, {diff_text(high)}]"
    return f"{TIED} {interval}" if row.tied_with_next else interval


def row_cells(row: Row) -> list[str]:
    """Displayed cells of a row, aligned with :func:`header`."""
    rank = f"{row.rank}" + (" (missing)" if row.missing else "")
    mean = pct(row.blackbox_mean) + (f" {ci_text(row.blackbox_ci)}" if row.blackbox_ci else "")
    return [rank, row.attack, mean, next_text(row), pct(row.whitebox), *(pct(v) for v in row.cells),
            ", ".join(row.missing), ",".join(map(str, row.seeds)), row.settings_hash, row.entry_id]


def _sections(tables: Sequence[Table]) -> list[tuple[str, list[Table]]]:
    sections: dict[str, list[Table]] = {}
    for t in tables:
        tr = t.track
        title = (f"{t.dataset.name}/{t.dataset.split}: {tr.name} (L-inf, eps = {tr.eps_255:g}/255, "
                 f"steps = {tr.steps}, alpha = {tr.alpha_255:g}/255, rule {tr.alpha_rule})")
        sections.setdefault(title, []).append(t)
    return list(sections.items())


def leaderboard_markdown(tables: Sequence[Table]) -> str:
    """The whole leaderboard as Markdown."""
    lines = [f"# {TITLE}", "", GENERATED, "", f"Ranking: {RANKING_RULE}", "", UNITS, ""]
    if not tables:
        lines += ["No entries yet.", ""]
    for title, group in _sections(tables):
        lines += [f"## {title}", ""]
        for table in group:
            cols = header(table)
            lines += [f"### Source: {table.source.id} ({table.dataset.num_images} images)", "",
                      "| " + " | ".join(cols) + " |",
                      "|" + "".join("---|" if k == "text" else "---:|" for k in _kinds(table))]
            lines += ["| " + " | ".join(row_cells(r)) + " |" for r in table.rows]
            lines += ["", f"Heatmap: heatmaps/{heatmap_name(table)}", ""]
    return "\n".join(lines)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
th,td{border:1px solid #bbb;padding:0.25em 0.6em;text-align:right}
td.text,th.text{text-align:left}
th{background:#eee;cursor:pointer;user-select:none}
th.wb{background:#fde9c8}
tr.missing td{color:#777}
p.rule{max-width:60em}"""

_JS = """document.querySelectorAll("table.board").forEach(function(table){
  table.querySelectorAll("th").forEach(function(th, col){
    th.addEventListener("click", function(){
      var asc = th.dataset.order !== "asc"; th.dataset.order = asc ? "asc" : "desc";
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(r){ var v = r.cells[col].dataset.v; return v === "" ? null : v; }
      rows.sort(function(a, b){
        var x = key(a), y = key(b);
        if (x === null || y === null) { return (x === null) - (y === null); }
        var c = th.dataset.type === "num" ? Number(x) - Number(y) : (x < y ? -1 : x > y ? 1 : 0);
        return asc ? c : -c;
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});"""


def _kinds(table: Table) -> list[str]:
    """Sort type per column: "num" or "text"."""
    return ["num", "text", "num", "text", "num", *["num"] * len(table.targets), "text", "text", "text", "text"]


def _sort_values(row: Row) -> list[str]:
    """Exact values the script sorts by ('' for none), aligned with :func:`header`."""
    def num(v: float | int | None) -> str:
        return "" if v is None else repr(v)
    return [num(row.rank), row.attack, num(row.blackbox_mean), next_text(row), num(row.whitebox),
            *(num(v) for v in row.cells), ", ".join(row.missing), ",".join(map(str, row.seeds)), row.settings_hash,
            row.entry_id]


def _table_html(table: Table) -> list[str]:
    e = html.escape
    kinds = _kinds(table)
    first_target = len(FIXED_COLUMNS)
    heads = []
    for i, (title, kind) in enumerate(zip(header(table), kinds)):
        classes = ["text"] if kind == "text" else []
        if first_target <= i < first_target + len(table.targets) and table.white_box[i - first_target]:
            classes.append("wb")
        attr = f' class="{" ".join(classes)}"' if classes else ""
        heads.append(f'<th data-type="{kind}"{attr}>{e(title)}</th>')
    out = ['<table class="board">', "<thead><tr>" + "".join(heads) + "</tr></thead>", "<tbody>"]
    for row in table.rows:
        cells = []
        for text, value, kind in zip(row_cells(row), _sort_values(row), kinds):
            attr = ' class="text"' if kind == "text" else ""
            cells.append(f'<td{attr} data-v="{e(value)}">{e(text)}</td>')
        attr = ' class="missing"' if row.missing else ""
        out.append(f"<tr{attr}>" + "".join(cells) + "</tr>")
    out += ["</tbody>", "</table>"]
    return out


def leaderboard_html(tables: Sequence[Table]) -> str:
    """The whole leaderboard as one static HTML page (inline CSS and JS, no external resources)."""
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{e(TITLE)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
             f"<h1>{e(TITLE)}</h1>", f"<p>{e(GENERATED)}</p>",
             f'<p class="rule"><strong>Ranking.</strong> {e(RANKING_RULE)}</p>',
             f"<p>{e(UNITS)} Click a column header to sort.</p>"]
    if not tables:
        parts.append("<p>No entries yet.</p>")
    for index, (title, group) in enumerate(_sections(tables)):
        parts += [f'<section id="section-{index}">', f"<h2>{e(title)}</h2>"]
        for table in group:
            parts.append(f"<h3>Source: {e(table.source.id)} ({table.dataset.num_images} images)</h3>")
            parts += _table_html(table)
            parts.append(f'<p><a href="heatmaps/{e(heatmap_name(table))}">heatmap</a></p>')
        parts.append("</section>")
    parts += [f"<script>{_JS}</script>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"
