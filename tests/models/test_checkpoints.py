"""Checkpoint loading: both formats, weights-only refusal, key checks, checksums, fetching."""

import hashlib
import io
import subprocess
import sys

import pytest
import torch

from benchmark.errors import CheckpointError
from benchmark.models import build_segmentor
from benchmark.models.checkpoints import load_state_dict, save_checkpoint, sha256_file
from tests.models.tiny import tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.manual_seed(0)
    model = build_segmentor(tiny_config())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def test_mmengine_format_round_trip_gives_identical_outputs(trained, tmp_path):
    path = tmp_path / "ckpt.pth"
    digest = save_checkpoint(trained.segmentor, path, meta={"note": "test"})
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = build_segmentor(tiny_config(), checkpoint=path)
    images = torch.rand(2, 3, 33, 47)
    assert torch.equal(loaded(images), trained(images))
    assert loaded.checkpoint_sha256 == digest


def test_bare_state_dict_round_trip_gives_identical_outputs(trained, tmp_path):
    path = tmp_path / "bare.pth"
    torch.save(trained.segmentor.state_dict(), path)
    loaded = build_segmentor(tiny_config(), checkpoint=path)
    images = torch.rand(1, 3, 20, 36)
    assert torch.equal(loaded(images), trained(images))


class _Payload:
    """Unpickling this would run code: it must never be executed."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoint_with_pickled_code_is_refused_and_not_executed(trained, tmp_path):
    marker = tmp_path / "was_executed"
    path = tmp_path / "evil.pth"
    state = dict(trained.segmentor.state_dict())
    torch.save({"state_dict": state, "meta": {"hook": _Payload(str(marker))}}, path)
    with pytest.raises(CheckpointError, match="weights-only"):
        build_segmentor(tiny_config(), checkpoint=path)
    assert not marker.exists()


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
    relaxed = build_segmentor(tiny_config(), checkpoint=path, strict=False)
    assert torch.equal(relaxed.segmentor.decode_head.conv_seg.weight, trained.segmentor.decode_head.conv_seg.weight)


def test_shape_mismatch_is_an_error(trained, tmp_path):
    path = tmp_path / "classes.pth"
    save_checkpoint(trained.segmentor, path)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        build_segmentor(tiny_config(num_classes=7), checkpoint=path)


def test_checksum_is_verified_before_loading(trained, tmp_path):
    path = tmp_path / "ckpt.pth"
    digest = save_checkpoint(trained.segmentor, path)
    build_segmentor(tiny_config(), checkpoint=path, expected_sha256=digest)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        build_segmentor(tiny_config(), checkpoint=path, expected_sha256="0" * 64)


@pytest.mark.parametrize("content", [b"<html>not a checkpoint</html>", b""])
def test_non_checkpoint_files_are_clear_errors(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.pth"):
        load_state_dict(path)


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.pth"):
        build_segmentor(tiny_config(), checkpoint=tmp_path / "nowhere.pth")


def _fake_opener(payload: bytes):
    def opener(url, timeout):
        return io.BytesIO(payload)

    return opener


def test_fetch_checkpoint_verifies_and_stores_atomically(monkeypatch, tmp_path):
    from benchmark.models import fetch, zoo

    payload = b"weights"
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    entry = zoo.ModelEntry(name="m", config="c.py", dataset="voc2012", checkpoint=str(tmp_path / "m.pth"),
                           url=f"https://example.invalid/m_2020-{prefix}.pth")
    monkeypatch.setattr(fetch, "get_model_entry", lambda name: entry)
    path, digest = fetch.fetch_checkpoint("m", opener=_fake_opener(payload))
    assert path.read_bytes() == payload and digest.startswith(prefix)
    path.unlink()
    with pytest.raises(CheckpointError, match="expected"):
        fetch.fetch_checkpoint("m", opener=_fake_opener(b"tampered"))
    assert list(tmp_path.iterdir()) == []


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
