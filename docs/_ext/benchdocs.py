"""Sphinx extension: write ``docs/_generated/`` from the code before the pages are read.

The generator (``generate.py`` beside this file) runs in a fresh interpreter with a fixed terminal
width and without the ``WANDB_*`` variables (they are defaults of ``benchmark run --help``), so the
generated text depends on the code only, not on the builder's environment, and the Lightning imports of
``benchmark run --help`` stay out of the Sphinx process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sphinx.errors import ExtensionError

HERE = Path(__file__).resolve().parent


def generate(app, config) -> None:
    out = Path(app.srcdir) / "_generated"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "BENCHMARK_"))}
    env.update(COLUMNS="100", LINES="50", BENCHMARK_HELP_CACHE="0", PYTHONHASHSEED="0")
    done = subprocess.run([sys.executable, str(HERE / "generate.py"), str(out)], cwd=HERE.parents[1], env=env,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-15:])
        raise ExtensionError(f"docs/_ext/generate.py failed (exit {done.returncode}):\n{tail}")


#: ``|x|`` outside an inline literal: in a docstring it means an absolute value (``mean(|grad|)``), which
#: reStructuredText would read as an undefined substitution
_BARS = re.compile(r"(?<![\\|])\|([^|`\s][^|`]*?)\|(?![|_])")
_LITERAL = re.compile(r"(``.+?``)")


def escape_bars(app, what, name, obj, options, lines) -> None:
    """Docstrings use ``|x|`` for absolute values: escape the bars outside inline literals and literal
    blocks (the indented lines after a ``::``)."""
    block_indent = None  # the indent of the line that opened a literal block
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if block_indent is not None and line.strip() and indent <= block_indent:
            block_indent = None
        if block_indent is None and "|" in line and not line.lstrip().startswith(("|", "+")):
            parts = _LITERAL.split(line)
            lines[i] = "".join(p if p.startswith("``") else _BARS.sub(r"\\|\1\\|", p) for p in parts)
        if block_indent is None and line.rstrip().endswith("::"):
            block_indent = indent


def setup(app):
    app.connect("config-inited", generate)
    app.connect("autodoc-process-docstring", escape_bars)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
