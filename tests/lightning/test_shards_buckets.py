"""Job-array shards (``data.shard K/N``) and size buckets (``data.bucket_by_size``): the rules, the
records they write, and end to end that sharded and bucketed runs give the unsharded, batch-size-1
numbers."""

import dataclasses
import json
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from benchmark.errors import ConfigError, DataError, ResultError
from benchmark.lightning.datamodule import (SegmentationDataModule, SizeBucketSampler, parse_shard, size_buckets,
                                            stride_share)
from benchmark.models.zoo import REPO_ROOT
from benchmark.results import read_result
from benchmark.results.codec import decode, encode
from benchmark.results.join import join_shards
from benchmark.results.schema import DatasetInfo, ShardInfo
from tests.lightning.test_pipeline import _run

# ---------------------------------------------------------------------------------------------- rules


@pytest.mark.parametrize("length, parts", [(0, 1), (1, 3), (7, 2), (8, 8), (40, 3), (1449, 8)])
def test_stride_share_gives_every_item_to_exactly_one_part(length, parts):
    items = [f"img{i}" for i in range(length)]
    shares = [stride_share(items, k, parts) for k in range(parts)]
    assert sorted(x for share in shares for x in share) == sorted(items)  # none dropped, none twice
    assert max(map(len, shares)) - min(map(len, shares)) <= 1  # balanced, never padded
    for k, share in enumerate(shares):  # positions k, k + parts, ... in list order
        assert share == [items[i] for i in range(k, length, parts)]
    with pytest.raises(ValueError):
        stride_share(items, parts, parts)


def test_parse_shard_accepts_k_of_n_and_names_bad_values():
    assert parse_shard(None) is None
    assert parse_shard("0/1") == (0, 1) and parse_shard("7/8") == (7, 8)
    for bad in ("8/8", "-1/8", "1", "a/b", "1/0", "1/2/3", ""):
        with pytest.raises(ConfigError, match=f"data.shard must be K/N.*got '{bad}'"):
            parse_shard(bad)


def test_size_buckets_hold_one_size_each_in_a_deterministic_order():
    sizes = [(512, 683), (512, 384), (512, 683), (512, 769), (512, 683), (512, 384), (512, 683)]
    batches = size_buckets(list(range(7)), sizes, batch_size=2)
    # sizes in order of first appearance, indices in order, cut into batches of 2
    assert batches == [[0, 2], [4, 6], [1, 5], [3]]
    assert size_buckets(list(range(7)), sizes, batch_size=2) == batches
    for batch in batches:
        assert len({sizes[i] for i in batch}) == 1 and 1 <= len(batch) <= 2
    assert sorted(i for b in batches for i in b) == list(range(7))
    assert size_buckets([], [], 4) == []


def test_bucket_sampler_splits_ranks_by_the_ddp_rule_then_buckets():
    indices = [3, 4, 6, 9, 10, 12, 15]  # e.g. what a resumed run has left
    sizes = [(2, 2), (2, 3), (2, 2), (2, 2), (2, 3), (2, 2), (2, 3)]
    seen = []
    for rank in range(3):
        sampler = SizeBucketSampler(indices, sizes, 2, rank=rank, world_size=3)
        mine = stride_share(indices, rank, 3)
        assert sorted(i for b in sampler for i in b) == sorted(mine) and len(sampler) == len(list(sampler))
        for batch in sampler:
            assert len({sizes[indices.index(i)] for i in batch}) == 1
        seen += [i for b in sampler for i in b]
    assert sorted(seen) == indices


@pytest.fixture(scope="module")
def mixed_root(tmp_path_factory):
    """The generated scenes, cropped to three sizes (W x H): 160x120, 120x96 and 144x120."""
    from benchmark.data.synthetic import generate

    root = generate(tmp_path_factory.mktemp("mixed") / "synthetic-voc", layout="voc", n_train=0, n_val=7)
    crops = {1: (120, 96), 2: (144, 120), 4: (120, 96), 5: (144, 120)}
    for index, (width, height) in crops.items():
        for path in (root / "JPEGImages" / f"val_{index:05d}.jpg", root / "SegmentationClass" / f"val_{index:05d}.png"):
            with Image.open(path) as image:
                cropped = image.crop((0, 0, width, height))
                cropped.save(path, **({"quality": 95} if path.suffix == ".jpg" else {}))
    return root


