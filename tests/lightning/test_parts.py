"""Lightning parts without a full run: sampler, generators, callback checks, shipped configs."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from benchmark.errors import ConfigError
from benchmark.lightning.attack_callback import AttackCallback, image_generators
from benchmark.lightning.cli import check_config
from benchmark.lightning.datamodule import ShardSampler, collate
from benchmark.models.zoo import REPO_ROOT

SHIPPED = sorted(p.relative_to(REPO_ROOT) for p in (REPO_ROOT / "configs").rglob("*.yaml")
                 if p.parent.name != "models")


@pytest.mark.parametrize("length", [0, 1, 2, 3, 5, 8, 13])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shard_sampler_yields_every_index_exactly_once(length, world):
    shards = [list(ShardSampler(length, rank, world)) for rank in range(world)]
    assert sorted(i for shard in shards for i in shard) == list(range(length))
    assert [len(ShardSampler(length, rank, world)) for rank in range(world)] == [len(s) for s in shards]


def test_collate_refuses_mixed_sizes_with_the_names():
    samples = [{"image": torch.zeros(3, 4, 5), "label": torch.zeros(4, 5, dtype=torch.long), "name": "a"},
               {"image": torch.zeros(3, 6, 5), "label": torch.zeros(6, 5, dtype=torch.long), "name": "b"}]
    with pytest.raises(Exception, match="a, b"):
        collate(samples)


def test_per_image_generators_depend_only_on_seed_attack_and_name():
    first = image_generators(0, "pgd", ["x", "y"], torch.device("cpu"))
    alone = image_generators(0, "pgd", ["y"], torch.device("cpu"))
    draw = lambda g: torch.rand(4, generator=g)  # noqa: E731
    assert torch.equal(draw(first[1]), draw(alone[0]))
    others = [image_generators(1, "pgd", ["y"], torch.device("cpu"))[0],
              image_generators(0, "segpgd", ["y"], torch.device("cpu"))[0],
              image_generators(0, "pgd", ["x"], torch.device("cpu"))[0]]
    reference = draw(image_generators(0, "pgd", ["y"], torch.device("cpu"))[0])
    assert all(not torch.equal(draw(g), reference) for g in others)


def test_callback_builds_attacks_at_construction_with_the_track():
    callback = AttackCallback(["fgsm", "pgd", {"name": "segpgd", "lambda_offset": 1}], steps=7, alpha=1 / 255)
    assert callback.names == ["fgsm", "pgd", "segpgd"]
    fgsm, pgd, segpgd = (callback.attacks[n].to_dict() for n in callback.names)
    assert fgsm["steps"] == 1 and fgsm["alpha"] == pytest.approx(8 / 255)  # one step of eps
    assert pgd["steps"] == 7 and pgd["alpha"] == pytest.approx(1 / 255)
    assert segpgd["lambda_offset"] == 1
    with pytest.raises(ConfigError, match="listed twice"):
        AttackCallback(["pgd", "pgd"])
    with pytest.raises(ConfigError, match="decay"):
        AttackCallback([{"name": "pgd+mi", "decay": -1}])


def test_callback_refuses_inference_mode():
    callback = AttackCallback(["pgd"])
    trainer = pl.Trainer(inference_mode=True, logger=False, enable_progress_bar=False)
    with pytest.raises(ConfigError, match="inference_mode=False"):
        callback.setup(trainer, pl.LightningModule(), "validate")
    callback.setup(pl.Trainer(inference_mode=False, logger=False, enable_progress_bar=False),
                   pl.LightningModule(), "validate")


@pytest.mark.parametrize("config", SHIPPED, ids=[str(p) for p in SHIPPED])
def test_every_shipped_config_instantiates(config):
    checked = check_config(["--config", str(REPO_ROOT / config)])
    assert checked.attack.names and checked.models
    assert Path(checked.config.results.out_dir).parts[0] == "runs"
