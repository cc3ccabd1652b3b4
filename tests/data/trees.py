"""Writers of tiny datasets in the real on-disk layouts (real JPEG / PNG files) for loader tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# The PASCAL VOC colour map for the first indices and the border index, as published with VOCdevkit.
VOC_COLOURS = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 15: (192, 128, 128),
               255: (224, 224, 192)}  # fmt: skip


def solid_rgb(height: int, width: int, colour: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(colour, dtype=np.uint8), (height, width, 3)).copy()


def save_jpeg(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode="RGB").save(path, format="JPEG", quality=95)


def save_png(path: Path, array: np.ndarray, mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path, format="PNG")


def save_palette_png(path: Path, label: np.ndarray) -> None:
    """A VOC-style palette PNG: pixel values are palette indices, shown in VOC colours."""
    image = Image.fromarray(label.astype(np.uint8), mode="L").convert("P")
    palette = [0] * 768
    for index, colour in VOC_COLOURS.items():
        palette[3 * index : 3 * index + 3] = colour
    image.putpalette(palette)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")


def write_voc(root: Path, samples: dict[str, np.ndarray], split: str = "val", colour=(255, 0, 0)) -> Path:
    """JPEGImages/<id>.jpg, SegmentationClass/<id>.png (palette), ImageSets/Segmentation/<split>.txt."""
    for name, label in samples.items():
        save_jpeg(root / "JPEGImages" / f"{name}.jpg", solid_rgb(*label.shape, colour))
        save_palette_png(root / "SegmentationClass" / f"{name}.png", label)
    split_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    split_file.parent.mkdir(parents=True, exist_ok=True)
    split_file.write_text("".join(f"{name}\n" for name in samples))
    return root


def write_cityscapes(
    root: Path, samples: dict[str, np.ndarray], split: str = "val", suffix: str = "_gtFine_labelTrainIds.png"
) -> Path:
    """leftImg8bit/<split>/<city>/<name>_leftImg8bit.png and gtFine/<split>/<city>/<name><suffix>;
    the city is the name's first underscore-separated part, as in Cityscapes."""
    for name, label in samples.items():
        city = name.split("_")[0]
        save_png(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", solid_rgb(*label.shape, (0, 0, 255)), "RGB")
        save_png(root / "gtFine" / split / city / f"{name}{suffix}", label.astype(np.uint8), "L")
    return root


def write_ade20k(root: Path, samples: dict[str, np.ndarray], folder: str = "validation") -> Path:
    """images/<folder>/<name>.jpg and annotations/<folder>/<name>.png (single channel)."""
    for name, label in samples.items():
        save_jpeg(root / "images" / folder / f"{name}.jpg", solid_rgb(*label.shape, (0, 255, 0)))
        save_png(root / "annotations" / folder / f"{name}.png", label.astype(np.uint8), "L")
    return root


def label_grid(height: int, width: int, values: list[int]) -> np.ndarray:
    """An (H, W) uint8 map cycling through ``values`` row-major, so every value occurs."""
    flat = np.resize(np.array(values, dtype=np.uint8), height * width)
    return flat.reshape(height, width)