def test_data_module_shard_takes_stride_positions_after_the_limit(mixed_root):
    whole = SegmentationDataModule("synthetic-voc", str(mixed_root), limit=6, generate_if_missing=False)
    names = [s.name for s in whole.dataset.samples]
    for k in range(4):
        shard = SegmentationDataModule("synthetic-voc", str(mixed_root), limit=6, shard=f"{k}/4",
                                       generate_if_missing=False)
        assert [s.name for s in shard.dataset.samples] == names[k::4]
        assert shard.job_size == 6 and shard.split_size == 7 and shard.shard_text == f"{k}/4"
    empty = SegmentationDataModule("synthetic-voc", str(mixed_root), limit=2, shard="2/3", generate_if_missing=False)
    with pytest.raises(DataError, match=r"data.shard 2/3 holds no image: the job has only 2 images"):
        _ = empty.dataset


def test_bucketed_loader_batches_equal_sizes_and_preflight_accepts_mixed_sizes(mixed_root):
    module = SegmentationDataModule("synthetic-voc", str(mixed_root), batch_size=3, bucket_by_size=True,
                                    generate_if_missing=False)
    module.check_files()  # mixed sizes are fine when bucketed
    batches = list(module.val_dataloader())
    assert [b["name"] for b in batches] == [["val_00000", "val_00003", "val_00006"], ["val_00001", "val_00004"],
                                            ["val_00002", "val_00005"]]
    assert [tuple(b["image"].shape[-2:]) for b in batches] == [(120, 160), (96, 120), (120, 144)]
    plain = SegmentationDataModule("synthetic-voc", str(mixed_root), batch_size=3, generate_if_missing=False)
    with pytest.raises(DataError, match="use data.batch_size 1"):
        plain.check_files()
    with pytest.raises(ConfigError, match="bucket_by_size must be true or false"):
        SegmentationDataModule("synthetic-voc", str(mixed_root), bucket_by_size="yes")


def test_shard_info_is_checked_and_left_out_of_unsharded_files():
    base = dict(name="d", split="val", num_images=3, split_size=10, image_limit=None, input_policy="p",
                class_names=("a", "b"), ignore_index=255, batch_size=1)
    plain = DatasetInfo(**base)
    assert "shard" not in encode(plain) and decode(DatasetInfo, encode(plain), "f") == plain
    sharded = DatasetInfo(**base, shard=ShardInfo(1, 3, 10))  # positions 1, 4, 7
    assert sharded.is_partial and sharded.shard.text == "1/3"
    assert decode(DatasetInfo, json.loads(json.dumps(encode(sharded))), "f") == sharded
    with pytest.raises(ResultError, match="a shard of a job of 10 images holds 4 images, not 3"):
        DatasetInfo(**base, shard=ShardInfo(0, 3, 10))  # positions 0, 3, 6, 9
    with pytest.raises(ResultError, match="shard index 3"):
        ShardInfo(3, 3, 10)


def test_a_saved_shard_set_is_evaluated_as_the_same_shard():
    from types import SimpleNamespace

    from benchmark.lightning.saved_set import data_arguments

    base = dict(name="voc2012", split="val", num_images=3, split_size=10, image_limit=None,
                input_policy="resize=mmseg; labels at original resolution", class_names=("a", "b"), ignore_index=255,
                batch_size=1)
    sharded = data_arguments(SimpleNamespace(dataset=DatasetInfo(**base, shard=ShardInfo(1, 3, 10))))
    assert sharded[sharded.index("--data.shard") + 1] == "1/3" and "--data.resize" in sharded
    assert "--data.shard" not in data_arguments(SimpleNamespace(dataset=DatasetInfo(**base)))


# ---------------------------------------------------------------------------------------- end to end

ARGS = ["--config", "configs/default.yaml", "--data.generate_if_missing", "false", "--attack.attacks", "[pgd, segpgd]",
        "--attack.steps", "2", "--model.targets", "[default-pspnet-r18, default-deeplabv3-r18]", "--logger", "none",
        "--results.quiet", "true", "--results.bootstrap_resamples", "200", "--data.preflight", "false"]


