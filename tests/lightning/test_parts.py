"""Lightning parts without a full run: sampler, generators, callback checks, shipped configs."""

import re
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from benchmark.errors import ConfigError
from benchmark.lightning.attack_callback import AttackCallback, image_generators
from benchmark.lightning import AdvKey
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


def test_logits_are_brought_to_the_label_size_differentiably():
    from benchmark.lightning.module import at_label_size

    model = torch.nn.Conv2d(3, 4, 1)
    images = torch.rand(2, 3, 10, 14, requires_grad=True)
    same = at_label_size(model, (10, 14))(images)
    assert torch.equal(same, model(images))
    resized = at_label_size(model, (20, 28))(images)
    assert resized.shape == (2, 4, 20, 28)
    (grad,) = torch.autograd.grad(resized.sum(), images)
    assert grad.abs().sum() > 0


def test_attack_callback_handles_images_resized_away_from_their_labels():
    """resize=mmseg: images at the model's scale, labels at the original size."""
    class Source(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Conv2d(3, 3, 1)

        @property
        def sources(self):
            return {"net": self.net}

    module = Source().eval()
    callback = AttackCallback(["pgd"], steps=2)
    batch = {"image": torch.rand(1, 3, 16, 24), "label": torch.randint(0, 3, (1, 8, 12)), "name": ["a"]}
    callback.on_validation_batch_start(pl.Trainer(logger=False, enable_progress_bar=False), module, batch, 0)
    adv = batch["adv"][AdvKey("net", "pgd", 0)]
    assert adv.shape == batch["image"].shape and batch["label"].shape == (1, 8, 12)
    assert (adv - batch["image"]).abs().max() <= 8 / 255 + 1e-6 and not torch.equal(adv, batch["image"])


def test_callback_runs_every_attack_on_every_source_and_seed_with_shared_random_starts():
    class Sources(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Conv2d(3, 3, 1), torch.nn.Conv2d(3, 3, 1)

        @property
        def sources(self):
            return {"a": self.a, "b": self.b}

    module = Sources().eval()
    callback = AttackCallback(["pgd", "fgsm"], steps=1, seeds=[0, 5])
    batch = {"image": torch.rand(2, 3, 8, 8), "label": torch.randint(0, 3, (2, 8, 8)), "name": ["x", "y"]}
    callback.on_validation_batch_start(pl.Trainer(logger=False, enable_progress_bar=False), module, batch, 0)
    assert list(batch["adv"]) == [AdvKey(s, a, seed) for s in "ab" for a in ("pgd", "fgsm") for seed in (0, 5)]
    advs = batch["adv"]
    assert not torch.equal(advs[AdvKey("a", "pgd", 0)], advs[AdvKey("a", "pgd", 5)])  # seeds differ
    assert not torch.equal(advs[AdvKey("a", "pgd", 0)], advs[AdvKey("b", "pgd", 0)])  # sources differ
    with pytest.raises(ConfigError, match="attack.seeds"):
        AttackCallback(["pgd"], seeds=[1, 1])


def test_compiled_source_gives_the_eager_attack_and_reports_its_compile_time(capsys):
    class Source(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                           torch.nn.Conv2d(8, 3, 1))

        @property
        def sources(self):
            return {"net": self.net}

    module = Source().eval()
    images, labels = torch.rand(2, 3, 12, 16), torch.randint(0, 3, (2, 12, 16))
    advs = []
    for compile in (False, "eager"):  # dynamo's graph capture, run without code generation
        callback = AttackCallback(["pgd", "transegpgd"], steps=3, compile=compile)
        batch = {"image": images, "label": labels, "name": ["a", "b"]}
        callback.on_validation_batch_start(pl.Trainer(logger=False, enable_progress_bar=False), module, batch, 0)
        advs.append(batch["adv"])
    assert callback.compile == "eager" and AttackCallback(["pgd"], compile=True).compile == "inductor"
    for key in advs[0]:
        assert torch.equal(advs[0][key], advs[1][key])
    assert re.search(r"attack.compile eager: source net compiled in [\d.]+ s \(forward \+ input backward of a "
                     r"2x3x12x16 batch", capsys.readouterr().out)
    with pytest.raises(ConfigError, match="attack.compile: unknown torch.compile backend 'nope'; known: .*inductor"):
        AttackCallback(["pgd"], compile="nope")


def test_attack_labels_follow_the_image_size_by_nearest_neighbour():
    from benchmark.lightning.attack_callback import attack_labels

    labels = torch.tensor([[[0, 1], [255, 2]]])
    up = attack_labels(torch.zeros(1, 3, 4, 4), labels)
    assert up.dtype == torch.int64 and up.shape == (1, 4, 4)
    assert torch.equal(up[0], labels[0].repeat_interleave(2, 0).repeat_interleave(2, 1))
    assert attack_labels(torch.zeros(1, 3, 2, 2), labels) is labels


def test_quantise_keeps_8bit_images_inside_the_budget():
    from benchmark.lightning.attack_callback import quantise

    g = torch.Generator().manual_seed(0)
    clean = torch.randint(0, 256, (2, 3, 9, 11), generator=g).float() / 255
    adv = (clean + (torch.rand(clean.shape, generator=g) * 2 - 1) * (8.6 / 255)).clamp(0, 1)
    out = quantise(clean, adv, 8 / 255)
    a8, x8 = (out * 255).round(), (clean * 255).round()
    assert torch.allclose(out * 255, a8, atol=1e-4)  # exactly representable 8-bit levels
    assert (a8 - x8).abs().max() <= 8 and a8.min() >= 0 and a8.max() <= 255
    assert (out - clean).abs().max() <= 8 / 255 + 1e-6


def test_conditions_are_stacked_per_target_and_give_the_per_condition_results():
    from benchmark.lightning.module import TransferModule, _metric_key
    from benchmark.metrics import per_image_counts
    from benchmark.results import CLEAN

    torch.manual_seed(0)
    images = torch.rand(3, 3, 48, 64)
    labels = torch.randint(0, 7, (3, 48, 64))
    labels[:, :4] = 255
    advs = {AdvKey("default-pspnet-r18", a, 0): (images + (2 * torch.rand_like(images) - 1) * 8 / 255).clamp(0, 1)
            for a in ("pgd", "segpgd")}
    outcomes = []
    for chunk in (None, 4, 1):
        module = TransferModule(source=["default-pspnet-r18"], targets=["default-pspnet-r18", "default-deeplabv3-r18"],
                                conditions=["pgd", "segpgd"], num_classes=7, eval_batch_size=chunk)
        module.setup("validate")
        module.eval()
        calls = []
        handle = module.nets["default-deeplabv3-r18"].register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
        module.on_validation_epoch_start()
        module.validation_step({"image": images, "label": labels, "name": ["a", "b", "c"], "adv": dict(advs)}, 0)
        handle.remove()
        assert calls == ([9] if chunk is None else [4, 4, 1] if chunk == 4 else [1] * 9)  # 3 conditions x 3 images
        outcomes.append(module)
    reference = outcomes[0]
    with torch.no_grad():
        for target in reference.target_names:
            net = reference.nets[target]
            clean = net(images).argmax(1)
            for condition, x in [(CLEAN, images), *advs.items()]:
                pred = clean if condition == CLEAN else net(x).argmax(1)
                inter, _, _ = per_image_counts(pred, labels, 7)
                for module in outcomes:
                    matrix = module.scores[_metric_key(target, condition)].confmat
                    valid = labels != 255
                    expected = torch.bincount(labels[valid] * 7 + pred[valid], minlength=49).view(7, 7)
                    assert torch.equal(matrix.cpu(), expected)
                    records = [r for r in module._images if r.target == target
                               and r.condition == (CLEAN if condition == CLEAN else condition.attack)]
                    assert [r.image for r in records] == ["a", "b", "c"]
                    for n, record in enumerate(records):
                        assert record.intersection == tuple(int(inter[n, k]) for k in record.classes)
                        fooled = None if condition == CLEAN else int((valid[n] & (clean[n] == labels[n])
                                                                      & (pred[n] != labels[n])).sum())
                        assert record.fooled == fooled
    with pytest.raises(ConfigError, match="model.eval_batch_size must be a positive integer or null, got 0"):
        TransferModule(source=["default-pspnet-r18"], targets=["default-pspnet-r18"], num_classes=7, eval_batch_size=0)


def test_wandb_run_starts_in_the_background_and_its_errors_reach_the_main_thread(tmp_path, monkeypatch):
    import threading

    from lightning.pytorch.loggers import WandbLogger

    from benchmark.lightning.logging import BackgroundWandbLogger, _PendingRun

    release, entered, started = threading.Event(), threading.Event(), []

    def slow_start(self):
        started.append(threading.current_thread().name)
        entered.set()
        release.wait(10)
        return "the run"

    monkeypatch.setattr(WandbLogger, "experiment", property(slow_start))
    logger = BackgroundWandbLogger(save_dir=str(tmp_path), offline=True)
    assert isinstance(logger.experiment, _PendingRun) and not started  # set-up's touch starts nothing
    logger.start_run()
    logger.start_run()  # once
    assert entered.wait(10)
    logger.log_hyperparams({})  # nothing to log: does not wait for the run
    pending = logger.experiment  # what Lightning's set-up touches: a stand-in, at once
    assert logger._starting.is_alive() and started == ["wandb-init"]
    release.set()
    assert pending.upper() == "THE RUN"  # its first use waits for the run and forwards to it
    assert logger.experiment == "the run" and logger.wait_for_run() == "the run"

    def failing_start(self):
        raise RuntimeError("wandb: cannot start")

    monkeypatch.setattr(WandbLogger, "experiment", property(failing_start))
    logger = BackgroundWandbLogger(save_dir=str(tmp_path), offline=True)
    with pytest.raises(RuntimeError, match="wandb: cannot start"):
        logger.wait_for_run()
