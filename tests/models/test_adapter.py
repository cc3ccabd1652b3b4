"""The mmseg adapter's contract: shapes, normalisation, inference modes, gradients, frozen state."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from benchmark.errors import ConfigError
from benchmark.models import build_segmentor
from benchmark.models.zoo import REPO_ROOT, load_zoo
from tests.models.tiny import MEAN, STD, tiny_config

ZOO = load_zoo()


def _unique_configs():
    seen = {}
    for entry in ZOO.values():
        seen.setdefault(entry.config, entry.name)
    return sorted(seen.items())


@pytest.mark.parametrize(("config", "name"), _unique_configs(), ids=[n for _, n in _unique_configs()])
def test_every_zoo_architecture_builds_and_backpropagates_to_the_input(config, name):
    entry = ZOO[name]
    model = build_segmentor(entry.config_path, mode="whole")
    assert not model.training
    images = torch.rand(1, 3, 41, 57, requires_grad=True)
    logits = model(images)
    assert logits.shape == (1, model.num_classes, 41, 57)
    assert len(model.class_names) == model.num_classes
    (grad,) = torch.autograd.grad(logits.logsumexp(1).sum(), images)
    assert grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())
    assert not any(type(m).__name__ == "SyncBatchNorm" for m in model.modules())


def test_shipped_slide_configs_keep_their_mode():
    entry = ZOO["segformer-b0-cityscapes"]
    assert build_segmentor(entry.config_path).mode == "slide"


def test_slide_mode_of_a_whole_mode_config_takes_the_training_crop():
    # mmseg's Cityscapes CNN configs test in whole mode and define no windows
    entry = ZOO["pspnet-r50-cityscapes"]
    with pytest.raises(ConfigError, match="slide inference needs crop_size and stride"):
        build_segmentor(entry.config_path, mode="slide")
    slide = build_segmentor(entry.config_path, mode="slide", default_crop_size=entry.crop_size)
    assert slide.segmentor.test_cfg["crop_size"] == (512, 1024) and slide.segmentor.test_cfg["stride"] == (341, 683)
    whole = build_segmentor(entry.config_path, default_crop_size=entry.crop_size)
    assert whole.mode == "whole" and "crop_size" not in whole.segmentor.test_cfg
    own = build_segmentor(ZOO["segformer-b0-cityscapes"].config_path, default_crop_size=(8, 8))
    assert own.segmentor.test_cfg["crop_size"] == (1024, 1024)  # a config's own windows win


@pytest.mark.parametrize("shape", [(2, 3, 29, 45), (1, 3, 64, 33)])
def test_output_is_logits_at_input_resolution(shape):
    model = build_segmentor(tiny_config(num_classes=6))
    logits = model(torch.rand(shape))
    assert logits.shape == (shape[0], 6, shape[2], shape[3])
    assert logits.dtype == torch.float32


def test_sync_bn_is_replaced_and_downloads_are_cleared():
    model = build_segmentor(tiny_config())
    kinds = {type(m).__name__ for m in model.modules()}
    assert "BatchNorm2d" in kinds and "SyncBatchNorm" not in kinds


def test_normalisation_inside_matches_a_hand_computation():
    model = build_segmentor(tiny_config())
    images = torch.rand(2, 3, 24, 40)
    by_hand = (images * 255.0 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    metas = [dict(ori_shape=(24, 40), img_shape=(24, 40), pad_shape=(24, 40))] * 2
    expected = model.segmentor.inference(by_hand, metas)
    torch.testing.assert_close(model(images), expected, rtol=1e-5, atol=1e-5)


def test_slide_and_whole_agree_when_one_crop_covers_the_image():
    whole = build_segmentor(tiny_config(mode="whole"))
    slide = build_segmentor(tiny_config(mode="slide", crop_size=(64, 64), stride=(48, 48)))
    slide.load_state_dict(whole.state_dict())
    images = torch.rand(2, 3, 40, 56)
    torch.testing.assert_close(slide(images), whole(images))


def test_slide_windows_differ_from_whole_and_pass_gradients_to_every_pixel():
    model = build_segmentor(tiny_config(), mode="slide", crop_size=(24, 24), stride=(16, 16))
    assert model.mode == "slide"
    images = torch.rand(1, 3, 40, 56, requires_grad=True)
    logits = model(images)
    assert logits.shape == (1, 5, 40, 56)
    (grad,) = torch.autograd.grad(F.log_softmax(logits, 1)[:, 0].sum(), images)
    reached = grad.abs().sum(1)[0] > 0
    assert reached.float().mean() > 0.9
    # every window of the 40x56 grid (crop 24, stride 16) passes gradient back
    for top in (0, 16):
        for left in (0, 16, 32):
            assert reached[top:top + 24, left:left + 24].any()
    slide_logits = logits.detach()
    whole = build_segmentor(tiny_config())
    whole.load_state_dict(model.state_dict())
    assert not torch.allclose(slide_logits, whole(images.detach()))


def test_parameters_are_frozen_and_receive_no_gradient():
    model = build_segmentor(tiny_config())
    images = torch.rand(1, 3, 32, 32, requires_grad=True)
    model(images).sum().backward()
    assert images.grad is not None
    assert all(not p.requires_grad and p.grad is None for p in model.parameters())


def test_unknown_config_and_bad_mode_are_config_errors():
    with pytest.raises(ConfigError, match="no_such_config"):
        build_segmentor("no_such_config.py")
    with pytest.raises(ConfigError, match="inference mode"):
        build_segmentor(tiny_config(), mode="tiles")


def test_cfg_options_make_tiny_variants():
    model = build_segmentor(tiny_config(), cfg_options={"model.decode_head.num_classes": 3})
    assert model.num_classes == 3 and model(torch.rand(1, 3, 16, 16)).shape[1] == 3


def test_window_checkpointing_keeps_outputs_and_input_gradients():
    plain = build_segmentor(tiny_config(), mode="slide", crop_size=(24, 24), stride=(16, 16))
    saving = build_segmentor(tiny_config(), mode="slide", crop_size=(24, 24), stride=(16, 16),
                             checkpoint_windows=True)
    saving.load_state_dict(plain.state_dict())
    images = torch.rand(2, 3, 40, 56)
    grads, head_calls = [], []
    for model in (plain, saving):
        calls = []
        hook = model.segmentor.backbone.register_forward_hook(lambda *args: calls.append(1))
        x = images.clone().requires_grad_(True)
        logits = model(x)
        grads.append(torch.autograd.grad(F.log_softmax(logits, 1)[:, 1].sum(), x)[0])
        hook.remove()
        head_calls.append(len(calls))
        with torch.no_grad():
            torch.testing.assert_close(model(images), plain(images))
    torch.testing.assert_close(grads[1], grads[0])
    assert grads[0].abs().sum() > 0
    assert head_calls == [6, 12]  # 2 x 3 windows; checkpointing runs each window again in the backward


def test_channels_last_keeps_logits_and_input_gradients_and_feeds_nhwc():
    plain = build_segmentor(tiny_config())
    nhwc = build_segmentor(tiny_config())
    nhwc.load_state_dict(plain.state_dict())
    assert nhwc.use_channels_last() is nhwc
    conv = next(m for m in nhwc.segmentor.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and conv.weight.shape[-1] > 1
    seen = []
    hook = conv.register_forward_pre_hook(lambda m, a: seen.append(a[0].is_contiguous(memory_format=torch.channels_last)))
    images = torch.rand(2, 3, 40, 56)
    grads = []
    for model in (plain, nhwc):
        x = images.clone().requires_grad_(True)
        logits = model(x)
        grads.append((logits, torch.autograd.grad(F.log_softmax(logits, 1)[:, 1].sum(), x)[0]))
    hook.remove()
    assert seen == [True]
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-4, atol=1e-6)
    assert grads[0][1].abs().sum() > 0


def test_missing_mmcv_is_one_clear_line():
    code = ("import sys\nsys.modules['mmcv'] = None  # as if mmcv were not installed\n"
            "from benchmark.errors import ConfigError\nfrom benchmark.models import build_segmentor\n"
            "from tests.models.tiny import tiny_config\n"
            "try:\n    build_segmentor(tiny_config())\nexcept ConfigError as err:\n    print(err)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("mmsegmentation needs mmcv, which is not installed: pip install 'mmcv-lite")


def test_features_are_the_segmentors_own_layer_outputs_with_input_gradients():
    model = build_segmentor(tiny_config())
    images = torch.rand(2, 3, 40, 48, requires_grad=True)
    assert model.default_feature_layer == "backbone.layer3"
    features = model.features(images, ["backbone.layer3", "backbone.layer1"])
    # the same tensor the backbone computes on the normalised images
    expected = model.segmentor.backbone((images - model.mean) / model.std)
    assert torch.allclose(features["backbone.layer1"], expected[0], atol=1e-5)
    assert torch.allclose(features["backbone.layer3"], expected[2], atol=1e-5)
    assert torch.allclose(model.features(images, ["backbone[3]"])["backbone[3]"], expected[3], atol=1e-5)
    (grad,) = torch.autograd.grad(features["backbone.layer3"].sum(), images)
    assert grad.abs().sum() > 0
    with pytest.raises(ValueError, match="layer 'backbone.layer9': no such submodule"):
        model.features(images, ["backbone.layer9"])


def test_features_stop_at_the_deepest_requested_layer():
    model = build_segmentor(tiny_config())
    ran = []
    handle = model.segmentor.backbone.layer4.register_forward_hook(lambda *a: ran.append("layer4"))
    model.features(torch.rand(1, 3, 32, 32), ["backbone.layer2"])
    handle.remove()
    assert ran == []


def test_fspgd_runs_on_the_adapter_through_its_features():
    from benchmark.attacks import build_attack

    model = build_segmentor(tiny_config())
    images = torch.rand(1, 3, 32, 32)
    adv = build_attack("fspgd", steps=2)(model, images, torch.zeros(1, 32, 32, dtype=torch.long),
                                         generator=[torch.Generator().manual_seed(0)])
    assert 0 < (adv - images).abs().max() <= 8 / 255 + 1e-6


def test_logits_and_features_come_from_one_forward_and_rppgd_reads_them():
    from benchmark.attacks import build_attack

    model = build_segmentor(tiny_config())
    images = torch.rand(1, 3, 32, 32)
    logits, found = model.logits_and_features(images, ["backbone.layer4"])
    torch.testing.assert_close(logits, model(images))
    torch.testing.assert_close(found["backbone.layer4"], model.features(images, ["backbone.layer4"])["backbone.layer4"])
    labels = model(images).argmax(1)
    adv = build_attack("rppgd", prototype_grad=True, layer="backbone.layer4")(
        model, images, labels, generator=[torch.Generator().manual_seed(0)])
    assert 0 < (adv - images).abs().max() <= 8 / 255 + 1e-6


def test_layer_table_lists_names_types_and_shapes_and_the_cli_prints_it():
    model = build_segmentor(tiny_config())
    table = {name: (kind, shape) for name, kind, shape in model.layer_table((32, 32))}
    assert table["backbone.layer3"] == ("ResLayer", "(1, 32, 4, 4)")
    assert table["backbone"][1].startswith("[(1, 8, 8, 8), ")  # a list: NAME[i] selects one
    assert table["decode_head.loss_decode"][1] == "-"  # never called by inference
    out = subprocess.run([sys.executable, "-m", "benchmark", "models", "--layers", "default-pspnet-r18",
                          "--size", "64", "64"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:2] == ["layer", "module"]
    assert any(line.split()[:2] == ["backbone.layer3", "ResLayer"] and line.endswith("(1, 64, 8, 8)") for line in lines)
    assert "default feature layer backbone.layer3" in lines[-1]
    bad = subprocess.run([sys.executable, "-m", "benchmark", "models", "--layers", "nope"],
                         capture_output=True, text=True, cwd=REPO_ROOT)
    assert bad.returncode != 0 and bad.stderr.strip().startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
