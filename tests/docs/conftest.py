"""The documentation site, built once per test session with warnings as errors (``sphinx-build -W``)."""

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: folders of docs/ that hold no pages
NOT_PAGES = ("_build", "_generated", "_ext")


def page_sources() -> list[Path]:
    """Every page of the site: the Markdown files of docs/, relative to it."""
    return sorted(p.relative_to(DOCS) for p in DOCS.rglob("*.md") if p.relative_to(DOCS).parts[0] not in NOT_PAGES)


@dataclass(frozen=True)
class Site:
    html: Path  # the built site
    returncode: int
    output: str  # sphinx-build's stdout and stderr
    seconds: float


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Site:
    for module in ("sphinx", "myst_parser", "furo"):
        pytest.importorskip(module, reason=f"{module} is not installed (the `docs` extra: pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           "-d", str(out / ".doctrees"), str(DOCS), str(out / "html")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    return Site(out / "html", done.returncode, done.stdout + done.stderr, time.perf_counter() - start)


@pytest.fixture(scope="session")
def built(site) -> Path:
    """The built site's folder; fails (once per test) when the build did."""
    assert site.returncode == 0, f"sphinx-build -W failed:\n{site.output[-4000:]}"
    return site.html
