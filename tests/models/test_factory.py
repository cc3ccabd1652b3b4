"""Zoo models built by a user's Python factory: entry parsing, every mistake as one line, the wrapper's
contract (eval mode, frozen, features, channels-last, provenance), the restricted checkpoint loader."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmark.errors import CheckpointError, ConfigError
from benchmark.fileio import sha256_file
from benchmark.models import build_zoo_model, get_model_entry, zoo
from benchmark.models.zoo import load_zoo
from tests.models.factory_source import entry_yaml, save_weights, write_model

IMAGES = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0))


@pytest.fixture()
def model_file(tmp_path):
    return write_model(tmp_path)


@pytest.fixture()
def user_zoo(tmp_path, monkeypatch):
    """Write ``text`` as the one YAML file of a user zoo folder named by BENCHMARK_MODEL_ZOO; returns its path."""
    folder = tmp_path / "zoo"
    folder.mkdir()
    monkeypatch.setenv("BENCHMARK_MODEL_ZOO", str(folder))

    def write(text: str) -> Path:
        path = folder / "mine.yaml"
        path.write_text(text)
        zoo._zoo.cache_clear()
        return path

    yield write
    zoo._zoo.cache_clear()


def _one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_factory_entry_is_read_with_its_classes_and_kwargs(tmp_path, model_file):
    (tmp_path / "a.yaml").write_text(entry_yaml("mine", model_file, None, kwargs="{width: 4}",
                                                class_names="[a, b, c, d, e, f, g]"))
    entry = load_zoo(tmp_path)["mine"]
    assert entry.factory == f"{model_file}:build" and entry.config is None and entry.recorded_config == entry.factory
    assert entry.kwargs == {"width": 4} and entry.class_names == tuple("abcdefg") and entry.num_classes == 7
    assert entry.checkpoint_path is None and entry.config_path is None and entry.zoo_file == str(tmp_path / "a.yaml")


BASE = "  dataset: synthetic-voc\n  checkpoint: null\n"


@pytest.mark.parametrize(("body", "culprit"), [
    ("  config: a.py\n  factory: m:build\n  num_classes: 7\n" + BASE, "not both"),
    ("  num_classes: 7\n" + BASE, "one of them is required"),
    ("  factory: m:build\n" + BASE, "num_classes (a positive integer) is required with factory, got None"),
    ("  factory: m:build\n  num_classes: 0\n" + BASE, "got 0"),
    ("  factory: m:build\n  num_classes: 3\n  class_names: [a, b]\n" + BASE, "num_classes=3 strings, got 2 names"),
    ("  factory: m:build\n  num_classes: 2\n  class_names: ab\n" + BASE, "got 'ab'"),
    ("  factory: m_build\n  num_classes: 2\n" + BASE, "must be 'module.name:function' or 'path/to/file.py:function'"),
    ("  factory: 'm:2build'\n  num_classes: 2\n" + BASE, "must be 'module.name:function'"),
    ("  factory: my pkg:build\n  num_classes: 2\n" + BASE, "neither a dotted module name nor a path"),
    ("  factory: m:build\n  num_classes: 2\n  kwargs: [1, 2]\n" + BASE, "kwargs must be a mapping"),
    ("  factory: m:build\n  num_classes: 2\n  mode: slide\n" + BASE, "a factory model infers whole images"),
    ("  factory: m:build\n  num_classes: 2\n  checkpoint: null\n", "dataset must name the dataset"),
    ("  factory: m:build\n  num_classes: 2\n  url: https://x/y.pth\n" + BASE, "url needs a checkpoint"),
    ("  config: a.py\n  num_classes: 7\n  dataset: voc2012\n  checkpoint: c.pth\n", "num_classes belongs to a factory"),
    ("  config: a.py\n  dataset: voc2012\n", "checkpoint is required with config"),
])
def test_every_mistake_in_an_entry_is_one_line_naming_the_file_and_entry(tmp_path, body, culprit):
    path = tmp_path / "bad.yaml"
    path.write_text("mine:\n" + body)
    with pytest.raises(ConfigError) as err:
        load_zoo(tmp_path)
    message = _one_line(err)
    assert message.startswith(f"{path}: entry 'mine': ") and culprit in message, message


@pytest.mark.parametrize(("spec", "culprit"), [
    ("{file}:no_such_function", "has no attribute 'no_such_function'"),
    ("{file}:NOT_CALLABLE", "is a int, not a function"),
    ("{missing}:build", "no such file"),
    ("no_such_package_xyz.models:build", "no module named 'no_such_package_xyz'"),
])
def test_a_factory_that_cannot_be_loaded_fails_when_the_model_is_named(user_zoo, model_file, spec, culprit):
    spec = spec.format(file=model_file, missing=model_file.parent / "missing.py")
    path = user_zoo(f"mine:\n  factory: {spec}\n  num_classes: 7\n" + BASE)
    with pytest.raises(ConfigError) as err:
        get_model_entry("mine")
    message = _one_line(err)
    assert message.startswith(f"{path}: entry 'mine': ") and culprit in message, message


@pytest.mark.parametrize(("attribute", "culprit"), [
    ("broken", "raised ValueError: width must be even (user_model.py:"),
    ("not_a_module", "returned a builtins.dict, not a torch.nn.Module"),
    ("downsampling", "expected logits of shape (1, 7, 64, 96) for a (1, 3, 64, 96) image (num_classes, input size), "
                     "got (1, 7, 32, 48)"),
])
def test_a_factory_that_misbehaves_fails_at_build_in_one_line(user_zoo, model_file, attribute, culprit):
    user_zoo(entry_yaml("mine", model_file, None, attribute=attribute))
    with pytest.raises(ConfigError) as err:
        build_zoo_model("mine")
    message = _one_line(err)
    assert message.startswith("model 'mine': ") and culprit in message, message


def test_wrong_class_count_is_caught_by_the_probe(user_zoo, model_file):
    user_zoo(entry_yaml("mine", model_file, None, kwargs="{num_classes: 5}"))
    with pytest.raises(ConfigError, match=r"expected logits of shape \(1, 7, 64, 96\).*got \(1, 5, 64, 96\)"):
        build_zoo_model("mine")


def test_checkpoints_go_through_the_restricted_loader_with_their_checks(user_zoo, model_file, tmp_path):
    weights = save_weights(model_file, tmp_path / "w.pth")
    state = torch.load(weights)
    state["head.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    user_zoo(entry_yaml("mine", model_file, tmp_path / "nan.pth"))
    with pytest.raises(CheckpointError) as err:
        build_zoo_model("mine")
    assert _one_line(err).startswith(f"model 'mine': {tmp_path / 'nan.pth'}: tensor head.weight holds 1 NaN")
    user_zoo(entry_yaml("mine", model_file, weights, sha256=f"'{'0' * 64}'"))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        build_zoo_model("mine")
    del state["head.bias"]
    state["head.weight"].zero_()
    torch.save(state, tmp_path / "short.pth")
    user_zoo(entry_yaml("mine", model_file, tmp_path / "short.pth"))
    with pytest.raises(CheckpointError, match=r"missing keys \[head.bias\]"):
        build_zoo_model("mine")
    (tmp_path / "code.pth").write_bytes(b"\x80\x02cos\nsystem\nq\x00.")  # a pickle that would run code
    user_zoo(entry_yaml("mine", model_file, tmp_path / "code.pth"))
    with pytest.raises(CheckpointError, match="refusing"):
        build_zoo_model("mine")


def test_the_wrapper_keeps_the_models_contract(user_zoo, model_file, tmp_path):
    weights = save_weights(model_file, tmp_path / "w.pth")
    user_zoo(entry_yaml("mine", model_file, weights, sha256=sha256_file(weights)))
    model = build_zoo_model("mine")
    net = model.net
    assert type(net).__name__ == "TinyNet" and not model.training and not net.training
    assert not any(p.requires_grad for p in model.parameters())
    assert model.mode == "whole" and model.num_classes == 7
    assert model.class_names == tuple(f"class_{i}" for i in range(7))
    assert model.checkpoint_sha256 == sha256_file(weights) and model.checkpoint_report.loaded == len(net.state_dict())
    assert model.origin == {"import": f"{model_file}:build", "distribution": None, "version": None,
                            "sha256": {"user_model.py": sha256_file(model_file)}}
    reference = torch.load(weights)
    assert all(torch.equal(value, reference[key]) for key, value in net.state_dict().items())
    with torch.no_grad():
        logits = model(IMAGES)
        assert logits.shape == (2, 7, 40, 56) and torch.equal(logits, net(IMAGES))
    # features through hooks on the user's module, and the model's default layer
    assert model.default_feature_layer == "body.2"
    features = model.features(IMAGES, ["body.2", "head"])
    assert features["body.2"].shape == (2, 8, 20, 28) and features["head"].shape == (2, 7, 20, 28)
    both, found = model.logits_and_features(IMAGES, ["body.2"])
    assert torch.equal(both, logits) and torch.equal(found["body.2"], features["body.2"])
    table = {name: (kind, shape) for name, kind, shape in model.layer_table((32, 48))}
    assert table["body.0"] == ("Conv2d", "(1, 8, 16, 24)") and table["head"] == ("Conv2d", "(1, 7, 16, 24)")
    # gradients reach the input, and the channels-last layout changes only float rounding
    x = IMAGES.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).logsumexp(1).sum(), x)
    assert grad.abs().sum() > 0 and all(p.grad is None for p in model.parameters())
    assert torch.allclose(model.use_channels_last()(IMAGES), logits, atol=1e-5)
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 3, H, W\)"):
        model(IMAGES[:, :1])


def test_a_factory_with_its_own_weights_and_kwargs_needs_no_checkpoint(user_zoo, model_file):
    user_zoo(entry_yaml("mine", model_file, None, attribute="trained", kwargs="{width: 4}",
                        class_names="[a, b, c, d, e, f, g]"))
    model = build_zoo_model("mine")
    assert model.checkpoint_sha256 is None and model.checkpoint_report is None
    assert model.net.head.in_channels == 4 and model.class_names == tuple("abcdefg")
    assert torch.equal(build_zoo_model("mine")(IMAGES), model(IMAGES))  # the factory's own, deterministic weights


def test_a_factory_model_never_imports_mmseg(tmp_path, model_file):
    weights = save_weights(model_file, tmp_path / "w.pth")
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "mine.yaml").write_text(entry_yaml("mine", model_file, weights))
    code = ("import sys\nfrom benchmark.models import build_zoo_model\nbuild_zoo_model('mine')\n"
            "assert not {'mmseg', 'mmcv', 'mmengine'} & set(sys.modules), sorted(sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "BENCHMARK_MODEL_ZOO": str(tmp_path / "zoo")})
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_mmseg_adapter_stays_small_and_the_only_importer_of_openmmlab():
    import re

    package = Path(__file__).resolve().parents[2] / "benchmark"
    importers = sorted(path.relative_to(package).as_posix() for path in package.rglob("*.py")
                       if re.search(r"^\s*(import|from) (mmseg|mmengine|mmcv)\b", path.read_text(), re.MULTILINE))
    assert importers == ["models/mmseg_adapter.py"]
    assert len((package / "models" / "mmseg_adapter.py").read_text().splitlines()) <= 400
