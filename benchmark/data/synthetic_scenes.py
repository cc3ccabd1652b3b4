"""Procedural scenes for :mod:`benchmark.data.synthetic`: textured shapes and toy street views.

Every random choice comes from the ``numpy.random.Generator`` passed in, so a scene is a pure function
of its generator state. Textures are crops of scikit-image's bundled CC0 images (read from the wheel's
``skimage/data`` folder, never fetched). Each class has a colour family and a texture, both jittered per
object, so appearance identifies the class statistically but not trivially; geometry, scale, rotation
and occlusion (later objects drawn over earlier ones) vary.
"""

from __future__ import annotations

import colorsys
import importlib.resources
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from benchmark.data.catalog import SYNTHETIC_VOC_CLASSES

GRAY_TEXTURES = ("brick", "grass", "gravel", "camera", "coins", "moon", "page", "text")
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "color.png")

# synthetic-voc class -> (hue in degrees, texture). Label k is SYNTHETIC_VOC_CLASSES[k]; 0 is background.
SHAPE_LOOKS = {
    "disk": (0.0, "gravel"),
    "square": (120.0, "brick"),
    "triangle": (225.0, "grass"),
    "ring": (45.0, "coins"),
    "star": (300.0, "text"),
    "bar": (180.0, "page"),
}


@dataclass(frozen=True)
class Textures:
    """Bundled skimage images as float32 arrays in [0, 1]: grey textures and colour photos."""

    gray: dict[str, np.ndarray]
    photos: tuple[np.ndarray, ...]


def load_textures() -> Textures:
    """Read the texture images shipped inside the scikit-image wheel (no network, no pooch)."""
    folder = importlib.resources.files("skimage.data")

    def read(name: str, mode: str) -> np.ndarray:
        with Image.open(folder / name) as image:
            return np.asarray(image.convert(mode), dtype=np.float32) / 255.0

    gray = {name: read(f"{name}.png", "L") for name in GRAY_TEXTURES}
    return Textures(gray=gray, photos=tuple(read(name, "RGB") for name in PHOTOS))


def hsv(hue_deg: float, saturation: float, value: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((hue_deg % 360.0) / 360.0, saturation, value), dtype=np.float32)


