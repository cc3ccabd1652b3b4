"""Sphinx configuration of the documentation site (``make docs``; built with warnings as errors by
``tests/docs/test_site.py``). Markdown through MyST, the furo theme; the reference tables are
generated from the code at every build by ``_ext/benchdocs.py`` into ``_generated/`` (git-ignored)."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))

import benchmark  # noqa: E402

project = "TranSegPGD Bench"
author = "TranSegPGD Bench contributors"
copyright = "the TranSegPGD Bench contributors, Apache-2.0"  # noqa: A001
release = version = benchmark.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "benchdocs"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "_ext", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 4

autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = f"TranSegPGD Bench {release}"
html_static_path = []
html_show_sourcelink = False
html_copy_source = False
# Nothing at view time comes from the network: furo's own assets are local; no external fonts.
html_theme_options = {"navigation_with_keys": True}
