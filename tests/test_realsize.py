"""The shipped paper-protocol configs at real size, through the real CLI (benchmarks/realsize.py).

VOC: three textured images at VOC's native sizes (500x375, 375x500, 500x333), PGD, two targets (the
white-box PSPNet and DeepLabV3); Cityscapes: one 2048x1024 image, PGD, two targets (the white-box PSPNet,
whole image as mmseg tests it, and SegFormer-B0 in 1024x1024 windows; a full-size PSPNet-R50 step takes
about a minute on 2 CPU cores). One attack step each, random-weight checkpoints in both official file
formats (the script runs two attacks, and Cityscapes also with every model in windows). Expectations are computed here from the files (label pixels counted with numpy, resize sizes by
mmcv's formula); timings and peak memory are printed, never asserted.
"""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.models.zoo import REPO_ROOT


def _load_script():
    spec = importlib.util.spec_from_file_location("benchmarks_realsize", REPO_ROOT / "benchmarks" / "realsize.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


realsize = _load_script()
VOC_RUN, CITYSCAPES_RUN = realsize.RUNS[0], realsize.RUNS[1]
SPECS = {"voc": replace(VOC_RUN, attacks=("pgd",)), "cityscapes": replace(CITYSCAPES_RUN, attacks=("pgd",))}
# mmseg's test pipelines: Resize(scale=(2048, 512)) for VOC, (2048, 1024) for Cityscapes, keep_ratio=True
TEST_SCALE = {"voc": (2048, 512), "cityscapes": (2048, 1024)}
NUM_CLASSES = {"voc": 21, "cityscapes": 19}
# cityscapesScripts labels.py: the labelIds with ignoreInEval False, i.e. the 19 evaluated classes
EVALUATED_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
LABEL_SUFFIX = "_gtFine_labelIds.png"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("realsize")
    data = realsize.write_data(root / "data")
    checkpoints = realsize.write_checkpoints(root / "checkpoints", realsize.checkpoint_names(SPECS.values()))
    return root, data, checkpoints


@pytest.fixture(scope="module", params=list(SPECS))
def run(request, work):
    root, data, _ = work
    spec = SPECS[request.param]
    measured = realsize.run_benchmark(spec, data[spec.dataset], root / "checkpoints", root / "runs" / request.param)
    assert measured.returncode == 0, measured.stderr[-3000:]
    print(f"\n{realsize.HEADER}\n{measured.row()}")
    return request.param, measured


def label_files(dataset: str, root):
    """{image name: label file}, found by the layout's own conventions."""
    if dataset == "voc":
        return {path.stem: path for path in (root / "SegmentationClass").glob("*.png")}
    return {path.name[: -len(LABEL_SUFFIX)]: path for path in (root / "gtFine" / "val").glob(f"*/*{LABEL_SUFFIX}")}


def valid_pixels(dataset: str, path) -> int:
    label = np.asarray(Image.open(path))
    return int((label != 255).sum() if dataset == "voc" else np.isin(label, EVALUATED_IDS).sum())


@pytest.mark.slow
@pytest.mark.parametrize("dataset", list(SPECS))
def test_images_reach_the_models_at_mmseg_test_size_and_labels_keep_theirs(dataset, work):
    from benchmark.data import build_dataset

    root = work[1][dataset]
    loaded = build_dataset({"voc": "voc2012", "cityscapes": "cityscapes"}[dataset], root, resize="mmseg")
    labels = label_files(dataset, root)
    assert sorted(s.name for s in loaded.samples) == sorted(labels)
    long_side, short_side = TEST_SCALE[dataset]
    native = set()
    for index, sample in enumerate(loaded.samples):
        width, height = Image.open(sample.image).size
        native.add((width, height))
        factor = min(long_side / max(width, height), short_side / min(width, height))
        expected = (int(height * factor + 0.5), int(width * factor + 0.5))
        item = loaded[index]
        assert tuple(item["image"].shape) == (3, *expected) and loaded.input_size(index) == expected
        assert tuple(item["label"].shape) == (height, width) == np.asarray(Image.open(labels[sample.name])).shape
        assert float(item["image"].std()) > 0.05  # textured, not a solid colour
    if dataset == "voc":
        assert native == {(500, 375), (375, 500), (500, 333)}
        values = set().union(*(np.unique(np.asarray(Image.open(p))).tolist() for p in labels.values()))
        assert values == set(range(21)) | {255}
    else:
        assert native == {(2048, 1024)}
        (path,) = labels.values()
        assert set(EVALUATED_IDS) < set(np.unique(np.asarray(Image.open(path))).tolist())


@pytest.mark.slow
def test_every_image_record_counts_the_labels_valid_pixels_at_their_native_size(run, work):
    dataset, measured = run
    from benchmark.results.io import read_result

    result = read_result(measured.out_dir / "results.json")
    expected = {name: valid_pixels(dataset, path) for name, path in label_files(dataset, work[1][dataset]).items()}
    conditions = {(t, c) for t in SPECS[dataset].targets for c in ("clean", *SPECS[dataset].attacks)}
    seen = set()
    for record in result.images:
        assert sum(record.labelled) == expected[record.image], (record.image, record.target, record.condition)
        seen.add((record.image, record.target, record.condition))
    assert seen == {(image, *key) for image in expected for key in conditions}
    labelled = {k for r in result.images for k, n in zip(r.classes, r.labelled) if n}
    assert labelled == set(range(NUM_CLASSES[dataset]))  # every class of the dataset reached the metrics


@pytest.mark.slow
def test_result_is_complete_with_its_classes_models_and_checkpoint_digests(run, work):
    dataset, measured = run
    import mmseg
    from mmengine.config import Config

    from benchmark.models import get_model_entry
    from benchmark.results.io import read_result

    spec = SPECS[dataset]
    result = read_result(measured.out_dir / "results.json")
    images = len(label_files(dataset, work[1][dataset]))
    assert len(result.dataset.class_names) == NUM_CLASSES[dataset]
    log = (measured.out_dir / "run.log").read_text()  # the job's size, logged before the first attack
    assert f"plan: {images} images, 1 process(es)" in log and f"{images * len(spec.attacks)} source grad" in log
    assert result.dataset.num_images == result.dataset.split_size == images and not result.dataset.is_partial
    assert {(m.target, m.condition) for m in result.metrics} == {
        (t, c) for t in spec.targets for c in ("clean", *spec.attacks)}
    assert [m.name for m in result.models if "source" in m.roles] == [spec.models[0]]
    shipped_configs = Path(mmseg.__file__).parent / ".mim" / "configs"  # mmseg's own, read with mmengine
    for model in result.models:
        entry = get_model_entry(model.name)
        shipped = Config.fromfile(str(shipped_configs / entry.config))
        # the zoo entry's override, else the config's test_cfg: "whole" for VOC's and also for Cityscapes'
        # 512x1024 PSPNet / DeepLabV3 configs (mmseg tests them on the 2048x1024 image in one pass)
        assert model.inference_mode == (entry.mode or shipped.model.test_cfg.mode)
        digest = hashlib.sha256(work[2][model.name].read_bytes()).hexdigest()
        assert model.checkpoint_sha256 == digest
    print(f"\n{dataset}: inference modes {[(m.name, m.inference_mode) for m in result.models]}")


@pytest.mark.slow
def test_summarize_and_submit_accept_the_run(run, tmp_path):
    _, measured = run
    benchmark = [sys.executable, "-m", "benchmark"]
    summary = subprocess.run([*benchmark, "summarize", str(measured.out_dir), "--out", str(tmp_path / "summary")],
                             capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert summary.returncode == 0, summary.stderr[-3000:]
    assert (tmp_path / "summary" / "summary.csv").is_file()
    submitted = subprocess.run([*benchmark, "submit", str(measured.out_dir / "results.json"),
                                "--leaderboard", str(tmp_path / "leaderboard")],
                               capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    added = [line for line in submitted.stdout.splitlines() if line.startswith("added ")]
    entries = list((tmp_path / "leaderboard").glob("entries/*/*/*/*.json"))
    assert len(added) == len(entries) == len(measured.spec.attacks)  # one entry per attack


def mmseg_windows(size, crop, stride) -> int:
    """Windows of mmseg's ``slide_inference``, enumerated as it does (not by its closed form)."""
    starts = []
    for axis in range(2):
        grids = max(size[axis] - crop[axis] + stride[axis] - 1, 0) // stride[axis] + 1
        starts.append({max(min(g * stride[axis], size[axis] - crop[axis]), 0) for g in range(grids)})
    return len(starts[0]) * len(starts[1])


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["config", "slide"])
@pytest.mark.parametrize("dataset", list(SPECS))
def test_plan_counts_input_sizes_and_sliding_windows(dataset, mode, work, tmp_path):
    root, data, _ = work
    spec = SPECS[dataset]
    extra = ["--model.mode", "slide"] if mode == "slide" else []
    process = subprocess.run(
        [sys.executable, "-m", "benchmark", "plan", "--config", spec.config, "--data.root", str(data[spec.dataset]),
         "--data.limit", str(spec.images), "--attack.steps", "1", "--attack.attacks", f"[{', '.join(spec.attacks)}]",
         "--model.targets", f"[{', '.join(spec.targets)}]", "--calibrate", "false", "--json", str(tmp_path / "plan.json"),
         *extra], capture_output=True, text=True, cwd=REPO_ROOT, timeout=600,
        env={**os.environ, "BENCHMARK_CHECKPOINT_DIR": str(root / "checkpoints")})
    assert process.returncode == 0, process.stderr[-3000:]
    plan = json.loads((tmp_path / "plan.json").read_text())
    long_side, short_side = TEST_SCALE[dataset]
    expected = {}
    for path in label_files(dataset, data[spec.dataset]).values():
        width, height = Image.open(path).size
        factor = min(long_side / max(width, height), short_side / min(width, height))
        size = f"{int(height * factor + 0.5)}x{int(width * factor + 0.5)}"
        expected[size] = expected.get(size, 0) + 1
    assert {f"{s['height']}x{s['width']}": s["images"] for s in plan["sizes"]} == expected
    assert plan["dataset"]["images"] == spec.images and plan["totals"]["source_grad"] == spec.images
    crops = {"pspnet-r50-cityscapes": ((512, 1024), (341, 683)), "segformer-b0-cityscapes": ((1024, 1024), (768, 768))}
    for name, model in plan["models"].items():
        slide = mode == "slide" or name == "segformer-b0-cityscapes"
        assert model["mode"] == ("slide" if slide else "whole"), name
        if slide and dataset == "cityscapes":
            crop, stride = crops[name]  # the config's windows, else the training crop at a 2/3 stride
            assert (tuple(model["crop"]), tuple(model["stride"])) == (crop, stride)
            assert model["windows"] == {size: mmseg_windows((1024, 2048), crop, stride) for size in expected}
            print(f"\n{dataset} {mode}: {name} {model['windows']} windows")
    if dataset == "cityscapes":  # 3 windows of SegFormer's 1024x1024; 9 of PSPNet's 512x1024 crop
        assert plan["models"]["segformer-b0-cityscapes"]["windows"] == {"1024x2048": 3}
        assert mode == "config" or plan["models"]["pspnet-r50-cityscapes"]["windows"] == {"1024x2048": 9}
