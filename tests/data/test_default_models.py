"""The committed embedded-default checkpoints: they load, and reproduce their recorded clean mIoU."""

import pytest
import torch

from benchmark.data import build_dataset
from benchmark.data.synthetic import generate
from benchmark.models import build_zoo_model
from benchmark.models.zoo import load_zoo
from benchmark.tools.train_default import RECIPES, Recipe, evaluate, train

DEFAULTS = sorted(name for name, entry in load_zoo().items() if entry.dataset == "synthetic-voc")


@pytest.fixture(scope="module")
def val_split(tmp_path_factory):
    # the val images do not depend on the train count, so n_train=0 writes the same val split
    return build_dataset("synthetic-voc", generate(tmp_path_factory.mktemp("d") / "voc", n_train=0), split="val")


def test_three_architecturally_different_default_models_are_registered():
    assert set(DEFAULTS) == set(RECIPES) and len(DEFAULTS) >= 3
    families = {type(build_zoo_model(name).segmentor.decode_head).__name__ for name in DEFAULTS}
    assert len(families) == len(DEFAULTS)


@pytest.mark.parametrize("name", DEFAULTS)
def test_committed_checkpoint_reproduces_its_recorded_clean_miou(name, val_split):
    entry = load_zoo()[name]
    assert entry.checkpoint_path.stat().st_size <= 15 * 2**20
    model = build_zoo_model(name)  # verifies the recorded sha256 first
    miou = evaluate(model, val_split)
    assert miou >= 0.70
    assert abs(miou - entry.clean_miou) <= 1e-4


def test_training_is_reproducible_from_the_seed(tmp_path):
    root = generate(tmp_path / "voc", n_train=8, n_val=1)
    recipe = Recipe("tiny", RECIPES["default-pspnet-r18"].config, epochs=1, batch_size=4)
    first, second = (train(recipe, root, seed=3, log=lambda _: None) for _ in range(2))
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), key
