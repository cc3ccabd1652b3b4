"""The embedded generator: deterministic bytes, offline, and readable by the real loaders."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmark.data import DATASETS, build_dataset
from benchmark.data.synthetic import generate, main
from benchmark.errors import ConfigError, DataError

SMALL = {"n_train": 3, "n_val": 4}
SIZES = {"voc": ("synthetic-voc", 120, 160), "cityscapes": ("synthetic-cityscapes", 128, 256)}


def digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection attempt during generation fails the test (textures must come from the wheel)."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("layout", ["voc", "cityscapes"])
def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path, layout):
    first = digest(generate(tmp_path / "a", layout, seed=3, **SMALL))
    second = digest(generate(tmp_path / "b", layout, seed=3, **SMALL))
    other = digest(generate(tmp_path / "c", layout, seed=4, **SMALL))
    assert first == second
    assert len(first) == 2 * 7 + (2 if layout == "voc" else 0)  # image + label per sample (+ split files)
    assert first.keys() == other.keys()
    images = [key for key in first if key.endswith((".jpg", "_leftImg8bit.png"))]
    assert all(first[key] != other[key] for key in images)


def test_val_split_does_not_depend_on_train_size(tmp_path):
    small = digest(generate(tmp_path / "a", "voc", seed=0, n_train=1, n_val=2))
    large = digest(generate(tmp_path / "b", "voc", seed=0, n_train=4, n_val=2))
    assert {k: v for k, v in small.items() if "val" in k} == {k: v for k, v in large.items() if "val" in k}


@pytest.mark.parametrize("layout", ["voc", "cityscapes"])
def test_generated_set_loads_through_the_real_loader(tmp_path, layout):
    name, height, width = SIZES[layout]
    root = generate(tmp_path / layout, layout, seed=0, n_train=2, n_val=24)
    assert len(build_dataset(name, root, split="train")) == 2
    dataset = build_dataset(name, root, split="val")
    num_classes = DATASETS[name].num_classes
    assert len(dataset) == 24
    seen = torch.zeros(num_classes, dtype=torch.long)
    for sample in dataset:
        assert sample["image"].shape == (3, height, width) and sample["label"].shape == (height, width)
        assert 0.0 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1.0
        assert float(sample["image"].std()) > 0.02  # textured, not blank
        label = sample["label"]
        valid = label[label != 255]
        assert valid.numel() > 0.9 * label.numel() and int(valid.min()) >= 0 and int(valid.max()) < num_classes
        seen += torch.bincount(valid, minlength=num_classes)
    assert bool((seen > 0).all()), f"classes never generated: {seen.tolist()}"


def test_voc_layout_labels_are_palette_pngs(tmp_path):
    from PIL import Image

    root = generate(tmp_path / "v", "voc", seed=0, n_train=0, n_val=1)
    with Image.open(root / "SegmentationClass" / "val_00000.png") as label:
        assert label.mode == "P" and label.size == (160, 120)
    with Image.open(root / "JPEGImages" / "val_00000.jpg") as image:
        assert image.format == "JPEG" and image.size == (160, 120)
    assert (root / "ImageSets" / "Segmentation" / "train.txt").read_text() == ""
    assert (root / "ImageSets" / "Segmentation" / "val.txt").read_text() == "val_00000\n"


def test_cityscapes_layout_has_two_cities_per_split(tmp_path):
    root = generate(tmp_path / "c", "cityscapes", seed=0, n_train=2, n_val=2)
    for split in ("train", "val"):
        assert len(list((root / "leftImg8bit" / split).iterdir())) == 2
        assert len(list((root / "gtFine" / split).glob("*/*_gtFine_labelTrainIds.png"))) == 2


def test_refuses_a_non_empty_output_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match=str(tmp_path)):
        generate(tmp_path, "voc", n_train=1, n_val=1)


@pytest.mark.parametrize(("kwargs", "match"), [({"layout": "ade20k"}, "layout"), ({"seed": -1}, "seed"), ({"n_val": 0}, "n_val")])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        generate(tmp_path / "x", **({"layout": "voc"} | kwargs))


def test_cli_main(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "cs"), "--layout", "cityscapes", "--n-train", "1", "--n-val", "1"]) == 0
    assert "synthetic-cityscapes" in capsys.readouterr().out
    assert len(build_dataset("synthetic-cityscapes", tmp_path / "cs")) == 1
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    assert main(["--out", str(tmp_path / "full"), "--layout", "voc"]) == 2
    assert capsys.readouterr().err.startswith("error: output folder")


def test_module_entry_point(tmp_path):
    out = tmp_path / "voc"
    repo = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "benchmark.data.synthetic", "--out", str(out), "--layout", "voc", "--n-train", "1", "--n-val", "1"]
    subprocess.run(command, check=True, cwd=repo, capture_output=True, timeout=120)
    assert len(build_dataset("synthetic-voc", out)) == 1
