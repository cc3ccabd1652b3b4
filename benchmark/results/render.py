"""Leaderboard pages from ranked tables: Markdown and one self-contained static HTML file.

Both show mIoU in percent with 2 decimals and intervals, one section per (dataset, track) and one
table per source in it, the ranking rule, and each target's clean mIoU in its column header. A
"white-box" mean column appears only for ensemble sources (for one source model it would repeat that
model's column), an "origin" column only in a table with an entry that used users' code (a plugin attack
or a factory-built model: its import spec and version; "built-in" for the others). The HTML page embeds
its heatmaps (data URIs) and a small script that sorts a table when a header is clicked (shown by an
arrow and ``aria-sort``), keeping entries that lack a target below the complete ones under every sort;
each attack cell opens a disclosure with the entry's settings, hash, metadata and a link to its JSON
file. It loads nothing from elsewhere.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from benchmark.results.info import BUILT_IN
from benchmark.results.ranking import RANKING_RULE, Row, Table
from benchmark.results.report import WHITE_BOX_MARK, ci_text, diff_text, pct

TITLE = "TranSegPGD Bench leaderboard"
GENERATED = "Generated from the leaderboard entries by `benchmark leaderboard build`; never edit by hand."
UNITS = ("mIoU values are percentages with 2 decimals, [95 % interval]; '-' marks a target the entry lacks; "
         "'vs next' is the difference from the next rank's black-box mean, in points, with its interval.")
TIED = "not distinguishable"


def heatmap_name(table: Table) -> str:
    """File name of a table's heatmap inside ``heatmaps/``."""
    return table.key.replace("/", "__") + ".png"


def has_whitebox_column(table: Table) -> bool:
    """A white-box mean column only for an ensemble source (several white-box targets)."""
    return len(table.source.models) > 1


def has_origin_column(table: Table) -> bool:
    """An origin column only when an entry of the table used users' code (pages of built-in entries
    stay as they were)."""
    return any(row.origin != BUILT_IN for row in table.rows)


def _clean_text(low: float, high: float) -> str:
    return f"clean {pct(low)}" if pct(low) == pct(high) else f"clean {pct(low)}-{pct(high)}"


def target_headers(table: Table) -> list[str]:
    """``<target> (white-box, clean 75.12)`` / ``<target> (clean 60.00)`` per target column."""
    out = []
    for t, wb, (low, high) in zip(table.targets, table.white_box, table.clean):
        out.append(f"{t} ({WHITE_BOX_MARK + ', ' if wb else ''}{_clean_text(low, high)})")
    return out


def _columns(table: Table) -> list[tuple[str, str]]:
    """(title, sort type) of every column."""
    fixed = [("rank", "num"), ("attack", "text"), ("black-box mean", "num"), ("vs next", "text")]
    if has_whitebox_column(table):
        fixed.append(("white-box mean", "num"))
    origin = [("origin", "text")] if has_origin_column(table) else []
    return [*fixed, *((title, "num") for title in target_headers(table)), ("missing", "text"), ("reference", "text"),
            *origin, ("seeds", "text"), ("settings", "text"), ("entry", "text")]


def header(table: Table) -> list[str]:
    """Column titles of a table."""
    return [title for title, _ in _columns(table)]


def next_text(row: Row) -> str:
    """``not distinguishable [-1.33, +0.20]``, ``[-2.10, -0.30]``, or ``-``."""
    if row.next_difference is None:
        return "-"
    low, high = row.next_difference
    interval = f"[{diff_text(low)}, {diff_text(high)}]"
    return f"{TIED} {interval}" if row.tied_with_next else interval


def reference_text(row: Row) -> str:
    """``authors, venue date`` (or the paper) from the entry's metadata; empty without."""
    m = row.metadata
    if m is None:
        return ""
    parts = [p for p in (m.authors, " ".join(x for x in (m.venue, m.date) if x)) if p]
    return ", ".join(parts) or (m.paper or "")


def row_cells(row: Row, table: Table) -> list[str]:
    """Displayed cells of a row, aligned with :func:`header`."""
    rank = f"{row.rank}" + (" (missing)" if row.missing else "")
    mean = pct(row.blackbox_mean) + (f" {ci_text(row.blackbox_ci)}" if row.blackbox_ci else "")
    white = [pct(row.whitebox)] if has_whitebox_column(table) else []
    origin = [row.origin] if has_origin_column(table) else []
    return [rank, row.attack, mean, next_text(row), *white, *(pct(v) for v in row.cells), ", ".join(row.missing),
            reference_text(row), *origin, ",".join(map(str, row.seeds)), row.settings_hash, row.entry_id]


def _sort_values(row: Row, table: Table) -> list[str]:
    """Exact values the script sorts by ('' for none), aligned with :func:`header`."""
    def num(v: float | int | None) -> str:
        return "" if v is None else repr(v)
    low = "" if row.next_difference is None else repr(row.next_difference[0])
    white = [num(row.whitebox)] if has_whitebox_column(table) else []
    origin = [row.origin] if has_origin_column(table) else []
    return [num(row.rank), row.attack, num(row.blackbox_mean), low, *white, *(num(v) for v in row.cells),
            ", ".join(row.missing), reference_text(row), *origin, ",".join(map(str, row.seeds)), row.settings_hash,
            row.entry_id]


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
            columns = _columns(table)
            lines += [f"### Source: {table.source.id} ({table.dataset.num_images} images)", "",
                      "| " + " | ".join(title for title, _ in columns) + " |",
                      "|" + "".join("---|" if kind == "text" else "---:|" for _, kind in columns)]
            lines += ["| " + " | ".join(row_cells(r, table)) + " |" for r in table.rows]
            lines += ["", f"Heatmap: heatmaps/{heatmap_name(table)}", ""]
    return "\n".join(lines)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
