"""A model from a user's factory (plain PyTorch, a file outside the project) in `benchmark run`: as a target
beside the embedded mmseg models, as a source, inside an ensemble source and under 2-process DDP."""

import json
import os
import subprocess
import sys

import pytest

from benchmark.fileio import sha256_file
from benchmark.models.zoo import REPO_ROOT
from benchmark.results import CLEAN, read_result
from tests.lightning.test_pipeline import _common, _run, data_root  # noqa: F401 -- data_root is a fixture
from tests.models.factory_source import entry_yaml, save_weights, write_model

MINE = "tiny-user-net"


@pytest.fixture(scope="module")
def user_zoo(tmp_path_factory):
    """(zoo folder, model file, checkpoint) of the factory model ``tiny-user-net``."""
    tmp = tmp_path_factory.mktemp("user")
    model_file = write_model(tmp)
    weights = save_weights(model_file, tmp / "tiny-user-net.pth")
    zoo = tmp / "zoo"
    zoo.mkdir()
    (zoo / "mine.yaml").write_text(entry_yaml(MINE, model_file, weights, sha256=sha256_file(weights)))
    return zoo, model_file, weights


def _run_with(user_zoo, data_root, out_dir, *extra, tmp_path, env=None):  # noqa: F811
    args = _common(data_root, out_dir, "--logger", "none", "--data.limit", "2", "--attack.attacks", "[fgsm, pgd]",
                   *extra)
    result = _run(args, tmp_path, extra_env={"BENCHMARK_MODEL_ZOO": str(user_zoo[0]), **(env or {})}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return read_result(out_dir / "results.json")


def _evaluate(args, extra_env):
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", **extra_env}
    return subprocess.run([sys.executable, "-m", "benchmark.cli", "evaluate", *args], capture_output=True,
                          text=True, timeout=300, cwd=REPO_ROOT, env=env)


def _check_record(results_file, user_zoo, roles):
    run = read_result(results_file)
    _, model_file, weights = user_zoo
    (record,) = [m for m in run.models if m.name == MINE]
    assert record.roles == roles and record.inference_mode == "whole"
    assert record.config == f"{model_file}:build" and record.checkpoint_sha256 == sha256_file(weights)
    assert record.origin.to_dict() == {"import": f"{model_file}:build", "distribution": None, "version": None,
                                       "sha256": {"user_model.py": sha256_file(model_file)}}
    stored = next(m for m in json.loads(results_file.read_text())["models"] if m["name"] == MINE)
    assert stored["config"] == record.config and stored["origin"] == record.origin.to_dict()


def test_a_factory_model_is_a_target_beside_the_mmseg_models(user_zoo, data_root, tmp_path):  # noqa: F811
    run = _run_with(user_zoo, data_root, tmp_path / "run", "--model.targets",
                    f"[default-pspnet-r18, default-deeplabv3-r18, {MINE}]", tmp_path=tmp_path)
    assert run.targets == ("default-pspnet-r18", "default-deeplabv3-r18", MINE)
    for condition in (CLEAN, "fgsm", "pgd"):
        record = run.metric(MINE, condition)
        assert record.num_images == 2 and 0 <= record.miou <= 1
    _check_record(tmp_path / "run" / "results.json", user_zoo, ("target",))
    assert all(m.origin is None for m in run.models if m.name != MINE)


def test_a_factory_model_as_source_and_in_an_ensemble_source(user_zoo, data_root, tmp_path):  # noqa: F811
    ensemble = f"ens-logits-default-pspnet-r18+{MINE}"
    run = _run_with(user_zoo, data_root, tmp_path / "run", "--model.source", "null", "--model.sources",
                    f"[{MINE}, [default-pspnet-r18, {MINE}]]", "--model.targets", f"[default-deeplabv3-r18, {MINE}]",
                    tmp_path=tmp_path)
    assert run.source_ids == (MINE, ensemble)
    for source in (MINE, ensemble):
        for target in ("default-deeplabv3-r18", MINE):
            assert run.metric(target, "pgd", source).num_images == 2
    # white-box: the attack on the factory model lowers its own mIoU
    assert run.metric(MINE, "pgd", MINE).miou < run.metric(MINE, CLEAN).miou
    _check_record(tmp_path / "run" / "results.json", user_zoo, ("source", "target"))


def test_two_process_ddp_builds_the_factory_model_in_each_worker(user_zoo, data_root, tmp_path):  # noqa: F811
    args = ("--model.source", f"[{MINE}]", "--model.targets", f"[default-pspnet-r18, {MINE}]")
    single = _run_with(user_zoo, data_root, tmp_path / "one", *args, tmp_path=tmp_path)
    ddp = _run_with(user_zoo, data_root, tmp_path / "ddp", *args, "--trainer.accelerator", "cpu",
                    "--trainer.devices", "2", "--trainer.strategy", "ddp", tmp_path=tmp_path,
                    env={"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29533"})
    assert ddp.dataset.num_images == 2 and ddp.metrics == single.metrics and ddp.models == single.models


def test_a_saved_set_of_a_factory_source_keeps_its_origin_when_evaluated(user_zoo, data_root, tmp_path):  # noqa: F811
    _run_with(user_zoo, data_root, tmp_path / "run", "--model.source", f"[{MINE}]", "--model.targets", f"[{MINE}]",
              "--attack.attacks", "[pgd]", "--attack.adv_format", "png_uint8", "--results.save_adv", "true",
              tmp_path=tmp_path)
    evaluated = _evaluate(["--adv", str(tmp_path / "run" / "adv"), "--targets", "default-pspnet-r18", "--data.root",
                           str(data_root), "--logger", "none", "--results.out_dir", str(tmp_path / "eval")],
                          {"BENCHMARK_MODEL_ZOO": str(user_zoo[0])})
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    run = read_result(tmp_path / "eval" / "results.json")
    assert run.metric("default-pspnet-r18", "pgd", MINE).num_images == 2
    (source,) = [m for m in run.models if "source" in m.roles]
    assert source.name == MINE and source.origin == read_result(tmp_path / "run" / "results.json").models[0].origin
