"""Human-readable views of one run: Markdown tables (also printed at the end of a run) and PNG heatmaps.

Cells are adversarial mIoU in percent with 2 decimals (files store fractions) and their 95 % interval,
``51.45 [49.90, 53.00]``; with several seeds the value is the seed mean and ``± std`` follows it. The
header gives each target's clean mIoU. A white-box cell (target = a model of the source) is marked,
because transfer results are the black-box cells (pitfalls §14). Then come the attack comparisons
(``*``: the interval of the difference excludes 0), the source x target matrix of every attack when
the run has several sources, each seed's values when it has several seeds, a summary of mIoU, mAcc,
aAcc and success rates, and the achieved perturbation of every attack. ``per_class_metrics.csv`` and
:func:`per_class_table` (printed at the end of a run) give the per-class IoU and accuracy.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

from benchmark.fileio import write_atomic
from benchmark.results.schema import CLEAN, RunResult, SummaryRecord

WHITE_BOX_MARK = "white-box"
DISTINGUISHABLE_MARK = "*"


def pct(value: float | None) -> str:
    """A fraction as a percentage with 2 decimals; ``-`` for None."""
    return "-" if value is None else f"{100.0 * value:.2f}"


def ci_text(ci: Sequence[float] | None) -> str:
    """``[49.90, 53.00]`` (percent) or ``[-]``."""
    return "[-]" if ci is None else f"[{pct(ci[0])}, {pct(ci[1])}]"


def diff_text(value: float) -> str:
    """A difference of fractions in percentage points with a sign: ``-0.47``."""
    return f"{100.0 * value:+.2f}"


def summary_cell(summary: SummaryRecord) -> str:
    """``51.45 [49.90, 53.00]``, or ``51.45 ± 0.30 [49.90, 53.00]`` over several seeds."""
    spread = f" ± {100.0 * summary.miou_std:.2f}" if summary.miou_std is not None else ""
    return f"{pct(summary.miou_mean)}{spread} {ci_text(summary.miou_ci)}"


def results_caption(result: RunResult) -> str:
    """The sentence explaining the tables' units and marks."""
    seeds = (f"mean over seeds {', '.join(map(str, result.seeds))} ± standard deviation, "
             if len(result.seeds) > 1 else f"seed {result.seeds[0]}, ")
    level = f"{100 * result.intervals.level:g} %"
    sources = f"source: {result.sources[0].id}; " if len(result.sources) == 1 else \
        f"sources: {', '.join(result.source_ids)}; "
    return (f"Adversarial mIoU (%, 2 decimals; {seeds}[{level} interval: paired bootstrap over the "
            f"{result.dataset.num_images} images, {result.intervals.resamples} resamples]) of each target (columns) "
            f"under each attack (rows); {sources}dataset: {result.dataset.name}/{result.dataset.split}. Headers "
            f"give the clean mIoU; '{WHITE_BOX_MARK}' marks a target that is a model of the source.")


def _target_header(result: RunResult, target: str, source: str | None) -> str:
    clean = result.metric(target, CLEAN)
    mark = f"{WHITE_BOX_MARK}, " if source is not None and result.is_white_box(target, source) else ""
    return f"{target} ({mark}clean {pct(clean.miou)} {ci_text(clean.miou_ci)})"


def source_table(result: RunResult, source: str) -> list[str]:
    """Rows = attacks, columns = targets, for one source."""
    targets = result.targets
    lines = ["| attack | " + " | ".join(_target_header(result, t, source) for t in targets) + " |",
             "|---|" + "---:|" * len(targets)]
    for attack in result.attack_names:
        cells = [summary_cell(result.summary(t, attack, source)) for t in targets]
        lines.append(f"| {attack} | " + " | ".join(cells) + " |")
    return lines


