"""Non-finite models are refused, never scored: NaN / inf weights at load, logits at evaluation, gradients
in the attack (NaN images, named by the module's check)."""

import re

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from benchmark.attacks import build_attack
from benchmark.errors import CheckpointError, ModelError
from benchmark.lightning import AdvKey
from benchmark.models.checkpoints import load_weights, save_checkpoint

NAN, INF = float("nan"), float("inf")


class SmallNet(nn.Module):
    """conv + BN backbone and a 1x1 ``decode_head.conv_seg`` (8 -> 5), named like an mmseg segmentor."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.decode_head = nn.Module()
        self.decode_head.conv_seg = nn.Conv2d(8, 5, 1)

    def forward(self, x):
        return self.decode_head.conv_seg(self.backbone(x))


def _damaged(tmp_path, edits: dict) -> tuple:
    """A checkpoint of SmallNet with ``edits`` (key -> (flat indices, value)) applied; (path, trained)."""
    trained = SmallNet(seed=1)
    state = {key: value.clone() for key, value in trained.state_dict().items()}
    for key, (indices, value) in edits.items():
        state[key].view(-1)[list(indices)] = value
    path = tmp_path / "damaged.pth"
    torch.save({"state_dict": state, "meta": {}}, path)
    return path, trained


@pytest.mark.parametrize(("edits", "culprit"), [
    ({"decode_head.conv_seg.weight": ((0, 7, 39), NAN)}, "decode_head.conv_seg.weight holds 3 NaN and 0 inf of 40"),
    ({"backbone.1.running_var": ((2,), INF)}, "backbone.1.running_var holds 0 NaN and 1 inf of 8"),
    # the first culprit in the model's state_dict order is named, whatever the file's order
    ({"decode_head.conv_seg.bias": ((0,), NAN), "backbone.0.weight": ((1, 2), -INF)},
     "backbone.0.weight holds 0 NaN and 2 inf of 216"),
], ids=["nan-in-head", "inf-in-buffer", "first-in-model-order"])
def test_load_weights_refuses_non_finite_tensors_and_loads_nothing(edits, culprit, tmp_path):
    path, _ = _damaged(tmp_path, edits)
    model = SmallNet(seed=2)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        load_weights(model, path)
    message = str(err.value)
    assert message == f"{path}: tensor {culprit} values; the checkpoint is damaged or its training diverged"
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())


def test_a_finite_checkpoint_still_loads(tmp_path):
    trained = SmallNet(seed=1)
    with torch.no_grad():
        trained.backbone[1].running_var.fill_(1e30)  # large but finite
    path = tmp_path / "fine.pth"
    save_checkpoint(trained, path)
    model = SmallNet(seed=2)
    report = load_weights(model, path)
    assert report.loaded == report.total == len(trained.state_dict())
    assert all(torch.equal(trained.state_dict()[key], value) for key, value in model.state_dict().items())


def test_zoo_checkpoint_errors_name_the_model(tmp_path, monkeypatch):
    import benchmark.models as models
    from benchmark.models import zoo

    path, _ = _damaged(tmp_path, {"decode_head.conv_seg.weight": ((0,), NAN)})
    folder = tmp_path / "zoo"
    folder.mkdir()
    (folder / "mine.yaml").write_text(f"my-damaged:\n  config: small.py\n  dataset: synthetic-voc\n"
                                      f"  checkpoint: {path}\n")
    monkeypatch.setenv("BENCHMARK_MODEL_ZOO", str(folder))
    # the adapter's job for this stand-in: load the checkpoint into the network (no mmseg import)
    monkeypatch.setattr(models, "build_segmentor", lambda config, checkpoint, **_: load_weights(SmallNet(), checkpoint))
    zoo._zoo.cache_clear()
    try:
        with pytest.raises(CheckpointError) as err:
            models.build_zoo_model("my-damaged")
    finally:
        zoo._zoo.cache_clear()
    assert str(err.value).startswith(f"model 'my-damaged': {path}: tensor decode_head.conv_seg.weight holds 1 NaN")


class Diverging(nn.Module):
    """A 1x1 conv whose logits are NaN for image 0 of a batch once its input differs from ``clean``
    (always, if ``clean`` is None); image 1 keeps finite logits and gradients."""

    def __init__(self, clean: torch.Tensor | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 1)
        self.clean = clean

    def forward(self, x):
        logits = self.conv(x)
        moved = (torch.ones(x.shape[0], dtype=torch.bool) if self.clean is None
                 else (x - self.clean[: x.shape[0]]).abs().amax(dim=(1, 2, 3)) > 0)
        moved &= torch.arange(x.shape[0]) == 0
        # added, not multiplied under a where: the finite image's gradient stays finite
        return logits + torch.where(moved, NAN, 0.0)[:, None, None, None]


@pytest.fixture()
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 6, 7, generator=g), torch.randint(0, 4, (2, 6, 7), generator=g)


@pytest.mark.parametrize(("name", "settings", "clean_only"), [
    ("pgd", {}, False),                                   # the first step's gradient
    ("transegpgd", {}, False),                            # the clean logits its KL reads
    ("pgd", {"steps": 3, "random_start": False}, True),   # x^0 = x is still finite: the second step's
    ("pgd+mi", {}, False),
    ("fgsm", {}, False),
], ids=["pgd", "transegpgd-clean", "pgd-later-step", "pgd+mi", "fgsm"])
def test_an_image_whose_source_logits_or_gradient_turn_non_finite_comes_back_nan(name, settings, clean_only, batch):
    images, labels = batch
    options = settings if name == "fgsm" else {"steps": 2, **settings}
    model = Diverging(images if clean_only else None).eval()
    adv = build_attack(name, **options)(model, images, labels, generator=torch.Generator().manual_seed(0))
    assert adv[0].isnan().all()  # never the clean image back, scored as an attack that failed
    assert torch.isfinite(adv[1]).all() and not torch.equal(adv[1], images[1])


def test_validation_step_names_the_attack_whose_image_is_not_finite():
    from benchmark.lightning.module import TransferModule

    module = TransferModule(source=["default-pspnet-r18"], targets=["default-deeplabv3-r18"], conditions=["pgd"],
                            num_classes=7)
    module.nets["default-deeplabv3-r18"] = StandIn()
    module.eval().on_validation_epoch_start()
    images = torch.rand(2, 3, 6, 7, generator=torch.Generator().manual_seed(0))
    adv = images.clone()
    adv[1] = NAN  # what the attack core returns for an image whose gradient turned NaN
    batch = {"image": images, "label": torch.randint(0, 7, (2, 6, 7)), "name": ["img_a", "img_b"],
             "adv": {AdvKey("default-pspnet-r18", "pgd", 0): adv}}
    with pytest.raises(ModelError) as err:
        module.validation_step(batch, 0)
    assert str(err.value) == ("source 'default-pspnet-r18', attack pgd (seed 0): the source's logits or the input "
                              "gradient turned non-finite on image img_b of batch [img_a, ...]; the source's weights "
                              "or the numerics (autocast fp16 overflow?) are broken")
    assert not module._images


class StandIn(nn.Module):
    """A 1x1 conv 3 -> 7 target; with ``bad`` (NaN or inf), its logits are ``bad`` for images with a
    pixel above 1.5, or for every image when ``everywhere``."""

    def __init__(self, bad: float | None = None, everywhere: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(3, 7, 1)
        self.bad, self.everywhere = bad, everywhere

    def forward(self, x):
        logits = self.conv(x)
        if self.bad is None:
            return logits
        hit = torch.full((x.shape[0],), self.everywhere) | (x.amax(dim=(1, 2, 3)) > 1.5)
        return torch.where(hit[:, None, None, None], torch.full_like(logits, self.bad), logits)


@pytest.mark.parametrize(("target", "expected"), [
    (None, None),
    (StandIn(NAN, everywhere=True), "model 'default-deeplabv3-r18' gives non-finite logits (NaN) on the clean image "
                                    "img_a of batch [img_a, ...]"),
    (StandIn(INF), "model 'default-deeplabv3-r18' gives non-finite logits (inf) on the adversarial image "
                   "(default-pspnet-r18/pgd@0) img_b of batch [img_a, ...]"),
], ids=["finite", "nan-everywhere", "inf-on-one-adversarial-image"])
@pytest.mark.parametrize("eval_batch_size", [None, 3])
def test_validation_step_refuses_non_finite_target_logits(target, expected, eval_batch_size):
    from benchmark.lightning.module import TransferModule

    module = TransferModule(source=["default-pspnet-r18"], targets=["default-pspnet-r18", "default-deeplabv3-r18"],
                            conditions=["pgd"], num_classes=7, eval_batch_size=eval_batch_size)
    module.nets["default-pspnet-r18"] = StandIn()  # finite: the culprit is the second target
    module.nets["default-deeplabv3-r18"] = target or StandIn()
    module.eval().on_validation_epoch_start()
    images = torch.rand(2, 3, 6, 7, generator=torch.Generator().manual_seed(0))
    adv = images.clone()
    adv[1, 0, 0, 0] = 2.0  # only this image's logits overflow in the second case
    batch = {"image": images, "label": torch.randint(0, 7, (2, 6, 7)), "name": ["img_a", "img_b"],
             "adv": {AdvKey("default-pspnet-r18", "pgd", 0): adv}}
    if expected is None:
        module.validation_step(batch, 0)
        assert len(module._images) == 2 * 2 * 2
        return
    with pytest.raises(ModelError) as err:
        module.validation_step(batch, 0)
    message = str(err.value)
    assert message == f"{expected}; its weights or the numerics (autocast fp16 overflow?) are broken"
    assert not module._images  # nothing recorded for a journal
    assert re.fullmatch(r"[^\n]+", message)
