"""Bad data raises DataError with a one-line message naming the culprit; bad options raise ConfigError."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.data import build_dataset
from benchmark.data.files import check_image_range
from benchmark.errors import ConfigError, DataError
from tests.data.trees import label_grid, save_jpeg, save_png, solid_rgb, write_ade20k, write_cityscapes, write_voc

CS_NAME = "aachen_000000_000019"


def raises_naming(*parts: str, call) -> str:
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for part in parts:
        assert str(part) in message, f"{part!r} not in {message!r}"
    return message


@pytest.mark.parametrize("name", ["voc2012", "cityscapes", "ade20k", "synthetic-voc", "synthetic-cityscapes"])
def test_missing_root(tmp_path, name):
    raises_naming(tmp_path / "nowhere", call=lambda: build_dataset(name, tmp_path / "nowhere"))


def test_missing_voc_split_file(tmp_path):
    write_voc(tmp_path, {"a": label_grid(4, 4, [0])}, split="train")
    raises_naming(tmp_path / "ImageSets" / "Segmentation" / "val.txt", call=lambda: build_dataset("voc2012", tmp_path))


@pytest.mark.parametrize(
    ("name", "split_dir"),
    [("cityscapes", "leftImg8bit/val"), ("ade20k", "images/validation")],
)
def test_missing_split_folder(tmp_path, name, split_dir):
    tmp_path.joinpath("gtFine", "val").mkdir(parents=True)
    tmp_path.joinpath("annotations", "validation").mkdir(parents=True)
    raises_naming(tmp_path / split_dir, call=lambda: build_dataset(name, tmp_path))


def test_empty_voc_split(tmp_path):
    write_voc(tmp_path, {})
    raises_naming("val.txt", "empty", call=lambda: build_dataset("voc2012", tmp_path))


@pytest.mark.parametrize(("name", "folders"), [
    ("cityscapes", ["leftImg8bit/val", "gtFine/val"]),
    ("ade20k", ["images/validation", "annotations/validation"]),
])  # fmt: skip
def test_empty_split_folder(tmp_path, name, folders):
    for folder in folders:
        (tmp_path / folder).mkdir(parents=True)
    raises_naming(tmp_path / folders[0], "empty", call=lambda: build_dataset(name, tmp_path))


def test_voc_image_without_label(tmp_path):
    write_voc(tmp_path, {"a": label_grid(4, 4, [0]), "b": label_grid(4, 4, [0])})
    (tmp_path / "SegmentationClass" / "b.png").unlink()
    raises_naming(tmp_path / "JPEGImages" / "b.jpg", tmp_path / "SegmentationClass" / "b.png",
                  call=lambda: build_dataset("voc2012", tmp_path))  # fmt: skip


def test_voc_label_without_image(tmp_path):
    write_voc(tmp_path, {"a": label_grid(4, 4, [0])})
    (tmp_path / "JPEGImages" / "a.jpg").unlink()
    message = raises_naming(tmp_path / "JPEGImages" / "a.jpg", tmp_path / "SegmentationClass" / "a.png",
                            call=lambda: build_dataset("voc2012", tmp_path))  # fmt: skip
    assert "has no image" in message


def test_cityscapes_image_without_label(tmp_path):
    write_cityscapes(tmp_path, {CS_NAME: label_grid(4, 8, [0]), "bremen_000000_000019": label_grid(4, 8, [0])})
    (tmp_path / "gtFine" / "val" / "bremen" / "bremen_000000_000019_gtFine_labelTrainIds.png").unlink()
    raises_naming("bremen_000000_000019_leftImg8bit.png", "bremen_000000_000019_gtFine_labelTrainIds.png",
                  call=lambda: build_dataset("cityscapes", tmp_path))  # fmt: skip


def test_cityscapes_label_without_image(tmp_path):
    write_cityscapes(tmp_path, {CS_NAME: label_grid(4, 8, [0]), "bremen_000000_000019": label_grid(4, 8, [0])})
    (tmp_path / "leftImg8bit" / "val" / "bremen" / "bremen_000000_000019_leftImg8bit.png").unlink()
    message = raises_naming("bremen_000000_000019_gtFine_labelTrainIds.png", "bremen_000000_000019_leftImg8bit.png",
                            call=lambda: build_dataset("cityscapes", tmp_path))  # fmt: skip
    assert "has no image" in message


@pytest.mark.parametrize("missing", ["image", "label"])
def test_ade20k_unpaired(tmp_path, missing):
    write_ade20k(tmp_path, {"ADE_val_00000001": label_grid(4, 4, [1]), "ADE_val_00000002": label_grid(4, 4, [1])})
    image = tmp_path / "images" / "validation" / "ADE_val_00000002.jpg"
    label = tmp_path / "annotations" / "validation" / "ADE_val_00000002.png"
    (image if missing == "image" else label).unlink()
    raises_naming(image, label, call=lambda: build_dataset("ade20k", tmp_path))


@pytest.mark.parametrize(
    ("name", "writer", "stored", "bad"),
    [
        ("voc2012", write_voc, [0, 21, 255], 21),
        ("synthetic-voc", write_voc, [0, 6, 7], 7),
        ("cityscapes", write_cityscapes, [0, 18, 19], 19),
        ("synthetic-cityscapes", write_cityscapes, [6, 200], 200),
        ("ade20k", write_ade20k, [0, 150, 151], 150),  # stored 151 is label 150 after reduce-zero-label
    ],
)
def test_label_value_out_of_range(tmp_path, name, writer, stored, bad):
    writer(tmp_path, {CS_NAME: label_grid(5, 6, stored)})
    dataset = build_dataset(name, tmp_path)
    message = raises_naming(f"{CS_NAME}", f"value {bad}", call=lambda: dataset[0])
    assert message.count(CS_NAME) == 1  # the label file, not a vague "sample"
    assert ".png" in message


def test_cityscapes_label_id_outside_the_official_table(tmp_path):
    write_cityscapes(tmp_path, {CS_NAME: label_grid(4, 4, [7, 40])}, suffix="_gtFine_labelIds.png")
    raises_naming(f"{CS_NAME}_gtFine_labelIds.png", "40", call=lambda: build_dataset("cityscapes", tmp_path)[0])


def test_label_ids_without_a_table_are_refused(tmp_path):
    write_cityscapes(tmp_path, {CS_NAME: label_grid(4, 4, [1])}, suffix="_gtFine_labelIds.png")
    raises_naming("labelIds", "synthetic-cityscapes", call=lambda: build_dataset("synthetic-cityscapes", tmp_path))


def test_size_mismatch(tmp_path):
    write_voc(tmp_path, {"a": label_grid(10, 12, [0])})
    save_jpeg(tmp_path / "JPEGImages" / "a.jpg", solid_rgb(11, 12, (9, 9, 9)))
    raises_naming(tmp_path / "JPEGImages" / "a.jpg", "12x11", "12x10", call=lambda: build_dataset("voc2012", tmp_path)[0])


@pytest.mark.parametrize("which", ["image", "label"])
def test_corrupt_file(tmp_path, which):
    write_ade20k(tmp_path, {"ADE_val_00000001": label_grid(6, 6, [1])})
    path = tmp_path / ("images" if which == "image" else "annotations") / "validation"
    path = path / ("ADE_val_00000001.jpg" if which == "image" else "ADE_val_00000001.png")
    path.write_bytes(path.read_bytes()[:40])  # a truncated file
    raises_naming(path, "corrupt", call=lambda: build_dataset("ade20k", tmp_path)[0])


def test_rgb_label_is_refused(tmp_path):
    write_voc(tmp_path, {"a": label_grid(4, 4, [0])})
    save_png(tmp_path / "SegmentationClass" / "a.png", solid_rgb(4, 4, (128, 0, 0)), "RGB")
    raises_naming(tmp_path / "SegmentationClass" / "a.png", "RGB", call=lambda: build_dataset("voc2012", tmp_path)[0])


def test_duplicate_id_in_split_file(tmp_path):
    write_voc(tmp_path, {"a": label_grid(4, 4, [0])})
    (tmp_path / "ImageSets" / "Segmentation" / "val.txt").write_text("a\na\n")
    raises_naming("val.txt", "'a' twice", call=lambda: build_dataset("voc2012", tmp_path))


def test_image_range_check():
    check_image_range(torch.tensor([0.0, 1.0]), "fine")
    for bad in (torch.tensor([0.5, 1.0001]), torch.tensor([-0.1]), torch.tensor([float("nan")]), torch.tensor([255.0])):
        with pytest.raises(DataError, match="'x'.*outside \\[0, 1\\]"):
            check_image_range(bad, "x")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "pascal"}, "unknown dataset 'pascal'"),
        ({"resize": "bilinear"}, "resize 'bilinear'"),
        ({"limit": 0}, "limit"),
        ({"colour": "red"}, "unknown option"),
    ],
)
def test_bad_options_are_config_errors(tmp_path, kwargs, match):
    write_voc(tmp_path, {"a": label_grid(4, 4, [0])})
    arguments = {"name": "voc2012", "root": tmp_path} | kwargs
    with pytest.raises(ConfigError, match=match):
        build_dataset(**arguments)


def test_label_values_are_checked_on_the_returned_map_not_before(tmp_path):
    # Stored 255 in ADE20K stays ignore (mmseg turns 254 back into 255); stored 0 becomes ignore too.
    write_ade20k(tmp_path, {"ADE_val_00000001": np.array([[0, 255]], dtype=np.uint8)})
    assert build_dataset("ade20k", tmp_path)[0]["label"].tolist() == [[255, 255]]
