"""Human-readable views of one run: a Markdown table and a PNG heatmap (attacks x targets).

Cells are adversarial mIoU in percent with 2 decimals (files store fractions); the header gives each
target's clean mIoU. The white-box column (target = a source model) is marked, because transfer
results are the black-box columns (pitfalls §14).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

from benchmark.results.schema import CLEAN, RunResult

WHITE_BOX_MARK = "white-box"


def pct(value: float | None) -> str:
    """A fraction as a percentage with 2 decimals; ``-`` for None."""
    return "-" if value is None else f"{100.0 * value:.2f}"


def results_caption(result: RunResult) -> str:
    """The sentence explaining the table's units and marks."""
    return (f"Adversarial mIoU (%, 2 decimals) of each target (columns) under each attack (rows); "
            f"source: {result.source.id}; dataset: {result.dataset.name}/{result.dataset.split}, "
            f"{result.dataset.num_images} images. Headers give the clean mIoU (%); "
            f"'{WHITE_BOX_MARK}' marks a target that is the source.")


def _target_header(result: RunResult, target: str) -> str:
    clean = pct(result.metric(target, CLEAN).miou)
    mark = f"{WHITE_BOX_MARK}, " if result.is_white_box(target) else ""
    return f"{target} ({mark}clean {clean})"


def results_markdown(result: RunResult) -> str:
    """Markdown: caption line, then a table with rows = attacks (result order), columns = targets."""
    targets = result.targets
    lines = [results_caption(result), "",
             "| attack | " + " | ".join(_target_header(result, t) for t in targets) + " |",
             "|---|" + "---:|" * len(targets)]
    for attack in result.attacks:
        cells = [pct(result.metric(t, attack.name).miou) for t in targets]
        lines.append(f"| {attack.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def heatmap_png(path: str | os.PathLike[str], values: Sequence[Sequence[float | None]],
                rows: Sequence[str], cols: Sequence[str], title: str) -> None:
    """Write a PNG heatmap of fractions shown as percentages (None cells blank). Uses the Agg canvas
    directly (no pyplot global state); PNG metadata is dropped so identical input gives identical
    bytes with the same matplotlib."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    grid = np.array([[np.nan if v is None else 100.0 * v for v in row] for row in values], dtype=float)
    grid = grid.reshape(len(rows), len(cols))
    fig = Figure(figsize=(1.6 + 1.1 * max(len(cols), 1), 1.2 + 0.45 * max(len(rows), 1)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=100.0, aspect="auto")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if grid[i, j] < 50 else "black")
    ax.set_xticks(range(len(cols)), labels=list(cols), rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), labels=list(rows), fontsize=8)
    # titles name dataset, track and source: wrap them to the figure width instead of clipping
    width_chars = int(fig.get_figwidth() * 100 / 7.5)
    ax.set_title(textwrap.fill(title, width=max(width_chars, 30)), fontsize=9)
    fig.colorbar(image, ax=ax, label="adversarial mIoU (%)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})


def results_heatmap(result: RunResult, path: str | os.PathLike[str]) -> None:
    """PNG heatmap of the :func:`results_markdown` matrix (adversarial mIoU %, attacks x targets)."""
    cols = [f"{t} ({WHITE_BOX_MARK})" if result.is_white_box(t) else t for t in result.targets]
    values = [[result.metric(t, a.name).miou for t in result.targets] for a in result.attacks]
    heatmap_png(path, values, [a.name for a in result.attacks], cols,
                f"Adversarial mIoU (%), source {result.source.id}, {result.dataset.name}")
