"""Every loader reads a tiny tree written in its real layout and yields the documented sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.data import (
    DATASETS,
    ADE20KSegmentation,
    CityscapesSegmentation,
    VOCSegmentation,
    build_dataset,
)
from benchmark.data.files import mmseg_rescale_size
from tests.data.trees import label_grid, save_png, write_ade20k, write_cityscapes, write_voc


def assert_sample_contract(sample: dict, height: int, width: int) -> None:
    assert set(sample) == {"image", "label", "name"}
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (3, height, width)
    assert sample["label"].dtype == torch.int64 and sample["label"].shape == (height, width)
    assert 0.0 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1.0
    assert isinstance(sample["name"], str)


def test_voc_reads_palette_indices_not_colours(tmp_path):
    labels = {"2007_000033": label_grid(23, 37, [0, 1, 15, 255]), "2007_000042": label_grid(23, 37, [20, 0])}
    write_voc(tmp_path, labels, colour=(255, 0, 0))
    dataset = VOCSegmentation(tmp_path, split="val")
    assert len(dataset) == 2 and dataset.info.num_classes == 21
    first = dataset[0]
    assert_sample_contract(first, 23, 37)
    assert first["name"] == "2007_000033"
    assert torch.equal(first["label"], torch.from_numpy(labels["2007_000033"].astype(np.int64)))
    red = first["image"].mean(dim=(1, 2))  # a solid red JPEG stays red within compression error
    assert red[0] > 0.95 and red[1] < 0.05 and red[2] < 0.05
    assert dataset[1]["name"] == "2007_000042"


def test_voc_keeps_split_file_order_and_limit(tmp_path):
    write_voc(tmp_path, {name: label_grid(8, 8, [0]) for name in ("b", "c", "a")})
    assert [s.name for s in VOCSegmentation(tmp_path).samples] == ["b", "c", "a"]
    assert [s.name for s in build_dataset("voc2012", tmp_path, limit=2).samples] == ["b", "c"]


def test_voc_segmentation_class_aug_is_an_option(tmp_path):
    write_voc(tmp_path, {"x": label_grid(6, 9, [0])})
    save_png(tmp_path / "SegmentationClassAug" / "x.png", label_grid(6, 9, [3, 255]), "L")
    label = build_dataset("voc2012", tmp_path, label_dir="SegmentationClassAug")[0]["label"]
    assert set(label.unique().tolist()) == {3, 255}


def test_cityscapes_reads_train_ids_sorted_across_cities(tmp_path):
    labels = {
        "lindau_000001_000019": label_grid(10, 20, [0, 18, 255]),
        "frankfurt_000000_000294": label_grid(10, 20, [13]),
        "frankfurt_000000_000576": label_grid(10, 20, [10, 11]),
    }
    write_cityscapes(tmp_path, labels)
    dataset = CityscapesSegmentation(tmp_path)
    assert [dataset[i]["name"] for i in range(3)] == sorted(labels)
    sample = dataset[2]
    assert_sample_contract(sample, 10, 20)
    assert torch.equal(sample["label"], torch.from_numpy(labels["lindau_000001_000019"].astype(np.int64)))
    assert float(sample["image"][2].mean()) == 1.0 and float(sample["image"][:2].max()) == 0.0  # lossless PNG


def test_cityscapes_converts_label_ids_with_the_official_table(tmp_path):
    # Public Cityscapes facts: road 7->0, sidewalk 8->1, car 26->13, unlabeled 0->255, bicycle 33->18,
    # person 24->11, parking 9->255, sky 23->10, building 11->2, train 31->16.
    ids = np.array([[7, 8, 26, 0, 33], [24, 9, 23, 11, 31]], dtype=np.uint8)
    expected = np.array([[0, 1, 13, 255, 18], [11, 255, 10, 2, 16]], dtype=np.int64)
    write_cityscapes(tmp_path, {"aachen_000000_000019": ids}, suffix="_gtFine_labelIds.png")
    label = build_dataset("cityscapes", tmp_path)[0]["label"]
    assert torch.equal(label, torch.from_numpy(expected))


def test_ade20k_reduces_zero_label(tmp_path):
    stored = np.array([[0, 1, 150], [255, 13, 2]], dtype=np.uint8)
    expected = np.array([[255, 0, 149], [255, 12, 1]], dtype=np.int64)
    write_ade20k(tmp_path, {"ADE_val_00000002": stored, "ADE_val_00000001": label_grid(2, 3, [1])})
    dataset = ADE20KSegmentation(tmp_path, split="val")
    assert dataset.info.num_classes == 150 and len(dataset) == 2
    assert dataset[0]["name"] == "ADE_val_00000001"
    sample = dataset[1]
    assert_sample_contract(sample, 2, 3)
    assert torch.equal(sample["label"], torch.from_numpy(expected))


@pytest.mark.parametrize(
    ("width", "height", "scale", "expected"),
    [
        (500, 375, (2048, 512), (683, 512)),  # VOC landscape: short side to 512 (500 * 512 / 375 = 682.7)
        (375, 500, (2048, 512), (512, 683)),  # portrait
        (2048, 1024, (2048, 1024), (2048, 1024)),  # native Cityscapes is unchanged
        (4000, 600, (2048, 512), (2048, 307)),  # long side binds: 600 * 2048 / 4000 = 307.2
    ],
)
def test_mmseg_rescale_size(width, height, scale, expected):
    assert mmseg_rescale_size(width, height, scale) == expected


def test_mmseg_resize_changes_the_image_only(tmp_path):
    write_voc(tmp_path, {"x": label_grid(30, 50, [0, 1])}, colour=(0, 255, 0))
    native = build_dataset("voc2012", tmp_path)[0]
    resized = build_dataset("voc2012", tmp_path, resize="mmseg")[0]
    assert resized["image"].shape == (3, 512, 853)  # 50 * 512 / 30 = 853.3
    assert torch.equal(resized["label"], native["label"]) and resized["label"].shape == (30, 50)
    assert torch.allclose(resized["image"].mean(dim=(1, 2)), native["image"].mean(dim=(1, 2)), atol=2 / 255)
    assert torch.equal(resized["image"], torch.round(resized["image"] * 255) / 255)  # stays on the 8-bit grid


def test_generated_sets_keep_native_size_under_mmseg_policy():
    assert DATASETS["synthetic-voc"].test_scale is None and DATASETS["synthetic-cityscapes"].test_scale is None


def test_samples_go_through_a_dataloader(tmp_path):
    write_voc(tmp_path, {f"i{k}": label_grid(12, 16, [k % 21]) for k in range(5)})
    loader = torch.utils.data.DataLoader(build_dataset("voc2012", tmp_path), batch_size=2)
    batches = list(loader)
    assert [b["image"].shape[0] for b in batches] == [2, 2, 1]
    assert batches[0]["name"] == ["i0", "i1"] and batches[0]["label"].shape == (2, 12, 16)
