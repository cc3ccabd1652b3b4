"""The dataset registry: read-only, no duplicates, consistent entries, public class facts."""

from __future__ import annotations

import pytest

from benchmark.data import DATASETS, LOADERS, DatasetInfo
from benchmark.data.catalog import _registry, bit_palette
from benchmark.errors import ConfigError

EXPECTED_CLASS_COUNTS = {"voc2012": 21, "cityscapes": 19, "ade20k": 150, "synthetic-voc": 7, "synthetic-cityscapes": 7}


def test_registry_holds_exactly_the_documented_datasets():
    assert {name: info.num_classes for name, info in DATASETS.items()} == EXPECTED_CLASS_COUNTS


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        DATASETS["mine"] = DATASETS["voc2012"]  # type: ignore[index]


def test_duplicate_name_is_an_error():
    with pytest.raises(ConfigError, match="duplicate dataset name 'voc2012'"):
        _registry(DATASETS["voc2012"], DATASETS["cityscapes"], DATASETS["voc2012"])


def test_info_is_frozen():
    with pytest.raises(AttributeError):
        DATASETS["voc2012"].ignore_index = 0  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_entry_is_consistent(name):
    info = DATASETS[name]
    assert info.name == name
    assert info.layout in LOADERS
    assert len(info.palette) == len(info.classes) == info.num_classes
    assert all(len(colour) == 3 and all(0 <= c <= 255 for c in colour) for colour in info.palette)
    assert info.ignore_index == 255
    assert info.test_scale is None or (len(info.test_scale) == 2 and min(info.test_scale) > 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layout": "coco"}, "layout 'coco'"),
        ({"palette": ((0, 0, 0),)}, "1 palette colours for 2 classes"),
        ({"classes": ("a", "a")}, "duplicate class names"),
        ({"ignore_index": 1}, "ignore_index 1 is a class index"),
    ],
)
def test_info_validation(kwargs, match):
    fields = {"name": "t", "classes": ("a", "b"), "palette": ((0, 0, 0), (1, 1, 1))} | kwargs
    with pytest.raises(ConfigError, match=match):
        DatasetInfo(**fields)


def test_public_class_facts():
    voc, cityscapes, ade = DATASETS["voc2012"], DATASETS["cityscapes"], DATASETS["ade20k"]
    assert voc.classes[0] == "background" and voc.classes[15] == "person" and voc.classes[20] == "tvmonitor"
    assert cityscapes.classes[0] == "road" and cityscapes.classes[13] == "car" and cityscapes.classes[18] == "bicycle"
    assert ade.classes[0] == "wall" and ade.classes[12] == "person" and ade.classes[149] == "flag"
    assert cityscapes.palette[0] == (128, 64, 128) and cityscapes.palette[10] == (70, 130, 180)
    assert ade.reduce_zero_label and not voc.reduce_zero_label
    assert voc.test_scale == (2048, 512) and cityscapes.test_scale == (2048, 1024) and ade.test_scale == (2048, 512)


def test_cityscapes_table_maps_ids_to_the_19_train_ids():
    table = dict(DATASETS["cityscapes"].id_to_train_id)
    assert sorted(table) == list(range(34))
    assert sorted(v for v in table.values() if v != 255) == list(range(19))
    assert (table[7], table[26], table[33], table[0], table[1]) == (0, 13, 18, 255, 255)


def test_voc_colour_map():
    palette = bit_palette(256)
    assert palette[:4] == ((0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0))
    assert palette[15] == (192, 128, 128) and palette[255] == (224, 224, 192)