def _summarize(*args):
    return subprocess.run([sys.executable, "-m", "benchmark.cli", "summarize", *map(str, args)],
                          capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)


def _without_timings(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("timings")
    return data


@pytest.fixture(scope="module")
def shard_runs(tmp_path_factory):
    """The whole split of 5 generated images unsharded, and as shards 0/2, 1/2 (and a mismatched 1/2)."""
    from benchmark.data.synthetic import generate

    tmp = tmp_path_factory.mktemp("shards")
    root = generate(tmp / "data", layout="voc", n_train=0, n_val=5)
    common = [*ARGS, "--data.root", str(root), "--data.batch_size", "2"]
    runs = {"whole": [], "0": ["--data.shard", "0/2"], "1": ["--data.shard", "1/2"],
            "other": ["--data.shard", "1/2", "--attack.steps", "1"]}
    for name, extra in runs.items():
        process = _run([*common, *extra, "--results.out_dir", str(tmp / name)], tmp)
        assert process.returncode == 0, process.stderr[-3000:]
    return tmp


@pytest.mark.slow
def test_two_shards_join_into_the_unsharded_result(shard_runs):
    tmp = shard_runs
    first, second = read_result(tmp / "0" / "results.json"), read_result(tmp / "1" / "results.json")
    assert (first.dataset.num_images, second.dataset.num_images) == (3, 2)
    assert {r.image for r in first.images} == {"val_00000", "val_00002", "val_00004"}
    assert first.dataset.shard == ShardInfo(0, 2, 5) and first.dataset.split_size == 5
    assert "plan: 3 images (shard 0/2 of a job of 5), 1 process(es)" in (tmp / "0" / "run.log").read_text()
    process = _summarize(tmp / "1", tmp / "0", "--out", tmp / "joined")  # any order
    assert process.returncode == 0, process.stderr
    assert "joined 2 shards into the whole job: 5 images" in process.stdout
    joined, whole = _without_timings(tmp / "joined" / "results.json"), _without_timings(tmp / "whole" / "results.json")
    assert joined == whole  # same records, order, metrics, intervals and comparisons
    assert "shard" not in json.loads((tmp / "joined" / "results.json").read_text())["dataset"]
    summary = (tmp / "joined" / "summary.csv").read_text()
    assert summary.count("default-deeplabv3-r18") == 3  # clean + two attacks of the joined run


@pytest.mark.slow
@pytest.mark.parametrize("case, expected", [
    ("missing", r"^error: 1 of 2 shards are missing: 1/2 \(given: 0/2\)$"),
    ("twice", r"^error: shard 0/2 is given twice: .*0/results.json and .*0/results.json$"),
    ("mismatched", r"^error: .*other/results.json and .*0/results.json differ in their attacks; the shards of one job"),
    ("not a shard", r"^error: .*whole/results.json is not a shard result"),
])
def test_summarize_refuses_incomplete_or_mismatched_shards_in_one_line(shard_runs, case, expected):
    tmp = shard_runs
    given = {"missing": ["0"], "twice": ["0", "0", "1"], "mismatched": ["0", "other"],
             "not a shard": ["0", "whole"]}[case]
    process = _summarize(*(tmp / name for name in given), "--out", tmp / f"out-{case}")
    assert process.returncode == 2
    assert process.stderr.count("\n") == 1 and re.match(expected, process.stderr.strip()), process.stderr
    assert not (tmp / f"out-{case}" / "results.json").exists()


@pytest.mark.slow
def test_submit_refuses_a_shard_and_accepts_the_joined_job(shard_runs, tmp_path):
    tmp = shard_runs
    refused = subprocess.run([sys.executable, "-m", "benchmark.cli", "submit", str(tmp / "0" / "results.json"),
                              "--leaderboard", str(tmp_path / "lb")], capture_output=True, text=True, timeout=300,
                             cwd=REPO_ROOT)
    assert refused.returncode == 2 and "shard 0/2 of a job of 5 images; join the job's 2 shard results" in refused.stderr
    assert _summarize(tmp / "0", tmp / "1", "--out", tmp_path / "joined").returncode == 0
    accepted = subprocess.run([sys.executable, "-m", "benchmark.cli", "submit", str(tmp_path / "joined" / "results.json"),
                               "--leaderboard", str(tmp_path / "lb")], capture_output=True, text=True, timeout=300,
                              cwd=REPO_ROOT)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.count("added ") == 2  # one entry per attack


@pytest.mark.slow
def test_join_shards_refuses_overlapping_images(shard_runs):
    tmp = shard_runs
    first = read_result(tmp / "0" / "results.json")
    clash = dataclasses.replace(first, dataset=dataclasses.replace(first.dataset, shard=ShardInfo(1, 2, 6)))
    first6 = dataclasses.replace(first, dataset=dataclasses.replace(first.dataset, shard=ShardInfo(0, 2, 6)))
    with pytest.raises(ResultError, match=r"image 'val_0000[024]' is in two shards: a and b"):
        join_shards([first6, clash], ["a", "b"])


def _bucketed_args(mixed_root, out_dir, batch_size: int, *extra) -> list[str]:
    bucket = ["--data.bucket_by_size", "true"] if batch_size > 1 else []
    return [*ARGS, "--data.root", str(mixed_root), "--attack.attacks", "[pgd, transegpgd]", "--data.batch_size",
            str(batch_size), *bucket, "--results.out_dir", str(out_dir), *extra]


def _same_records(one: Path, other: Path, batch_size: int) -> None:
    a, b = _without_timings(one / "results.json"), _without_timings(other / "results.json")
    assert a["dataset"].pop("batch_size") == 1 and b["dataset"].pop("batch_size") == batch_size
    assert a == b  # every per-image count, metric and interval


@pytest.fixture(scope="module")
def batch_one(mixed_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("batch-one")
    process = _run(_bucketed_args(mixed_root, tmp / "one", 1), tmp)
    assert process.returncode == 0, process.stderr[-3000:]
    return tmp / "one"


@pytest.mark.slow
def test_bucketed_batches_give_the_batch_size_1_records(mixed_root, batch_one, tmp_path):
    sizes = Counter(Image.open(p).size for p in (mixed_root / "JPEGImages").glob("*.jpg"))
    assert sizes == {(160, 120): 3, (120, 96): 2, (144, 120): 2}  # the run really has three sizes
    bucketed = _run(_bucketed_args(mixed_root, tmp_path / "bucketed", 3), tmp_path)
    assert bucketed.returncode == 0, bucketed.stderr[-3000:]
    _same_records(batch_one, tmp_path / "bucketed", 3)


@pytest.mark.slow
def test_bucketed_ddp_gives_the_batch_size_1_records(mixed_root, batch_one, tmp_path):
    # 7 images on 2 ranks: rank 0 gets 4 (sizes 160x120 twice, 120x96, 144x120), rank 1 gets 3
    ddp = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    process = _run(_bucketed_args(mixed_root, tmp_path / "ddp", 2, *ddp), tmp_path,
                   extra_env={"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29541"})
    assert process.returncode == 0, process.stderr[-3000:]
    _same_records(batch_one, tmp_path / "ddp", 2)


@pytest.mark.slow
def test_a_killed_bucketed_shard_resumes_to_the_same_records(mixed_root, tmp_path):
    from tests.lightning.test_resume import _start, _stop_after

    shard = ["--data.shard", "0/2", "--progress.refresh_rate", "0"]
    whole = _run(_bucketed_args(mixed_root, tmp_path / "whole", 1, *shard), tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    out = tmp_path / "run"
    process = _start(["run", *_bucketed_args(mixed_root, out, 2, *shard)], tmp_path)
    _stop_after(process, out, batches=1, sig=signal.SIGKILL)  # the shard's first bucket batch is journalled
    assert not (out / "results.json").exists()
    resumed = _run(_bucketed_args(mixed_root, out, 2, *shard), tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert re.search(r"resuming: [12] of 4 images are journalled", resumed.stderr), resumed.stderr[-2000:]
    _same_records(tmp_path / "whole", out, 2)
