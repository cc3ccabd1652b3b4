"""``resize: mmseg`` is mmseg's own test pipeline, value for value (mmcv.imrescale and the shipped configs)."""

import numpy as np
import pytest
import torch

import benchmark  # noqa: F401  (registers the mmcv.ops stand-in before mmseg is imported)
from benchmark.data import build_dataset
from benchmark.data.catalog import DATASETS
from benchmark.data.files import mmseg_rescale_size, resize_image
from tests.data.trees import label_grid, save_jpeg, save_palette_png, save_png

SIZES = [(375, 500), (500, 375), (333, 500), (281, 500), (512, 512), (17, 29), (600, 4000), (1024, 2048)]


def _random_image(height, width, seed):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(("height", "width"), SIZES)
@pytest.mark.parametrize("scale", [(2048, 512), (2048, 1024)])
def test_resize_equals_mmcv_imrescale_value_for_value(height, width, scale):
    import mmcv

    pixels = _random_image(height, width, seed=height * width)
    expected, factor = mmcv.imrescale(pixels, scale, interpolation="bilinear", return_scale=True, backend="cv2")
    assert mmseg_rescale_size(width, height, scale) == mmcv.rescale_size((width, height), scale)
    image = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    ours = resize_image(image, *mmseg_rescale_size(width, height, scale))
    assert ours.shape == (3, *expected.shape[:2])
    assert torch.equal((ours * 255).round().to(torch.uint8).permute(1, 2, 0), torch.from_numpy(expected))


def test_float_bilinear_would_not_be_mmcv():
    """Why resize_image goes through OpenCV: a float bilinear + rounding misses OpenCV's fixed point."""
    import mmcv

    pixels = _random_image(375, 500, seed=0)
    expected = mmcv.imrescale(pixels, (2048, 512), interpolation="bilinear", backend="cv2")
    image = torch.from_numpy(pixels).permute(2, 0, 1).float()[None]
    naive = torch.nn.functional.interpolate(image, size=expected.shape[:2], mode="bilinear", align_corners=False)
    differs = (naive[0].round().permute(1, 2, 0).numpy() != expected).mean()
    assert differs > 0.10  # about 12.8 % of the values, by one level


def _mmseg_test_pipeline(dataset_config: str):
    """The image part of mmseg's shipped test pipeline for a dataset (LoadImageFromFile, Resize)."""
    from mmengine.config import Config
    from mmseg.registry import TRANSFORMS
    from mmseg.utils import register_all_modules

    from benchmark.models.mmseg_adapter import mmseg_config_dir

    register_all_modules(init_default_scope=False)
    steps = Config.fromfile(str(mmseg_config_dir() / "_base_" / "datasets" / dataset_config)).test_pipeline
    transforms = [TRANSFORMS.build(step) for step in steps if step["type"] in ("LoadImageFromFile", "Resize")]
    assert [type(t).__name__ for t in transforms] == ["LoadImageFromFile", "Resize"]

    def run(path):
        results = {"img_path": str(path)}
        for transform in transforms:
            results = transform(results)
        return results["img"][..., ::-1]  # BGR -> RGB

    return run


def _photo(height, width, seed):
    """Smooth random content (JPEG-friendly, unlike noise), so decoding and resizing both matter."""
    coarse = _random_image(height // 8 + 1, width // 8 + 1, seed)
    return np.kron(coarse, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]


@pytest.mark.parametrize(("dataset", "config", "height", "width"), [
    ("voc2012", "pascal_voc12.py", 375, 500),
    ("voc2012", "pascal_voc12.py", 500, 333),
    ("ade20k", "ade20k.py", 300, 450),
    ("cityscapes", "cityscapes.py", 256, 512),
])
def test_dataset_images_equal_mmsegs_own_test_pipeline(dataset, config, height, width, tmp_path):
    label = label_grid(height, width, [1, 2])
    if dataset == "voc2012":
        image_path = tmp_path / "JPEGImages" / "a.jpg"
        save_jpeg(image_path, _photo(height, width, 1))
        save_palette_png(tmp_path / "SegmentationClass" / "a.png", label)
        (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
        (tmp_path / "ImageSets" / "Segmentation" / "val.txt").write_text("a\n")
    elif dataset == "ade20k":
        image_path = tmp_path / "images" / "validation" / "a.jpg"
        save_jpeg(image_path, _photo(height, width, 2))
        save_png(tmp_path / "annotations" / "validation" / "a.png", label, "L")
    else:
        image_path = tmp_path / "leftImg8bit" / "val" / "aachen" / "aachen_0_leftImg8bit.png"
        save_png(image_path, _photo(height, width, 3), "RGB")
        save_png(tmp_path / "gtFine" / "val" / "aachen" / "aachen_0_gtFine_labelTrainIds.png", label, "L")
    sample = build_dataset(dataset, tmp_path, resize="mmseg")[0]
    expected = _mmseg_test_pipeline(config)(image_path)
    assert expected.shape[:2] != (height, width)  # the pipeline really resizes
    ours = (sample["image"] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert ours.shape == expected.shape and np.array_equal(ours, expected)
    assert tuple(sample["label"].shape) == (height, width)  # labels stay at their original size


def test_every_real_dataset_has_its_mmseg_test_scale():
    scales = {name: info.test_scale for name, info in DATASETS.items() if not name.startswith("synthetic")}
    assert scales == {"voc2012": (2048, 512), "cityscapes": (2048, 1024), "ade20k": (2048, 512)}