th,td{border:1px solid #bbb;padding:0.25em 0.6em;text-align:right;vertical-align:top}
td.text,th.text{text-align:left}
th{background:#eee;cursor:pointer;user-select:none}
th .arrow{color:#555;margin-left:0.3em}
th.wb{background:#fde9c8}
tr.missing td{color:#777}
details table{margin:0.3em 0;font-size:90%}
p.rule{max-width:60em}
img.heatmap{max-width:100%}"""

# Sorts a table by the clicked column; entries lacking a target (data-group 1, 2) stay below complete
# ones whatever the column and direction. The arrow and aria-sort show the active column and order.
_JS = """document.querySelectorAll("table.board").forEach(function(table){
  var heads = table.querySelectorAll("thead th");
  heads.forEach(function(th, col){
    th.addEventListener("click", function(){
      var asc = th.getAttribute("aria-sort") !== "ascending";
      heads.forEach(function(other){ other.setAttribute("aria-sort", "none"); """ \
    """other.querySelector(".arrow").textContent = ""; });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      th.querySelector(".arrow").textContent = asc ? "\\u25B2" : "\\u25BC";
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(r){ var v = r.cells[col].dataset.v; return v === "" ? null : v; }
      rows.sort(function(a, b){
        var g = Number(a.dataset.group) - Number(b.dataset.group);
        if (g !== 0) { return g; }
        var x = key(a), y = key(b);
        if (x === null || y === null) { return (x === null) - (y === null); }
        var c = th.dataset.type === "num" ? Number(x) - Number(y) : (x < y ? -1 : x > y ? 1 : 0);
        return asc ? c : -c;
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});"""


def _details(row: Row) -> str:
    """The attack cell: its name, opening the entry's settings, hash, metadata and JSON link."""
    e = html.escape
    settings = "".join(f"<tr><td class=\"text\">{e(str(k))}</td><td class=\"text\">{e(json.dumps(v))}</td></tr>"
                       for k, v in sorted(row.settings.items()))
    meta = ""
    if row.metadata is not None:
        items = []
        for label, value in (("paper", row.metadata.paper), ("authors", row.metadata.authors),
                             ("venue", row.metadata.venue), ("date", row.metadata.date), ("code", row.metadata.code)):
            if value:
                shown = (f'<a href="{e(value)}">{e(value)}</a>' if value.startswith(("http://", "https://"))
                         else e(value))
                items.append(f"<li>{label}: {shown}</li>")
        meta = f"<ul>{''.join(items)}</ul>"
    return (f"<details><summary>{e(row.attack)}</summary>{meta}<table>{settings}</table>"
            f"<p>settings hash {e(row.settings_hash)}; entry "
            f'<a href="entries/{e(row.entry_path)}">{e(row.entry_id)} (JSON)</a></p></details>')


def _table_html(table: Table) -> list[str]:
    e = html.escape
    columns = _columns(table)
    first_target = header(table).index(target_headers(table)[0]) if table.targets else len(columns)
    heads = []
    for i, (title, kind) in enumerate(columns):
        classes = ["text"] if kind == "text" else []
        if first_target <= i < first_target + len(table.targets) and table.white_box[i - first_target]:
            classes.append("wb")
        attr = f' class="{" ".join(classes)}"' if classes else ""
        heads.append(f'<th data-type="{kind}" aria-sort="none" scope="col"{attr}>{e(title)}'
                     f'<span class="arrow"></span></th>')
    out = ['<table class="board">', "<thead><tr>" + "".join(heads) + "</tr></thead>", "<tbody>"]
    for row in table.rows:
        group = 2 if row.blackbox_mean is None else (1 if row.missing else 0)
        cells = []
        for index, (text, value, (_, kind)) in enumerate(zip(row_cells(row, table), _sort_values(row, table), columns)):
            attr = ' class="text"' if kind == "text" else ""
            shown = _details(row) if index == 1 else e(text)
            cells.append(f'<td{attr} data-v="{e(value)}">{shown}</td>')
        attr = ' class="missing"' if row.missing else ""
        out.append(f'<tr data-group="{group}"{attr}>' + "".join(cells) + "</tr>")
    out += ["</tbody>", "</table>"]
    return out


def _plain(text: str) -> str:
    """``text`` as HTML, with Markdown ``code`` spans as <code> (no Markdown syntax on the page)."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def leaderboard_html(tables: Sequence[Table], heatmaps: Mapping[str, Path] | None = None) -> str:
    """The whole leaderboard as one static HTML page (inline CSS, JS and heatmaps; nothing external).

    ``heatmaps``: table key -> PNG file to embed (missing: no image for that table)."""
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{e(TITLE)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
             f"<h1>{e(TITLE)}</h1>", f"<p>{_plain(GENERATED)}</p>",
             f'<p class="rule"><strong>Ranking.</strong> {e(RANKING_RULE)}</p>',
             f"<p>{e(UNITS)} Click a column header to sort; click an attack for its settings.</p>"]
    if not tables:
        parts.append("<p>No entries yet.</p>")
    for index, (title, group) in enumerate(_sections(tables)):
        parts += [f'<section id="section-{index}">', f"<h2>{e(title)}</h2>"]
        for table in group:
            parts.append(f"<h3>Source: {e(table.source.id)} ({table.dataset.num_images} images)</h3>")
            parts += _table_html(table)
            png = (heatmaps or {}).get(table.key)
            if png is not None and Path(png).is_file():
                data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
                parts.append(f'<p><img class="heatmap" alt="heatmap of {e(table.key)}" '
                             f'src="data:image/png;base64,{data}"></p>')
        parts.append("</section>")
    parts += [f"<script>{_JS}</script>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"
