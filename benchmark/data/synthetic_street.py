"""Toy street views for the ``synthetic-cityscapes`` set (see :mod:`benchmark.data.synthetic`).

Sky above a horizon, buildings and trees along it, a road in perspective over a sidewalk, then cars
and people standing on the ground, drawn far to near so that nearer ones occlude. Sizes shrink towards
the horizon. Labels follow ``SYNTHETIC_CITYSCAPES_CLASSES``.
"""

from __future__ import annotations

import numpy as np

from benchmark.data.catalog import SYNTHETIC_CITYSCAPES_CLASSES
from benchmark.data.synthetic_scenes import Textures, ellipse, finish, hsv, paint, polygon_mask, rectangle

ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, CAR, PERSON = (
    SYNTHETIC_CITYSCAPES_CLASSES.index(name)
    for name in ("road", "sidewalk", "building", "vegetation", "sky", "car", "person")
)


class Canvas:
    """An image and its label map, painted together: every stroke sets pixels and their class."""

    def __init__(self, rng: np.random.Generator, textures: Textures, shape: tuple[int, int]) -> None:
        self.rng, self.textures, self.shape = rng, textures, shape
        self.image = np.zeros((*shape, 3), dtype=np.float32)
        self.label = np.zeros(shape, dtype=np.uint8)

    def layer(self, hue: float, saturation: float, value: float, texture: str, contrast: float) -> np.ndarray:
        return paint(self.rng, self.textures.gray[texture], hsv(hue, saturation, value), self.shape, contrast)

    def fill(self, mask: np.ndarray, layer: np.ndarray, cls: int) -> None:
        self.image[mask] = layer[mask]
        self.label[mask] = cls