def comparison_table(result: RunResult, source: str) -> list[str]:
    """Every pair of attacks on every target of one source: difference of mIoU and its interval."""
    rows = [c for c in result.comparisons if c.source == source]
    if not rows:
        return []
    lines = [f"Attack comparisons, source {source}: mIoU of the first attack minus the second, percentage points "
             f"(negative: the first is stronger); {DISTINGUISHABLE_MARK} the interval excludes 0.", "",
             "| target | first | second | difference [interval] |", "|---|---|---|---:|"]
    for c in rows:
        mark = f" {DISTINGUISHABLE_MARK}" if c.distinguishable else ""
        wb = f" ({WHITE_BOX_MARK})" if result.is_white_box(c.target, source) else ""
        lines.append(f"| {c.target}{wb} | {c.first} | {c.second} | {diff_text(c.difference)} "
                     f"[{diff_text(c.ci[0])}, {diff_text(c.ci[1])}]{mark} |")
    return lines


def matrix_table(result: RunResult, attack: str) -> list[str]:
    """Rows = sources, columns = targets, for one attack; white-box cells marked."""
    targets = result.targets
    lines = [f"| {attack}: source \\ target | " + " | ".join(_target_header(result, t, None) for t in targets) + " |",
             "|---|" + "---:|" * len(targets)]
    for source in result.source_ids:
        cells = [summary_cell(result.summary(t, attack, source))
                 + (f" ({WHITE_BOX_MARK})" if result.is_white_box(t, source) else "") for t in targets]
        lines.append(f"| {source} | " + " | ".join(cells) + " |")
    return lines


def seed_table(result: RunResult) -> list[str]:
    """Each seed's mIoU (no interval), rows = (source, attack, seed)."""
    targets = result.targets
    lines = ["| source | attack | seed | " + " | ".join(targets) + " |", "|---|---|---:|" + "---:|" * len(targets)]
    for source in result.source_ids:
        for attack in result.attack_names:
            for seed in result.seeds:
                cells = [pct(result.metric(t, attack, source, seed).miou) for t in targets]
                lines.append(f"| {source} | {attack} | {seed} | " + " | ".join(cells) + " |")
    return lines


def _seed_mean(result: RunResult, target: str, attack: str, source: str, field: str) -> float | None:
    values = [getattr(result.metric(target, attack, source, seed), field) for seed in result.seeds]
    return None if any(v is None for v in values) else sum(values) / len(values)


def summary_metrics_table(result: RunResult) -> list[str]:
    """mIoU, mAcc, aAcc and success rate of every target and condition (attacks: mean over seeds)."""
    lines = ["Summary metrics (%, attacks: mean over seeds): mIoU, mAcc (mean class accuracy), aAcc (pixel "
             "accuracy) and the attack success rate.", "",
             "| target | source | condition | mIoU | mAcc | aAcc | success |", "|---|---|---|---:|---:|---:|---:|"]
    for target in result.targets:
        clean = result.metric(target, CLEAN)
        lines.append(f"| {target} | | clean | {pct(clean.miou)} | {pct(clean.macc)} | {pct(clean.pixel_accuracy)} | - |")
        for source in result.source_ids:
            for attack in result.attack_names:
                cells = [pct(_seed_mean(result, target, attack, source, f))
                         for f in ("miou", "macc", "pixel_accuracy", "success_rate")]
                lines.append(f"| {target} | {source} | {attack} | " + " | ".join(cells) + " |")
    return lines


def perturbation_table(result: RunResult) -> list[str]:
    """The achieved perturbation of every (source, attack): L-inf in 1/255 (mean, max) and mean L2."""
    if not result.perturbation_summaries:
        return []
    lines = ["Achieved perturbation (what the targets saw, over all images and seeds): L-inf in 1/255 units, "
             "L2 in [0, 1] pixel units.", "",
             "| source | attack | mean L-inf | max L-inf | mean L2 |", "|---|---|---:|---:|---:|"]
    for p in result.perturbation_summaries:
        lines.append(f"| {p.source} | {p.condition} | {p.mean_linf_255:.2f} | {p.max_linf_255:.2f} | {p.mean_l2:.3f} |")
    return lines


