"""The embedded default dataset: seeded procedural scenes written in the VOC or Cityscapes layout.

``generate(root, "voc")`` writes the ``synthetic-voc`` set (160x120 textured shapes: background, disk,
square, triangle, ring, star, bar) and ``generate(root, "cityscapes")`` the ``synthetic-cityscapes``
set (256x128 street views: road, sidewalk, building, vegetation, sky, car, person). Both are read by the
ordinary VOC and Cityscapes loaders (``build_dataset("synthetic-voc", root)``).

Determinism: image ``i`` of split ``s`` draws from ``numpy.random.default_rng([seed, layout, s, i])``,
so the same seed gives byte-identical files (JPEG quality and PNG compression are fixed, PNGs carry no
timestamp) and a split's images do not depend on the other split's size. Textures come from the images
bundled in the scikit-image wheel; nothing is downloaded.

Command line::

    python -m benchmark.data.synthetic --out data/synthetic-voc --layout voc [--seed 0]
        [--n-train 300] [--n-val 40]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from benchmark.data.catalog import bit_palette
from benchmark.data.synthetic_scenes import Textures, load_textures, shapes_scene
from benchmark.data.synthetic_street import street_scene
from benchmark.errors import ConfigError, DataError

JPEG_QUALITY = 90
PNG_COMPRESS_LEVEL = 6
SPLITS = ("train", "val")


@dataclass(frozen=True)
class Recipe:
    """How one layout is generated: registry entry, image size (W, H), default counts, writer."""

    dataset: str
    size: tuple[int, int]
    n_train: int
    n_val: int
    code: int  # mixed into every seed, so the two layouts never share random streams
    scene: Callable[[np.random.Generator, Textures, tuple[int, int]], tuple[np.ndarray, np.ndarray]]
    write: Callable[[Path, str, int, np.ndarray, np.ndarray], str]
    write_split: Callable[[Path, str, list[str]], None]


def _png(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


def write_voc(root: Path, split: str, index: int, image: np.ndarray, label: np.ndarray) -> str:
    name = f"{split}_{index:05d}"
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image, mode="RGB").save(
        root / "JPEGImages" / f"{name}.jpg", format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False
    )
    palette_png = Image.fromarray(label, mode="L").convert("P")
    palette_png.putpalette([channel for colour in bit_palette(256) for channel in colour])
    _png(palette_png, root / "SegmentationClass" / f"{name}.png")
    return name


def write_voc_split(root: Path, split: str, names: list[str]) -> None:
    split_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    split_file.parent.mkdir(parents=True, exist_ok=True)
    split_file.write_text("".join(f"{name}\n" for name in names))


def no_split_file(root: Path, split: str, names: list[str]) -> None:
    """Cityscapes splits are folders, already written with the files."""


CITIES = {"train": ("amberfield", "brookmouth"), "val": ("copperton", "dunhaven")}


def write_cityscapes(root: Path, split: str, index: int, image: np.ndarray, label: np.ndarray) -> str:
    city = CITIES[split][index % len(CITIES[split])]
    name = f"{city}_{index // 2:06d}_{index:06d}"
    _png(Image.fromarray(image, mode="RGB"), root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png")
    _png(Image.fromarray(label, mode="L"), root / "gtFine" / split / city / f"{name}_gtFine_labelTrainIds.png")
    return name


RECIPES = {
    "voc": Recipe(
        "synthetic-voc", (160, 120), n_train=300, n_val=40, code=1,
        scene=shapes_scene, write=write_voc, write_split=write_voc_split,
    ),
    "cityscapes": Recipe(
        "synthetic-cityscapes", (256, 128), n_train=120, n_val=24, code=2,
        scene=street_scene, write=write_cityscapes, write_split=no_split_file,
    ),
}  # fmt: skip


def generate(
    root: str | PathLike[str],
    layout: str = "voc",
    seed: int = 0,
    n_train: int | None = None,
    n_val: int | None = None,
) -> Path:
    """Write a generated dataset into ``root`` (which must be absent or empty) and return its path.

    Args:
        root: output folder; it becomes the dataset root read by ``build_dataset``.
        layout: ``"voc"`` (synthetic-voc: 300 train / 40 val by default) or ``"cityscapes"``
            (synthetic-cityscapes: 120 train / 24 val by default).
        seed: non-negative integer; the same seed gives byte-identical files.
        n_train, n_val: image counts (None: the layout's default; 0 is allowed for train).

    Raises:
        ConfigError: unknown layout or bad counts. DataError: ``root`` exists and is not empty.
    """
    if layout not in RECIPES:
        raise ConfigError(f"layout {layout!r} is not one of {tuple(RECIPES)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    recipe = RECIPES[layout]
    counts = {"train": recipe.n_train if n_train is None else n_train, "val": recipe.n_val if n_val is None else n_val}
    if counts["train"] < 0 or counts["val"] < 1:
        raise ConfigError(f"need n_train >= 0 and n_val >= 1, got {counts['train']} and {counts['val']}")
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DataError(f"output folder {root} exists and is not empty")
    textures = load_textures()
    for split_code, split in enumerate(SPLITS):
        names = []
        for index in range(counts[split]):
            rng = np.random.default_rng([seed, recipe.code, split_code, index])
            image, label = recipe.scene(rng, textures, (recipe.size[1], recipe.size[0]))
            names.append(recipe.write(root, split, index, image, label))
        recipe.write_split(root, split, names)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.data.synthetic", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder (absent or empty)")
    parser.add_argument("--layout", choices=tuple(RECIPES), default="voc")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--n-val", type=int, default=None)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        root = generate(args.out, args.layout, seed=args.seed, n_train=args.n_train, n_val=args.n_val)
    except (ConfigError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    name = RECIPES[args.layout].dataset
    print(f"wrote {name} to {root} in {time.perf_counter() - start:.1f} s; load it with build_dataset({name!r}, {str(root)!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
