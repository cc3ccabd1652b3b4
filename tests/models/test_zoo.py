"""The model zoo as data: required entries, strict reading, the `benchmark models` listing."""

import subprocess
import sys

import pytest

from benchmark.errors import ConfigError
from benchmark.models.zoo import load_zoo

ZOO = load_zoo()


@pytest.mark.parametrize("name", [
    "pspnet-r50-voc", "pspnet-r101-voc", "deeplabv3-r50-voc", "deeplabv3-r101-voc",
    "pspnet-r50-cityscapes", "pspnet-r101-cityscapes", "deeplabv3-r50-cityscapes", "deeplabv3-r101-cityscapes",
    "deeplabv3plus-r50-voc", "fcn-r50-cityscapes", "upernet-r50-voc", "segformer-b0-cityscapes",
])
def test_paper_models_are_in_the_zoo(name):
    entry = ZOO[name]
    assert entry.checkpoint.startswith("checkpoints/")
    assert entry.url and entry.sha256_prefix and len(entry.sha256_prefix) == 8
    assert 0.3 < entry.published_miou < 1.0  # a fraction, not a percentage


def test_zoo_is_read_only():
    with pytest.raises(TypeError):
        ZOO["x"] = ZOO["pspnet-r50-voc"]


def _write(tmp_path, name, text):
    (tmp_path / name).write_text(text)


def test_duplicate_names_across_files_are_rejected(tmp_path):
    body = "m:\n  config: a.py\n  dataset: voc2012\n  checkpoint: checkpoints/m.pth\n"
    _write(tmp_path, "a.yaml", body)
    _write(tmp_path, "b.yaml", body)
    with pytest.raises(ConfigError, match="'m' is already defined"):
        load_zoo(tmp_path)


def test_unknown_keys_and_bad_checksums_are_rejected(tmp_path):
    _write(tmp_path, "a.yaml", "m:\n  config: a.py\n  dataset: voc2012\n  checkpoint: c.pth\n  colour: red\n")
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        load_zoo(tmp_path)
    _write(tmp_path, "a.yaml", "m:\n  config: a.py\n  dataset: voc2012\n  checkpoint: c.pth\n  sha256: abc\n")
    with pytest.raises(ConfigError, match="sha256"):
        load_zoo(tmp_path)


def test_models_command_lists_every_entry_with_its_checkpoint_state():
    result = subprocess.run([sys.executable, "-m", "benchmark.cli", "models"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    listed = {line.split()[0]: line for line in lines[1:]}
    assert set(listed) == set(ZOO)
    for name, entry in ZOO.items():
        assert ("present" if entry.checkpoint_path.is_file() else "missing") in listed[name]


def test_unknown_model_is_one_line_and_nonzero_exit():
    result = subprocess.run([sys.executable, "-m", "benchmark.cli", "fetch-checkpoint", "no-such-model"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown model 'no-such-model'") and result.stderr.count("\n") == 1
