"""Fixtures for the results tests."""

from __future__ import annotations

import pytest

from tests.results.results_factory import build_result


@pytest.fixture
def make_result():
    return build_result


@pytest.fixture
def wandb_dirs(tmp_path, monkeypatch):
    """Every W&B directory under tmp_path, offline."""
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        path = tmp_path / var.lower()
        path.mkdir()
        monkeypatch.setenv(var, str(path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    return tmp_path