def crop(rng: np.random.Generator, source: np.ndarray, height: int, width: int, scale: float) -> np.ndarray:
    """A random crop of ``source`` resampled to (height, width); ``scale`` > 1 magnifies."""
    src_h, src_w = source.shape[:2]
    ch = int(min(src_h, max(2, round(height / scale))))
    cw = int(min(src_w, max(2, round(width / scale))))
    y, x = int(rng.integers(0, src_h - ch + 1)), int(rng.integers(0, src_w - cw + 1))
    piece = source[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        piece = piece[:, ::-1]
    if rng.random() < 0.5:
        piece = piece[::-1]
    channels = [piece] if piece.ndim == 2 else [piece[..., c] for c in range(piece.shape[2])]
    resized = [
        np.asarray(Image.fromarray(np.ascontiguousarray(c), mode="F").resize((width, height), Image.BILINEAR))
        for c in channels
    ]
    return resized[0] if piece.ndim == 2 else np.stack(resized, axis=-1)


def paint(
    rng: np.random.Generator, texture: np.ndarray, colour: np.ndarray, shape: tuple[int, int], contrast: float
) -> np.ndarray:
    """A (H, W, 3) layer: ``colour`` shaded by a normalised texture crop and a soft light gradient."""
    height, width = shape
    t = crop(rng, texture, height, width, float(rng.uniform(0.5, 1.6)))
    t = (t - t.mean()) / (t.std() + 1e-6)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    light = 1.0 + rng.uniform(0.0, 0.25) * ((np.cos(angle) * xx / width + np.sin(angle) * yy / height) - 0.5)
    shade = np.clip((1.0 + contrast * t) * light, 0.1, 2.0)
    return np.clip(colour[None, None, :] * shade[..., None], 0.0, 1.0)


def polygon_mask(shape: tuple[int, int], *polygons: tuple[list[tuple[float, float]], int]) -> np.ndarray:
    """Boolean mask from (vertices, fill) pairs drawn in order; fill 0 cuts holes."""
    mask = Image.new("L", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(mask)
    for vertices, fill in polygons:
        draw.polygon(vertices, fill=fill)
    return np.asarray(mask, dtype=bool)


def star_polygon(cx: float, cy: float, radii: list[float], angle: float, n: int) -> list[tuple[float, float]]:
    """Vertices at n evenly spaced angles, cycling through ``radii`` (one radius: a regular polygon)."""
    out = []
    for k in range(n):
        theta = angle + 2 * np.pi * k / n
        r = radii[k % len(radii)]
        out.append((cx + r * np.cos(theta), cy + r * np.sin(theta)))
    return out


def ellipse(cx: float, cy: float, rx: float, ry: float, angle: float) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    c, s = np.cos(angle), np.sin(angle)
    return list(zip((cx + c * x - s * y).tolist(), (cy + s * x + c * y).tolist()))


def rectangle(cx: float, cy: float, half_w: float, half_h: float, angle: float) -> list[tuple[float, float]]:
    c, s = np.cos(angle), np.sin(angle)
    corners = [(-half_w, -half_h), (half_w, -half_h), (half_w, half_h), (-half_w, half_h)]
    return [(cx + c * x - s * y, cy + s * x + c * y) for x, y in corners]


def shape_mask(rng: np.random.Generator, kind: str, shape: tuple[int, int]) -> np.ndarray:
    """Mask of one shape of ``kind`` with random centre (inside the frame), size and rotation."""
    height, width = shape
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    r, angle = rng.uniform(0.1, 0.3) * height, rng.uniform(0, 2 * np.pi)
    if kind == "disk":
        return polygon_mask(shape, (ellipse(cx, cy, r, r * rng.uniform(0.75, 1.0), angle), 1))
    if kind == "ring":
        ry = r * rng.uniform(0.8, 1.0)
        hole = rng.uniform(0.45, 0.65)
        return polygon_mask(shape, (ellipse(cx, cy, r, ry, angle), 1), (ellipse(cx, cy, r * hole, ry * hole, angle), 0))
    if kind == "square":
        half = 0.8 * r
        return polygon_mask(shape, (rectangle(cx, cy, half, half * rng.uniform(0.85, 1.15), angle), 1))
    if kind == "bar":
        return polygon_mask(shape, (rectangle(cx, cy, 1.2 * r, r * rng.uniform(0.18, 0.3), angle), 1))
    if kind == "triangle":
        radii = [r * rng.uniform(0.85, 1.1) for _ in range(3)]
        return polygon_mask(shape, (star_polygon(cx, cy, radii, angle, 3), 1))
    if kind == "star":
        return polygon_mask(shape, (star_polygon(cx, cy, [r, r * rng.uniform(0.38, 0.5)], angle, 10), 1))
    if kind == "blob":
        radii = (r * rng.uniform(0.5, 1.0, size=int(rng.integers(6, 11)))).tolist()
        return polygon_mask(shape, (star_polygon(cx, cy, radii, angle, len(radii)), 1))
    raise ValueError(f"unknown shape {kind!r}")


def background(rng: np.random.Generator, textures: Textures, shape: tuple[int, int]) -> np.ndarray:
    """A weakly coloured backdrop: a desaturated photo crop or a faintly tinted grey texture."""
    if rng.random() < 0.6:
        photo = textures.photos[int(rng.integers(len(textures.photos)))]
        layer = crop(rng, photo, shape[0], shape[1], float(rng.uniform(0.4, 1.2)))
        grey = layer.mean(axis=-1, keepdims=True)
        layer = grey + rng.uniform(0.0, 0.6) * (layer - grey)
        return np.clip(layer * rng.uniform(0.6, 1.1), 0.0, 1.0)
    texture = textures.gray[GRAY_TEXTURES[int(rng.integers(len(GRAY_TEXTURES)))]]
    colour = hsv(rng.uniform(0, 360), rng.uniform(0.0, 0.2), rng.uniform(0.35, 0.8))
    return paint(rng, texture, colour, shape, float(rng.uniform(0.1, 0.35)))


def shapes_scene(
    rng: np.random.Generator,
    textures: Textures,
    shape: tuple[int, int],
    classes: tuple[str, ...] = SYNTHETIC_VOC_CLASSES,
) -> tuple[np.ndarray, np.ndarray]:
    """VOC-like scene: (H, W, 3) uint8 image and (H, W) uint8 label, 255 on a 1-pixel object border.

    One to four class objects and at most one clutter blob (irregular polygons of any colour and texture,
    labelled background), in random order, so colour alone does not identify a class.
    """
    image = background(rng, textures, shape)
    label = np.zeros(shape, dtype=np.uint8)
    objects = [int(rng.integers(1, len(classes))) for _ in range(int(rng.integers(1, 5)))]
    clutter = [0] * int(rng.integers(0, 2))
    for cls in rng.permutation(objects + clutter).tolist():
        if cls == 0:  # clutter: an irregular blob of any colour and texture that stays "background"
            texture = GRAY_TEXTURES[int(rng.integers(len(GRAY_TEXTURES)))]
            colour = hsv(rng.uniform(0, 360), rng.uniform(0.2, 0.9), rng.uniform(0.3, 0.9))
            kind = "blob"
        else:
            hue, texture = SHAPE_LOOKS[classes[cls]]
            colour = hsv(hue + rng.uniform(-18, 18), rng.uniform(0.5, 0.95), rng.uniform(0.45, 0.95))
            kind = classes[cls]
        layer = paint(rng, textures.gray[texture], colour, shape, float(rng.uniform(0.15, 0.4)))
        mask = shape_mask(rng, kind, shape)
        image[mask] = layer[mask]
        label[mask] = cls
    # VOC marks object borders as void (255); a 1-pixel band where the label changes.
    border = np.zeros(shape, dtype=bool)
    border[1:, :] |= label[1:, :] != label[:-1, :]
    border[:, 1:] |= label[:, 1:] != label[:, :-1]
    label[border] = 255
    return finish(rng, image), label


def finish(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Add mild sensor noise and quantise to uint8."""
    noisy = image + rng.normal(0.0, 0.02, image.shape)
    return np.round(np.clip(noisy, 0.0, 1.0) * 255.0).astype(np.uint8)