def street_scene(
    rng: np.random.Generator, textures: Textures, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Cityscapes-like scene: (H, W, 3) uint8 image and (H, W) uint8 train-id label."""
    height, width = shape
    canvas = Canvas(rng, textures, shape)
    yy = np.mgrid[0:height, 0:width][0]
    horizon = int(rng.integers(int(0.3 * height), int(0.48 * height)))

    overcast = rng.random() < 0.3  # a grey sky competes with facades and road
    sky = canvas.layer(rng.uniform(195, 220), rng.uniform(0.0, 0.1) if overcast else rng.uniform(0.25, 0.6),
                       rng.uniform(0.6, 1.0), "moon", 0.15)  # fmt: skip
    sky *= (0.8 + 0.3 * np.clip(yy / max(horizon, 1), 0, 1))[..., None]
    canvas.fill(yy < horizon, np.clip(sky, 0, 1), SKY)
    pavement = canvas.layer(rng.uniform(290, 350), rng.uniform(0.0, 0.3), rng.uniform(0.45, 0.8), "brick", 0.25)
    canvas.fill(yy >= horizon, pavement, SIDEWALK)

    x = -float(rng.integers(0, 20))
    while x < width:
        building_w = float(rng.uniform(0.1, 0.3) * width)
        if rng.random() < 0.85:
            top = float(rng.uniform(0.05 * height, horizon - 6))
            bottom = horizon + float(rng.uniform(0, 0.1 * height))
            mask = polygon_mask(shape, (rectangle(x + building_w / 2, (top + bottom) / 2, building_w / 2, (bottom - top) / 2, 0.0), 1))
            texture = ("brick", "gravel", "page")[int(rng.integers(3))]
            wall = canvas.layer(rng.uniform(0, 60), rng.uniform(0.0, 0.4), rng.uniform(0.3, 0.8), texture, 0.3)
            canvas.fill(mask, wall, BUILDING)
            windows(canvas, x, top, building_w, bottom - top)
        x += building_w + float(rng.integers(0, 12))

    for _ in range(int(rng.integers(0, 4))):
        cx, cy = rng.uniform(0, width), horizon + rng.uniform(-0.12, 0.05) * height
        blobs = [
            (ellipse(cx + rng.normal(0, 8), cy + rng.normal(0, 5), r, r * rng.uniform(0.7, 1.0), 0.0), 1)
            for r in rng.uniform(0.05, 0.14, size=int(rng.integers(3, 7))) * height
        ]
        leaves = canvas.layer(rng.uniform(60, 140), rng.uniform(0.3, 0.8), rng.uniform(0.25, 0.7), "grass", 0.4)
        canvas.fill(polygon_mask(shape, *blobs), leaves, VEGETATION)

    vx = rng.uniform(0.35, 0.65) * width
    left, right = rng.uniform(-0.35, 0.1) * width, rng.uniform(0.9, 1.35) * width
    road_mask = polygon_mask(shape, ([(vx - 3, horizon), (vx + 3, horizon), (right, height), (left, height)], 1))
    asphalt = canvas.layer(rng.uniform(0, 360), rng.uniform(0.0, 0.1), rng.uniform(0.2, 0.55), "gravel", 0.3)
    canvas.fill(road_mask, asphalt, ROAD)
    if rng.random() < 0.6:  # a dashed centre line, still "road"
        mid = (left + right) / 2
        for t0 in np.arange(0.1, 1.0, 0.2):
            t1 = t0 + 0.08
            line = [(vx + (mid - vx) * t0 - 1 - 2 * t0, horizon + (height - horizon) * t0),
                    (vx + (mid - vx) * t0 + 1 + 2 * t0, horizon + (height - horizon) * t0),
                    (vx + (mid - vx) * t1 + 1 + 2 * t1, horizon + (height - horizon) * t1),
                    (vx + (mid - vx) * t1 - 1 - 2 * t1, horizon + (height - horizon) * t1)]  # fmt: skip
            paint_mask = polygon_mask(shape, (line, 1)) & road_mask
            canvas.fill(paint_mask, canvas.layer(50, 0.1, 0.9, "gravel", 0.1), ROAD)

    actors = [(CAR, rng.uniform(0.08, 1.1)) for _ in range(int(rng.integers(0, 4)))]
    actors += [(PERSON, rng.uniform(0.05, 1.1)) for _ in range(int(rng.integers(0, 4)))]
    for cls, depth in sorted(actors, key=lambda actor: actor[1]):
        ground = horizon + depth * (height - horizon)
        if cls == CAR:
            road_left, road_right = vx + (left - vx) * depth, vx + (right - vx) * depth
            car(canvas, rng.uniform(road_left, road_right), ground, (0.1 + 0.55 * depth) * width)
        else:
            person(canvas, rng.uniform(0, width), ground, (0.12 + 0.5 * depth) * height)
    # Per-image illumination: overall brightness and a mild colour cast.
    canvas.image *= (rng.uniform(0.7, 1.15) * rng.uniform(0.9, 1.1, size=3)).astype(np.float32)
    return finish(rng, canvas.image), canvas.label


def windows(canvas: Canvas, x: float, top: float, width: float, height: float) -> None:
    """A grid of dark panes on a facade; they belong to the building."""
    rng = canvas.rng
    if rng.random() < 0.3 or width < 12 or height < 12:
        return
    step_x, step_y = rng.uniform(6, 12), rng.uniform(7, 12)
    pane = canvas.layer(rng.uniform(190, 230), rng.uniform(0.1, 0.4), rng.uniform(0.1, 0.35), "camera", 0.2)
    polygons = []
    for wx in np.arange(x + 3, x + width - step_x / 2, step_x):
        for wy in np.arange(top + 3, top + height - step_y, step_y):
            polygons.append((rectangle(wx + step_x * 0.3, wy + step_y * 0.3, step_x * 0.25, step_y * 0.25, 0.0), 1))
    if polygons:
        canvas.fill(polygon_mask(canvas.shape, *polygons), pane, BUILDING)


def car(canvas: Canvas, cx: float, ground: float, length: float) -> None:
    """A side-view car: body, cabin with windows, two wheels; all of it is "car"."""
    rng = canvas.rng
    body_h, cabin_h = 0.28 * length, 0.2 * length
    body = rectangle(cx, ground - 0.08 * length - body_h / 2, length / 2, body_h / 2, 0.0)
    cabin_base = ground - 0.08 * length - body_h
    cabin = [(cx - 0.32 * length, cabin_base), (cx + 0.36 * length, cabin_base),
             (cx + 0.22 * length, cabin_base - cabin_h), (cx - 0.2 * length, cabin_base - cabin_h)]  # fmt: skip
    hue = rng.uniform(205, 245) if rng.random() < 0.5 else rng.uniform(0, 360)  # mostly blue, any colour
    paint_layer = canvas.layer(hue, rng.uniform(0.0, 0.9), rng.uniform(0.25, 0.85), "camera", 0.15)
    canvas.fill(polygon_mask(canvas.shape, (body, 1), (cabin, 1)), paint_layer, CAR)
    glass = canvas.layer(rng.uniform(180, 200), rng.uniform(0.1, 0.3), rng.uniform(0.6, 0.9), "moon", 0.1)
    inset = [(0.85 * (px - cx) + cx, 0.85 * (py - cabin_base) + cabin_base) for px, py in cabin]
    canvas.fill(polygon_mask(canvas.shape, (inset, 1)), glass, CAR)
    tyre = canvas.layer(0, 0.0, rng.uniform(0.05, 0.15), "gravel", 0.2)
    r = 0.11 * length
    wheels = [(ellipse(cx + side * 0.3 * length, ground - r, r, r, 0.0), 1) for side in (-1, 1)]
    canvas.fill(polygon_mask(canvas.shape, *wheels), tyre, CAR)


def person(canvas: Canvas, cx: float, ground: float, tall: float) -> None:
    """A standing figure: head, torso, two legs; all of it is "person"."""
    rng = canvas.rng
    head_r, torso_w = 0.09 * tall, 0.15 * tall
    hue = rng.uniform(-15, 30) if rng.random() < 0.6 else rng.uniform(0, 360)  # mostly warm, any colour
    clothes = canvas.layer(hue, rng.uniform(0.3, 0.9), rng.uniform(0.3, 0.9), "text", 0.2)
    lean = rng.uniform(-0.1, 0.1)
    torso = rectangle(cx, ground - 0.62 * tall, torso_w, 0.18 * tall, lean)
    stride = rng.uniform(0.0, 0.3)
    legs = [rectangle(cx + side * 0.06 * tall, ground - 0.22 * tall, 0.045 * tall, 0.23 * tall, side * stride)
            for side in (-1, 1)]  # fmt: skip
    canvas.fill(polygon_mask(canvas.shape, (torso, 1), (legs[0], 1), (legs[1], 1)), clothes, PERSON)
    skin = canvas.layer(rng.uniform(15, 35), rng.uniform(0.3, 0.55), rng.uniform(0.55, 0.9), "moon", 0.1)
    head = ellipse(cx + lean * 0.3 * tall, ground - 0.89 * tall, head_r, head_r * 1.15, 0.0)
    canvas.fill(polygon_mask(canvas.shape, (head, 1)), skin, PERSON)
