"""GPU paths: the adapter, every attack and the CLI on CUDA, fp32 and bf16 autocast (skipped without CUDA)."""

import subprocess
import sys

import pytest
import torch

from benchmark.attacks import ATTACKS, build_attack
from benchmark.attacks.registry import LISTED_COMBINATIONS
from benchmark.models import build_segmentor, build_zoo_model
from benchmark.models.zoo import REPO_ROOT
from tests.models.tiny import tiny_config

pytestmark = pytest.mark.gpu
NAMES = [*ATTACKS, *LISTED_COMBINATIONS]


@pytest.fixture(scope="module")
def cuda_model():
    return build_zoo_model("default-pspnet-r18", device="cuda")


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 48, 64, generator=g).cuda()
    labels = torch.randint(0, 7, (2, 48, 64), generator=g).cuda()
    labels[:, :4] = 255
    return images, labels


@pytest.mark.parametrize("autocast", [None, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("name", NAMES)
def test_every_attack_runs_on_cuda_within_budget(name, autocast, cuda_model, batch):
    images, labels = batch
    attack = build_attack(name, eps=8 / 255)
    generators = [torch.Generator(device="cuda").manual_seed(i) for i in range(images.shape[0])]
    with torch.autocast("cuda", dtype=autocast or torch.float32, enabled=autocast is not None):
        adv = attack(cuda_model, images, labels, generator=generators)
    assert adv.device == images.device and adv.dtype == images.dtype
    assert torch.isfinite(adv).all()
    assert (adv - images).abs().max() <= 8 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert all(p.grad is None for p in cuda_model.parameters())


def test_adapter_slide_mode_on_cuda_matches_cpu():
    cpu = build_segmentor(tiny_config(), mode="slide", crop_size=(24, 24), stride=(16, 16))
    gpu = build_segmentor(tiny_config(), mode="slide", crop_size=(24, 24), stride=(16, 16), device="cuda")
    gpu.load_state_dict(cpu.state_dict())
    images = torch.rand(1, 3, 40, 56)
    torch.testing.assert_close(gpu(images.cuda()).cpu(), cpu(images), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_cli_run_on_gpu_with_bf16_attacks(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "benchmark.cli", "run", "--config", "configs/default.yaml", "--data.limit", "8",
         "--data.root", str(tmp_path / "data"), "--attack.steps", "3", "--attack.autocast", "bf16",
         "--trainer.accelerator", "gpu", "--trainer.devices", "1", "--logger", "none",
         "--results.out_dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=900, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "run" / "results.json").is_file()
