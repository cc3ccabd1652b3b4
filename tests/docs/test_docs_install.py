"""The `docs` extra (issue 25): ranges in setup.cfg, exact pins in the lock for everything the site's build
pulls in (no already-pinned package moved for it), and it resolves for Python 3.12 as well as 3.11."""

import subprocess
import sys

import pytest

from tests.test_install import LOCK, _index_reachable, _lock, _requirements

#: what sphinx, myst-parser and furo pull in beyond packages the rest of the stack already needs
DOCS_STACK = ("sphinx", "myst-parser", "furo", "docutils", "mdit-py-plugins", "sphinx-basic-ng", "accessible-pygments",
              "beautifulsoup4", "soupsieve", "alabaster", "babel", "imagesize", "roman-numerals", "snowballstemmer",
              "sphinxcontrib-applehelp", "sphinxcontrib-devhelp", "sphinxcontrib-htmlhelp", "sphinxcontrib-jsmath",
              "sphinxcontrib-qthelp", "sphinxcontrib-serializinghtml")


def test_the_docs_extra_is_ranges_pinned_by_the_lock():
    from packaging.requirements import Requirement

    docs = [Requirement(text) for text in _requirements(extras=("docs",))[len(_requirements(extras=())):]]
    assert {r.name for r in docs} == {"sphinx", "myst-parser", "furo"}
    assert all(str(r.specifier) and "==" not in str(r.specifier) for r in docs), "exact pins belong in the lock"
    pins = _lock()
    for requirement in docs:
        assert requirement.specifier.contains(pins[requirement.name], prereleases=True), requirement
    assert [name for name in DOCS_STACK if name not in pins] == []


@pytest.mark.slow
def test_the_docs_extra_resolves_for_python_3_12_with_the_lock(tmp_path):
    if not _index_reachable():
        pytest.skip("the package index cannot be reached from here")
    docs = _requirements(extras=("docs",))[len(_requirements(extras=())):]
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--python-version", "3.12", "--only-binary=:all:", "--target", str(tmp_path / "target"),
               "--disable-pip-version-check", "-c", str(LOCK), *docs]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    errors = [line for line in result.stderr.splitlines() if not line.startswith("WARNING: Location")]
    assert result.returncode == 0, "\n".join(errors[-20:])
