"""Reading one image or label file, with every failure turned into a one-line :class:`DataError`.

Images become float32 (3, H, W) RGB tensors in [0, 1]; labels become int64 (H, W) arrays of the stored
values (palette indices for palette PNGs, never colours).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmark.errors import DataError

# Single-channel modes whose pixel values are the label values themselves. "P" (palette) stores the
# index, which is the class; converting it to RGB would turn classes into colours.
LABEL_MODES = ("P", "L", "I", "I;16")


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` if it is a directory, else raise a DataError naming it."""
    if not path.is_dir():
        raise DataError(f"{what} not found: {path}")
    return path


def _open(path: Path, kind: str) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise DataError(f"{kind} file not found: {path}") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"unreadable or corrupt {kind} file {path}: {error}") from None
    return image


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file from its header, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError:
        raise DataError(f"image file not found: {path}") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"unreadable or corrupt image file {path}: {error}") from None


def read_image(path: Path) -> torch.Tensor:
    """Decode an image file into a float32 (3, H, W) RGB tensor in [0, 1]."""
    image = _open(path, "image").convert("RGB")
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def read_label(path: Path) -> np.ndarray:
    """Decode a single-channel label file into an int64 (H, W) array of stored values."""
    image = _open(path, "label")
    if image.mode not in LABEL_MODES:
        raise DataError(
            f"label file {path} has mode {image.mode!r}; expected a single-channel or palette PNG"
        )
    return np.asarray(image).astype(np.int64)


def check_image_range(image: torch.Tensor, name: str) -> torch.Tensor:
    """Raise DataError unless ``image`` is finite and inside [0, 1] (datasets never yield more)."""
    if not bool(torch.isfinite(image).all()) or image.min() < 0 or image.max() > 1:
        raise DataError(
            f"image {name!r} has values outside [0, 1] (min {float(image.min()):.4g}, "
            f"max {float(image.max()):.4g}); loaders must yield [0, 1] RGB"
        )
    return image


def check_label_values(label: np.ndarray, num_classes: int, ignore_index: int, path: Path) -> None:
    """Raise DataError naming ``path`` and the first offending value outside [0, C) and ignore."""
    bad = ((label < 0) | (label >= num_classes)) & (label != ignore_index)
    if bad.any():
        values = np.unique(label[bad])
        raise DataError(
            f"label file {path} contains value {int(values[0])} outside [0, {num_classes}) and "
            f"ignore {ignore_index} ({values.size} distinct bad values)"
        )


def check_same_size(image: torch.Tensor, label: np.ndarray, image_path: Path, label_path: Path) -> None:
    """Raise DataError when the image's (H, W) differs from the label's."""
    image_hw = tuple(image.shape[-2:])
    if image_hw != tuple(label.shape):
        raise DataError(
            f"image {image_path} is {image_hw[1]}x{image_hw[0]} (WxH) but its label {label_path} is "
            f"{label.shape[1]}x{label.shape[0]}"
        )


def mmseg_rescale_size(width: int, height: int, scale: tuple[int, int]) -> tuple[int, int]:
    """Output (width, height) of mmseg's ``Resize(scale, keep_ratio=True)`` (``mmcv.rescale_size``).

    The factor is min(long / long_edge, short / short_edge) with ``scale = (long, short)``, so the
    image fits inside the scale in both orientations; each side is ``int(side * factor + 0.5)``.
    """
    long_scale, short_scale = max(scale), min(scale)
    factor = min(long_scale / max(width, height), short_scale / min(width, height))
    return int(width * factor + 0.5), int(height * factor + 0.5)


def resize_image(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """mmseg's test-time image resize, value for value: OpenCV ``INTER_LINEAR`` on the 8-bit image.

    mmcv's ``imrescale`` (behind mmseg's ``Resize``) calls ``cv2.resize`` on the uint8 array, and
    OpenCV interpolates 8-bit images in fixed point (11-bit weights, rounded), which a float
    interpolation does not reproduce; so the image goes back to its 8-bit values (``image`` is on the
    1/255 grid, as decoded) and through the same call. Channels are resized independently, so RGB
    order (mmseg's is BGR) does not matter.

    Shapes:
        image float32 (3, H, W) in [0, 1] on the 1/255 grid; output float32 (3, height, width).
    """
    if tuple(image.shape[-2:]) == (height, width):
        return image
    import cv2  # OpenCV comes with mmengine; imported only when a real dataset is resized

    pixels = image.mul(255.0).round_().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    resized = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(resized).permute(2, 0, 1).float().div_(255.0)
