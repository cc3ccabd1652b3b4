"""Packaging: ranges that keep a user's torch, a lock file for the reproducible set-up, Python 3.12 resolution."""

import configparser
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "configs" / "constraints.txt"
INDEX_HOST = "pypi.org"


def _setup_cfg():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip() and not line.strip().startswith("#")]


def _requirements(extras=("lite", "test")) -> list[str]:
    cfg = _setup_cfg()
    requirements = _lines(cfg["options"]["install_requires"])
    for extra in extras:
        requirements += _lines(cfg["options.extras_require"][extra])
    return requirements


def _lock() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_requirements_are_ranges_that_keep_an_existing_torch():
    requirements = _requirements(extras=())
    assert "torch>=2.1" in requirements
    assert not [r for r in requirements if "==" in r], "exact pins belong in configs/constraints.txt"
    assert not [r for r in requirements if r.startswith(("mmcv", "torchvision"))]  # mmcv: the user's choice
    assert _setup_cfg()["options"]["python_requires"] == ">=3.10,<3.14"


def test_lock_pins_every_requirement_and_satisfies_its_range():
    from packaging.requirements import Requirement

    pins = _lock()
    for text in _requirements():
        requirement = Requirement(text)
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in {LOCK.name}"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} vs {text}"
    assert pins["torch"] == "2.13.0"


def test_lock_matches_the_environment_make_built():
    """The lock is what `make` installs: the repository's .venv holds exactly those versions."""
    from importlib.metadata import version

    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip("runs in the environment `make test` builds (.venv)")
    installed = {name: re.sub(r"\+.*", "", version(name)) for name in _lock()}
    assert {name: v for name, v in installed.items() if v != _lock()[name]} == {}


def _index_reachable() -> bool:
    try:
        socket.create_connection((INDEX_HOST, 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_dependencies_resolve_for_python_3_12_without_installing(tmp_path):
    if not _index_reachable():
        pytest.skip(f"the package index ({INDEX_HOST}) cannot be reached from here")
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--python-version", "3.12", "--only-binary=:all:", "--target", str(tmp_path / "target"),
               "--disable-pip-version-check", "-c", str(LOCK), *_requirements()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    errors = [line for line in result.stderr.splitlines() if not line.startswith("WARNING: Location")]
    assert result.returncode == 0, "\n".join(errors[-20:])