def per_class_rows(result: RunResult) -> list[dict]:
    """One row per (target, condition, class): the contents of ``per_class_metrics.csv``."""
    rows = []
    for m in result.metrics:
        for k, name in enumerate(result.dataset.class_names):
            rows.append({"target": m.target, "source": m.source or "", "condition": m.condition,
                         "seed": "" if m.seed is None else m.seed, "class_index": k, "class": name,
                         "iou": m.per_class_iou[k], "acc": m.per_class_acc[k] if m.per_class_acc else None})
    return rows


def per_class_table(result: RunResult, full: bool = False) -> str:
    """mmseg's per-class table: IoU and Acc (%) per class, clean and under each attack.

    Compact (default): each target, clean and the attacks of the first source with seed
    ``seeds[0]``. Full: every source and seed."""
    sources = result.source_ids if full else result.source_ids[:1]
    seeds = result.seeds if full else result.seeds[:1]
    out = []
    for target in result.targets:
        records = [result.metric(target, CLEAN)] + [result.metric(target, a, s, seed) for s in sources
                                                    for a in result.attack_names for seed in seeds]
        heads = ["clean" if r.condition == CLEAN else
                 (f"{r.source}/{r.condition}@{r.seed}" if full else r.condition) for r in records]
        out += [f"per-class results of {target} (IoU / Acc, %)", "",
                "| class | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
        for k, name in enumerate(result.dataset.class_names):
            out.append(f"| {name} | " + " | ".join(
                f"{pct(r.per_class_iou[k])} / {pct(r.per_class_acc[k] if r.per_class_acc else None)}" for r in records)
                + " |")
        out.append("")
    return "\n".join(out)


def results_markdown(result: RunResult) -> str:
    """The whole report of one run (see the module docstring)."""
    lines = [results_caption(result), ""]
    several = len(result.sources) > 1
    for source in result.source_ids:
        if several:
            lines += [f"## Source {source}", ""]
        lines += source_table(result, source) + [""]
        comparisons = comparison_table(result, source)
        lines += comparisons + ([""] if comparisons else [])
    if several:
        lines += ["## Source x target matrices", ""]
        for attack in result.attack_names:
            lines += matrix_table(result, attack) + [""]
    if len(result.seeds) > 1:
        lines += ["## Each seed", ""] + seed_table(result) + [""]
    lines += summary_metrics_table(result) + [""]
    perturbations = perturbation_table(result)
    lines += perturbations + ([""] if perturbations else [])
    return "\n".join(lines)


def heatmap_png(path: str | os.PathLike[str], values: Sequence[Sequence[float | None]],
                rows: Sequence[str], cols: Sequence[str], title: str,
                annotations: Sequence[Sequence[str]] | None = None) -> None:
    """Write a PNG heatmap of fractions shown as percentages (None cells blank); ``annotations``
    replaces the default cell text (the value, 2 decimals). Uses the Agg canvas directly (no pyplot
    global state); PNG metadata is dropped so identical input gives identical bytes."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    grid = np.array([[np.nan if v is None else 100.0 * v for v in row] for row in values], dtype=float)
    grid = grid.reshape(len(rows), len(cols))
    tall = annotations is not None and any("\n" in text for row in annotations for text in row)
    # inches: room for the row labels, the cells (wider when they carry intervals), the colorbar
    label_w = 0.065 * max((len(r) for r in rows), default=4)
    col_h = 0.05 * max((len(c) for c in cols), default=4)
    width = 1.4 + label_w + (1.45 if tall else 1.0) * max(len(cols), 1)
    fig = Figure(figsize=(width, 1.5 + col_h + (0.7 if tall else 0.45) * max(len(rows), 1)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=100.0, aspect="auto")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if not np.isnan(grid[i, j]):
                text = annotations[i][j] if annotations is not None else f"{grid[i, j]:.2f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7 if tall else 8,
                        color="white" if grid[i, j] < 50 else "black")
    ax.set_xticks(range(len(cols)), labels=list(cols), rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), labels=list(rows), fontsize=8)
    # titles name dataset, track and source: wrap them to the figure width instead of clipping
    fig.suptitle(textwrap.fill(title, width=max(int(width * 100 / 6.5), 30)), fontsize=9)
    fig.colorbar(image, ax=ax, label="adversarial mIoU (%)")
    fig.tight_layout()
    write_atomic(path, lambda handle: fig.savefig(handle, format="png", metadata={"Software": None}))


def _annotation(summary: SummaryRecord) -> str:
    return f"{pct(summary.miou_mean)}\n{ci_text(summary.miou_ci)}"


def results_heatmap(result: RunResult, path: str | os.PathLike[str], source: str | None = None) -> None:
    """PNG heatmap of one source's table: attacks x targets, cells annotated with their intervals."""
    source = result.source.id if source is None else source
    cols = [f"{t} ({WHITE_BOX_MARK})" if result.is_white_box(t, source) else t for t in result.targets]
    summaries = [[result.summary(t, a, source) for t in result.targets] for a in result.attack_names]
    heatmap_png(path, [[s.miou_mean for s in row] for row in summaries], list(result.attack_names), cols,
                f"Adversarial mIoU (%) [95 % interval], source {source}, {result.dataset.name}",
                annotations=[[_annotation(s) for s in row] for row in summaries])


def matrix_heatmap(result: RunResult, attack: str, path: str | os.PathLike[str]) -> None:
    """PNG heatmap of one attack's source x target matrix, white-box cells marked."""
    summaries = [[result.summary(t, attack, s) for t in result.targets] for s in result.source_ids]
    notes = [[_annotation(summary) + ("\nwhite-box" if result.is_white_box(t, s) else "")
              for t, summary in zip(result.targets, row)] for s, row in zip(result.source_ids, summaries)]
    heatmap_png(path, [[s.miou_mean for s in row] for row in summaries], list(result.source_ids),
                list(result.targets), f"{attack}: adversarial mIoU (%) [95 % interval], source x target, "
                f"{result.dataset.name}", annotations=notes)


def write_per_class_csv(result: RunResult, path: str | os.PathLike[str]) -> None:
    """``per_class_metrics.csv``: target, source, condition, seed, class index and name, IoU, Acc (fractions)."""
    import csv
    import io

    rows = per_class_rows(result)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    write_atomic(path, lambda handle: handle.write(text.getvalue().encode("utf-8")))


def write_reports(result: RunResult, out_dir: str | os.PathLike[str]) -> tuple[str, list[Path]]:
    """Write ``results.md``, ``per_class_metrics.csv`` and the heatmaps into ``out_dir``; return (the
    Markdown, heatmap paths).

    One source: ``heatmap.png``. Several: ``heatmap_<source>.png`` per source and
    ``matrix_<attack>.png`` per attack. Each file is written atomically (the old one or the whole new one)."""
    out = Path(out_dir)
    text = results_markdown(result)
    write_atomic(out / "results.md", lambda handle: handle.write(text.encode("utf-8")))
    write_per_class_csv(result, out / "per_class_metrics.csv")
    paths = []
    if len(result.sources) == 1:
        results_heatmap(result, out / "heatmap.png")
        paths.append(out / "heatmap.png")
    else:
        for source in result.source_ids:
            results_heatmap(result, out / f"heatmap_{source}.png", source)
            paths.append(out / f"heatmap_{source}.png")
        for attack in result.attack_names:
            matrix_heatmap(result, attack, out / f"matrix_{attack}.png")
            paths.append(out / f"matrix_{attack}.png")
    return text, paths
