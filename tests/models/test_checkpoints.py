"""Checkpoint loading: every format a user has gives the original logits; key checks; checksums; fetching."""

import hashlib
import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from benchmark.errors import CheckpointError
from benchmark.models import build_segmentor
from benchmark.fileio import sha256_file
from benchmark.models.checkpoints import align_keys, load_state_dict, read_checkpoint, save_checkpoint
from benchmark.models.zoo import REPO_ROOT
from tests.models.tiny import tiny_config

IMAGES = torch.rand(2, 3, 33, 47, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    model = build_segmentor(tiny_config())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        for name, buffer in model.segmentor.named_buffers():
            if name.endswith("running_mean"):
                buffer.add_(torch.randn_like(buffer) * 0.1)  # buffers must load too
    return model


@pytest.fixture(scope="module")
def reference(trained):
    return trained(IMAGES)


def _mmengine_runner_checkpoint(segmentor):
    """What mmengine's ``Runner.save_checkpoint`` writes, built from mmengine's own objects."""
    from mmengine.config import Config
    from mmengine.logging import MessageHub
    from mmengine.optim import OptimWrapper
    from mmengine.optim.scheduler import PolyLR

    hub = MessageHub.get_instance(f"test-{time.monotonic_ns()}")
    hub.update_scalar("train/loss", np.float64(0.73))
    hub.update_scalar("train/lr", 0.01)
    hub.update_info("iter", 40)
    parameter = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([parameter], lr=0.01, momentum=0.9)
    parameter.grad = torch.ones(3)
    optimizer.step()
    scheduler = PolyLR(optimizer, eta_min=1e-4, power=0.9, begin=0, end=100, by_epoch=False)
    meta = dict(cfg=Config(tiny_config()).pretty_text, seed=np.int64(42), experiment_name="tiny_20261201",
                time="20261201_120000", mmengine_version="0.10.7", epoch=0, iter=40, lr=np.float32(0.01),
                dataset_meta=dict(classes=("a", "b"), palette=[[1, 2, 3], [4, 5, 6]]))
    return dict(meta=meta, state_dict=segmentor.state_dict(), message_hub=hub.state_dict(),
                optimizer=OptimWrapper(optimizer).state_dict(), param_schedulers=[scheduler.state_dict()])


def _mmcv1_checkpoint(segmentor):
    """The mmcv 1.x / mmseg 0.x layout: meta with CLASSES, PALETTE, config text, env info; optimizer."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.01, momentum=0.9, weight_decay=5e-4)
    meta = dict(mmcv_version="1.3.8", time="Thu Jun 17 10:19:58 2020", env_info="sys.platform: linux\nCUDA: 10.1",
                config="model = dict(type='EncoderDecoder')\n", seed=0, exp_name="pspnet.py",
                CLASSES=("background", "aeroplane"), PALETTE=[[0, 0, 0], [128, 0, 0]], epoch=1, iter=20000,
                hook_msgs=dict(last_ckpt="work_dirs/iter_20000.pth"))
    return dict(meta=meta, state_dict=segmentor.state_dict(), optimizer=optimizer.state_dict())


def _prefixed(state, prefix):
    return {f"{prefix}{key}": value for key, value in state.items()}


FORMATS = {
    "mmengine-runner": lambda seg: (_mmengine_runner_checkpoint(seg), {}),
    "mmcv1-mmseg0": lambda seg: (_mmcv1_checkpoint(seg), {}),
    "mmcv1-legacy-serialisation": lambda seg: (_mmcv1_checkpoint(seg), {"_use_new_zipfile_serialization": False}),
    "bare-state-dict": lambda seg: (seg.state_dict(), {}),
    "bare-legacy-serialisation": lambda seg: (seg.state_dict(), {"_use_new_zipfile_serialization": False}),
    "under-model": lambda seg: ({"model": seg.state_dict(), "epoch": 3}, {}),
    "under-module": lambda seg: ({"module": seg.state_dict()}, {}),
    "ddp-prefix": lambda seg: ({"state_dict": _prefixed(seg.state_dict(), "module.")}, {}),
    "ddp-prefix-bare": lambda seg: (_prefixed(seg.state_dict(), "module."), {}),
    "lightning-prefix": lambda seg: ({"state_dict": _prefixed(seg.state_dict(), "model."), "epoch": 1,
                                      "hyper_parameters": {"lr": 0.01}}, {}),
    "whole-pickled-module": lambda seg: (seg, {}),
}


@pytest.mark.parametrize("name", FORMATS)
def test_every_checkpoint_format_loads_with_identical_logits(name, trained, reference, tmp_path):
    payload, options = FORMATS[name](trained.segmentor)
    path = tmp_path / f"{name}.pth"
    torch.save(payload, path, **options)
    loaded = build_segmentor(tiny_config(), checkpoint=path)
    assert torch.equal(loaded(IMAGES), reference)
    assert loaded.checkpoint_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    report = loaded.checkpoint_report
    assert report.loaded == report.total == len(trained.segmentor.state_dict())
    assert not report.missing and not report.unexpected


def test_mmengine_checkpoint_metadata_is_data_not_code(trained, tmp_path):
    path = tmp_path / "runner.pth"
    torch.save(_mmengine_runner_checkpoint(trained.segmentor), path)
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(path, weights_only=True)  # the case the issue is about: torch's own loader refuses
    checkpoint = read_checkpoint(path)
    assert checkpoint.format == "torch-zip" and checkpoint.weights_key == "state_dict"
    assert "mmengine.logging.history_buffer.HistoryBuffer" in checkpoint.placeholders
    meta = checkpoint.meta["meta"]
    assert meta["seed"] == 42 and isinstance(meta["seed"], np.integer)
    buffer = checkpoint.meta["message_hub"]["log_scalars"]["train/loss"]
    assert buffer.global_name == "mmengine.logging.history_buffer.HistoryBuffer"
    assert np.array_equal(buffer.state["_log_history"], [0.73])  # numpy arrays are rebuilt for real
    assert set(checkpoint.meta) == {"meta", "message_hub", "optimizer", "param_schedulers"}


def test_legacy_format_is_recognised(trained, tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save(trained.segmentor.state_dict(), path, _use_new_zipfile_serialization=False)
    assert read_checkpoint(path).format == "torch-legacy"


def test_safetensors_file_loads_with_identical_logits(trained, reference, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in trained.segmentor.state_dict().items()}, str(path))
    loaded = build_segmentor(tiny_config(), checkpoint=path)
    assert torch.equal(loaded(IMAGES), reference)
    assert loaded.checkpoint_report.format == "safetensors"


def test_convert_checkpoint_writes_safetensors_and_json_that_the_zoo_loads(trained, reference, tmp_path,
                                                                          monkeypatch):
    source = tmp_path / "runner.pth"
    torch.save({**_mmengine_runner_checkpoint(trained.segmentor),
                "state_dict": _prefixed(trained.segmentor.state_dict(), "module.")}, source)
    target = tmp_path / "out" / "tiny.safetensors"
    result = subprocess.run([sys.executable, "-m", "benchmark.cli", "convert-checkpoint", str(source), str(target)],
                            capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {target} ({len(trained.segmentor.state_dict())} tensors)")
    info = json.loads(target.with_suffix(".json").read_text())
    assert info["source_sha256"] == sha256_file(source) and info["prefix_stripped"] == "module."
    assert info["meta"]["meta"]["seed"] == 42 and info["meta"]["meta"]["dataset_meta"]["classes"] == ["a", "b"]
    loss = info["meta"]["message_hub"]["log_scalars"]["train/loss"]
    assert loss["global"] == "mmengine.logging.history_buffer.HistoryBuffer"
    assert loss["state"]["_log_history"] == [0.73]

    config = tmp_path / "tiny.py"
    config.write_text(f"model = {tiny_config()['model']!r}\n")
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    digest = sha256_file(target)
    (zoo / "mine.yaml").write_text(f"tiny-converted:\n  config: {config}\n  dataset: synthetic-voc\n"
                                   f"  checkpoint: {target}\n  sha256: {digest}\n")
    monkeypatch.setenv("BENCHMARK_MODEL_ZOO", str(zoo))
    from benchmark.models import build_zoo_model, zoo as zoo_module

    zoo_module._zoo.cache_clear()
    try:
        model = build_zoo_model("tiny-converted")
    finally:
        zoo_module._zoo.cache_clear()
    assert torch.equal(model(IMAGES), reference) and model.checkpoint_sha256 == digest


def test_convert_checkpoint_refuses_a_non_safetensors_target(trained, tmp_path):
    source = tmp_path / "a.pth"
    save_checkpoint(trained.segmentor, source)
    result = subprocess.run([sys.executable, "-m", "benchmark.cli", "convert-checkpoint", str(source),
                             str(tmp_path / "b.pth")], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and ".safetensors" in result.stderr


def test_key_mismatch_names_missing_and_unexpected_keys(trained, tmp_path):
    state = dict(trained.segmentor.state_dict())
    state["decode_head.extra.weight"] = torch.zeros(1)
    del state["decode_head.conv_seg.bias"]
    path = tmp_path / "mismatch.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointError) as err:
        build_segmentor(tiny_config(), checkpoint=path)
    message = str(err.value)
    assert "decode_head.conv_seg.bias" in message and "decode_head.extra.weight" in message
    with pytest.warns(UserWarning, match=r"loaded \d+ of the model's \d+ tensors; 1 missing"):
        relaxed = build_segmentor(tiny_config(), checkpoint=path, strict=False)
    report = relaxed.checkpoint_report
    assert report.missing == ("decode_head.conv_seg.bias",) and report.unexpected == ("decode_head.extra.weight",)
    assert report.loaded == report.total - 1
    assert torch.equal(relaxed.segmentor.decode_head.conv_seg.weight, trained.segmentor.decode_head.conv_seg.weight)


@pytest.mark.parametrize("keep", [0.0, 0.4])
def test_non_strict_load_refuses_a_file_that_matches_under_half_the_model(keep, trained, tmp_path):
    state = trained.segmentor.state_dict()
    kept = list(state)[: int(keep * len(state))]
    foreign = {**{key: state[key] for key in kept}, **{f"other_net.layer{i}.weight": torch.zeros(2) for i in range(50)}}
    path = tmp_path / "foreign.pth"
    torch.save({"state_dict": foreign}, path)
    with pytest.raises(CheckpointError, match=rf"matches {len(kept)} of the model's {len(state)} tensors"):
        build_segmentor(tiny_config(), checkpoint=path, strict=False)


def test_align_keys_strips_only_a_prefix_that_helps():
    model_keys = ["backbone.a", "head.b"]
    weights = {"module.backbone.a": 1, "module.head.b": 2}
    assert align_keys(weights, model_keys) == ({"backbone.a": 1, "head.b": 2}, "module.")
    assert align_keys({"module.module.head.b": 2}, model_keys) == ({"head.b": 2}, "module.module.")
    assert align_keys({"backbone.a": 1, "head.b": 2}, model_keys)[1] == ""  # already matching: untouched
    assert align_keys({"x.y": 1}, model_keys) == ({"x.y": 1}, "")


def test_shape_mismatch_is_an_error(trained, tmp_path):
    path = tmp_path / "classes.pth"
    save_checkpoint(trained.segmentor, path)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        build_segmentor(tiny_config(num_classes=7), checkpoint=path)


def test_checksum_is_verified_before_loading(trained, tmp_path):
    path = tmp_path / "ckpt.pth"
    digest = save_checkpoint(trained.segmentor, path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert build_segmentor(tiny_config(), checkpoint=path, expected_sha256=digest).checkpoint_sha256 == digest
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        build_segmentor(tiny_config(), checkpoint=path, expected_sha256="0" * 64)


@pytest.mark.parametrize("content", [b"<html>not a checkpoint</html>", b"", b"PK\x03\x04broken zip"])
def test_non_checkpoint_files_are_clear_errors(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.pth"):
        load_state_dict(path)


def test_file_without_tensors_is_a_clear_error(tmp_path):
    path = tmp_path / "meta_only.pth"
    torch.save({"meta": {"epoch": 1}, "optimizer": {}}, path)
    with pytest.raises(CheckpointError, match=r"holds no state dict.*\[meta, optimizer\]"):
        load_state_dict(path)


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.pth"):
        build_segmentor(tiny_config(), checkpoint=tmp_path / "nowhere.pth")


def test_import_benchmark_works_without_compiled_ops_and_imports_nothing_heavy():
    code = (
        "import sys, benchmark\n"
        "assert not {'mmseg', 'mmcv', 'mmengine', 'lightning', 'torch'} & set(sys.modules), sys.modules.keys()\n"
        "import mmseg.models\n"
        "from mmcv.ops import point_sample\n"
        "from benchmark.models.mmcv_ops_stub import is_active\n"
        "assert is_active()\n"
        "try:\n    from mmcv.ops import nms\nexcept ModuleNotFoundError:\n    pass\n"
        "else:\n    raise SystemExit('compiled-only name did not raise ModuleNotFoundError')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_sha256_file(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"abc" * 1_000_000)
    assert sha256_file(path) == hashlib.sha256(b"abc" * 1_000_000).hexdigest()
