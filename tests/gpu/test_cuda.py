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


# Attacks whose loop makes no host decision by design (DI / DS / BSR draw Python sizes and angles;
# APGD / SEA are left to the table of `benchmarks/attacks.py`).
SYNC_FREE = ["fgsm", "pgd", "segpgd", "cospgd", "transegpgd", "transegpgd+mi", "tsallispgd", "pgd+mi"]


def test_attack_loop_and_metric_update_never_wait_for_the_gpu(cuda_model, batch):
    from benchmark.metrics import AttackSuccessRate, SegmentationScores, per_image_counts

    images, labels = batch
    attacks = [build_attack(n, eps=8 / 255) if n == "fgsm" else build_attack(n, eps=8 / 255, steps=3)
               for n in SYNC_FREE]
    scores = SegmentationScores(7, validate_args=False).cuda()
    success = AttackSuccessRate().cuda()

    def one_batch():
        advs = [attack(cuda_model, images, labels,
                       generator=[torch.Generator(device="cuda").manual_seed(i) for i in range(images.shape[0])])
                for attack in attacks]
        with torch.no_grad():
            clean = cuda_model(images).argmax(1)
            for adv in advs:
                pred = cuda_model(adv).argmax(1)
                scores.update(pred, labels)
                success.update(clean, pred, labels)
                per_image_counts(pred, labels, 7)

    one_batch()  # warm-up: cuDNN's choices and the allocator's first blocks
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        one_batch()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert int(scores.num_images) == 2 * 2 * len(SYNC_FREE)


def test_validation_step_copies_to_the_host_once_per_batch(batch):
    import warnings

    from benchmark.lightning import AdvKey
    from benchmark.lightning.module import TransferModule

    images, labels = batch
    module = TransferModule(source=["default-pspnet-r18"], targets=["default-pspnet-r18", "default-deeplabv3-r18"],
                            conditions=["pgd", "segpgd"], num_classes=7)
    module.setup("validate")
    module = module.cuda().eval()
    noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(1)).cuda()
    step = {"image": images, "label": labels, "name": ["a", "b"],
            "adv": {AdvKey("default-pspnet-r18", a, 0): (images + (2 * noise - 1) * 8 / 255).clamp(0, 1)
                    for a in ("pgd", "segpgd")}}
    module.on_validation_epoch_start()
    module.validation_step(dict(step), 0)  # warm-up
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            module.validation_step(dict(step), 1)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message) for w in caught if "synchroniz" in str(w.message).lower()]
    assert len(syncs) == 1, syncs  # the one device-to-host copy of the counts and norms
    assert len(module._images) == 2 * 2 * 3 * 2 and len(module._perturbations) == 2 * 2 * 2
