"""The model zoo as data: required entries, strict reading, the `benchmark models` listing."""

import os
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


OFFICIAL = sorted(name for name, entry in ZOO.items() if entry.url)


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_entries_agree_with_mmsegs_metafiles(name):
    from benchmark.models.metafiles import drift, record_for

    entry = ZOO[name]
    assert drift(entry) == []
    record = record_for(entry)
    assert entry.checkpoint == f"checkpoints/{record.weights.rsplit('/', 1)[-1]}"


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_crop_size_is_the_configs_own(name):
    from mmengine.config import Config

    from benchmark.models.mmseg_adapter import mmseg_config_dir

    entry = ZOO[name]
    cfg = Config.fromfile(str(mmseg_config_dir() / entry.config))
    assert tuple(cfg.crop_size) == entry.crop_size


def test_drift_is_reported_for_every_field():
    from dataclasses import replace

    from benchmark.models.metafiles import drift

    entry = ZOO["pspnet-r50-voc"]
    drifted = replace(entry, url=entry.url.replace("ed5dfbd9", "00000000"), published_miou=0.5, crop_size=(1, 1),
                      dataset="cityscapes")
    problems = drift(drifted)
    assert [p.split(":")[1].split()[0] for p in problems] == ["url", "published_miou", "dataset", "crop_size"]
    assert drift(replace(entry, config="pspnet/no_such_config.py")) == [
        "model 'pspnet-r50-voc': config pspnet/no_such_config.py has no record in mmseg's metafiles"]


def test_models_check_and_from_metafile_commands():
    check = subprocess.run([sys.executable, "-m", "benchmark.cli", "models", "--check"], capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 0 and check.stdout.endswith(
        f"{len(OFFICIAL)} official entries checked against mmseg's metafiles: 0 differences\n")
    made = subprocess.run([sys.executable, "-m", "benchmark.cli", "models", "--from-metafile",
                           ZOO["pspnet-r50-voc"].config], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0
    import yaml

    ((_, body),) = yaml.safe_load(made.stdout).items()
    entry = ZOO["pspnet-r50-voc"]
    assert body == {"config": entry.config, "dataset": entry.dataset, "checkpoint": entry.checkpoint,
                    "url": entry.url, "sha256": None, "published_miou": entry.published_miou,
                    "crop_size": list(entry.crop_size)}


def test_checkpoint_dir_moves_downloaded_checkpoints_only(tmp_path, monkeypatch):
    official = ZOO["pspnet-r50-voc"]
    committed = next(entry for entry in ZOO.values() if not entry.url)
    before = committed.checkpoint_path
    monkeypatch.setenv("BENCHMARK_CHECKPOINT_DIR", str(tmp_path))
    assert official.checkpoint_path == tmp_path / "pspnet_r50-d8_512x512_20k_voc12aug_20200617_101958-ed5dfbd9.pth"
    assert committed.checkpoint_path == before and before.is_file()
    (tmp_path / official.checkpoint_path.name).write_bytes(b"x")
    result = subprocess.run([sys.executable, "-m", "benchmark.cli", "models", "--dataset", "voc2012"],
                            capture_output=True, text=True, timeout=120, env={**os.environ})
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "present" in listed["pspnet-r50-voc"] and "missing" in listed["pspnet-r101-voc"]
