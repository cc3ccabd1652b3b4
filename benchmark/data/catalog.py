"""Dataset descriptions as data: :class:`DatasetInfo` and the read-only registry :data:`DATASETS`.

Nothing here reads files. Loaders receive a :class:`DatasetInfo` and take every per-dataset fact from
it (class list, ignore label, on-disk layout, label conversion, evaluation scale), so no loader needs an
``if name == ...`` branch.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from benchmark.errors import ConfigError

LAYOUTS = ("voc", "cityscapes", "ade20k")


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of one dataset.

    Args:
        name: registry key, e.g. ``"voc2012"``.
        classes: class names; the label value of ``classes[k]`` is ``k`` (after any conversion).
        palette: one ``(r, g, b)`` colour (0-255) per class, for visualisation and palette PNGs.
        ignore_index: label value excluded from losses and metrics (default 255).
        layout: on-disk layout read by the loader: ``"voc"``, ``"cityscapes"`` or ``"ade20k"``.
        test_scale: ``(long, short)`` scale of mmseg's test-time ``Resize(keep_ratio=True)``, used by
            ``resize="mmseg"``; ``None`` means the native size is the evaluation size.
        reduce_zero_label: mmseg's ADE20K convention: stored 0 becomes ignore, stored v becomes v - 1.
        id_to_train_id: ``(stored id, train id)`` pairs for Cityscapes ``*_labelIds.png`` files, used
            only when a split has no ``*_labelTrainIds.png``; ids absent from the table are invalid.
        description: one line for listings.
    """

    name: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int = 255
    layout: str = "voc"
    test_scale: tuple[int, int] | None = None
    reduce_zero_label: bool = False
    id_to_train_id: tuple[tuple[int, int], ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ConfigError(f"dataset {self.name!r}: layout {self.layout!r} is not one of {LAYOUTS}")
        if len(self.palette) != len(self.classes):
            raise ConfigError(
                f"dataset {self.name!r}: {len(self.palette)} palette colours for {len(self.classes)} classes"
            )
        if len(set(self.classes)) != len(self.classes):
            raise ConfigError(f"dataset {self.name!r}: duplicate class names")
        if 0 <= self.ignore_index < len(self.classes):
            raise ConfigError(f"dataset {self.name!r}: ignore_index {self.ignore_index} is a class index")

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def bit_palette(n: int) -> tuple[tuple[int, int, int], ...]:
    """The PASCAL VOC colour map: bits of the index spread over the high bits of r, g and b."""
    colours = []
    for index in range(n):
        r = g = b = 0
        value = index
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        colours.append((r, g, b))
    return tuple(colours)


VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
    "bicycle",
)  # fmt: skip

CITYSCAPES_PALETTE = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip

# The official Cityscapes labelId -> trainId table (cityscapesScripts, labels.py). Ids mapped to
# ignore are listed too, so that any stored id outside this table is reported as invalid.
CITYSCAPES_ID_TO_TRAIN_ID = (
    (0, 255), (1, 255), (2, 255), (3, 255), (4, 255), (5, 255), (6, 255), (7, 0), (8, 1), (9, 255),
    (10, 255), (11, 2), (12, 3), (13, 4), (14, 255), (15, 255), (16, 255), (17, 5), (18, 255), (19, 6),
    (20, 7), (21, 8), (22, 9), (23, 10), (24, 11), (25, 12), (26, 13), (27, 14), (28, 15), (29, 255),
    (30, 255), (31, 16), (32, 17), (33, 18),
)  # fmt: skip

# The 150 classes of the SceneParsing benchmark (objectInfo150), in label order 1..150.
ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair",
    "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box",
    "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace",
    "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow",
    "screen door", "stairway", "river", "bridge", "bookcase", "blind", "coffee table", "toilet",
    "flower", "book", "hill", "bench", "countertop", "stove", "palm", "kitchen island", "computer",
    "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower",
    "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane", "dirt track",
    "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle",
    "oven", "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle",
    "lake", "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light",
    "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower",
    "radiator", "glass", "clock", "flag",
)  # fmt: skip

# Generated datasets (benchmark.data.synthetic). Label k is classes[k]; the generator imports these.
SYNTHETIC_VOC_CLASSES = ("background", "disk", "square", "triangle", "ring", "star", "bar")
SYNTHETIC_CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "vegetation", "sky", "car", "person")


def _registry(*infos: DatasetInfo) -> Mapping[str, DatasetInfo]:
    """A read-only name -> info mapping; a duplicate name is an error, never an overwrite."""
    table: dict[str, DatasetInfo] = {}
    for info in infos:
        if info.name in table:
            raise ConfigError(f"duplicate dataset name {info.name!r} in the registry")
        table[info.name] = info
    return MappingProxyType(table)


DATASETS: Mapping[str, DatasetInfo] = _registry(
    DatasetInfo(
        name="voc2012",
        classes=VOC_CLASSES,
        palette=bit_palette(len(VOC_CLASSES)),
        layout="voc",
        test_scale=(2048, 512),
        description="PASCAL VOC 2012 segmentation (VOCdevkit/VOC2012), 21 classes with background",
    ),
    DatasetInfo(
        name="cityscapes",
        classes=CITYSCAPES_CLASSES,
        palette=CITYSCAPES_PALETTE,
        layout="cityscapes",
        test_scale=(2048, 1024),
        id_to_train_id=CITYSCAPES_ID_TO_TRAIN_ID,
        description="Cityscapes fine annotations, 19 train ids",
    ),
    DatasetInfo(
        name="ade20k",
        classes=ADE20K_CLASSES,
        palette=bit_palette(len(ADE20K_CLASSES) + 1)[1:],
        layout="ade20k",
        test_scale=(2048, 512),
        reduce_zero_label=True,
        description="ADE20K SceneParsing (ADEChallengeData2016), 150 classes, zero label reduced",
    ),
    DatasetInfo(
        name="synthetic-voc",
        classes=SYNTHETIC_VOC_CLASSES,
        palette=bit_palette(len(SYNTHETIC_VOC_CLASSES)),
        layout="voc",
        description="generated shapes scenes in the VOC layout, 160x120 (benchmark.data.synthetic)",
    ),
    DatasetInfo(
        name="synthetic-cityscapes",
        classes=SYNTHETIC_CITYSCAPES_CLASSES,
        palette=tuple(CITYSCAPES_PALETTE[CITYSCAPES_CLASSES.index(c)] for c in SYNTHETIC_CITYSCAPES_CLASSES),
        layout="cityscapes",
        description="generated street scenes in the Cityscapes layout, 256x128 (benchmark.data.synthetic)",
    ),
)
