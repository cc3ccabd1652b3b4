"""results.json: round trip, strict reading, migrations, atomic writes, tracks."""

from __future__ import annotations

import copy
import dataclasses
import json
import os

import pytest

from benchmark.errors import ResultError
from benchmark.results import io as rio
from benchmark.results import (
    AttackInfo,
    MetricRecord,
    read_result,
    result_from_json,
    result_to_json,
    track_name,
    write_result,
)
from benchmark.results.tracks import settings_hash

# Every key of a results.json (objects inside lists: their first element). Written by hand, so a
# schema change must be made here on purpose.
KEY_PATHS = [
    "schema_version", "dataset", "dataset.name", "dataset.split", "dataset.num_images",
    "dataset.split_size", "dataset.image_limit", "dataset.input_policy", "dataset.class_names",
    "dataset.ignore_index", "dataset.batch_size", "models", "models[0].name", "models[0].roles", "models[0].config",
    "models[0].checkpoint_sha256", "models[0].inference_mode", "sources", "sources[0].models",
    "sources[0].ensemble", "attacks", "attacks[0].name", "attacks[0].settings", "attacks[0].settings_hash",
    "attacks[0].track", "attacks[0].track.name", "attacks[0].track.norm", "attacks[0].track.eps",
    "attacks[0].track.eps_255", "attacks[0].track.steps", "attacks[0].track.alpha",
    "attacks[0].track.alpha_255", "attacks[0].track.alpha_rule", "seeds", "adv_format",
    "intervals", "intervals.method", "intervals.level", "intervals.resamples", "intervals.seed",
    "provenance", "versions",
    "versions.python", "versions.torch", "versions.torchmetrics", "versions.lightning",
    "versions.mmseg", "versions.benchmark", "numerics", "numerics.device", "numerics.device_name",
    "numerics.threads", "numerics.autocast", "numerics.deterministic", "numerics.cudnn_benchmark", "numerics.tf32",
    "timings", "timings.wall_s", "timings.images_per_s",
    "metrics", "metrics[0].target", "metrics[0].source", "metrics[0].condition", "metrics[0].seed",
    "metrics[0].miou", "metrics[0].miou_ci", "metrics[0].per_class_iou", "metrics[0].pixel_accuracy",
    "metrics[0].macc", "metrics[0].per_class_acc", "metrics[0].success_rate", "metrics[0].success_rate_ci", "metrics[0].num_images",
    "summaries", "summaries[0].target", "summaries[0].source", "summaries[0].condition", "summaries[0].seeds",
    "summaries[0].miou_mean", "summaries[0].miou_std", "summaries[0].miou_ci", "summaries[0].success_rate_mean",
    "summaries[0].success_rate_std", "summaries[0].success_rate_ci",
    "comparisons", "comparisons[0].target", "comparisons[0].source", "comparisons[0].first",
    "comparisons[0].second", "comparisons[0].difference", "comparisons[0].ci", "comparisons[0].distinguishable",
    "perturbation_summaries", "perturbation_summaries[0].source", "perturbation_summaries[0].condition",
    "perturbation_summaries[0].mean_linf_255", "perturbation_summaries[0].max_linf_255",
    "perturbation_summaries[0].mean_l2", "images", "images[0].image", "images[0].target", "images[0].source", "images[0].condition", "images[0].seed",
    "images[0].classes", "images[0].intersection", "images[0].predicted", "images[0].labelled",
    "images[0].fooled", "perturbations", "perturbations[0].image", "perturbations[0].source",
    "perturbations[0].condition", "perturbations[0].seed", "perturbations[0].linf", "perturbations[0].l2",
]
OBJECT_PATHS = ["", "dataset", "models[0]", "sources[0]", "attacks[0]", "attacks[0].track", "intervals", "versions",
                "numerics", "timings", "metrics[0]", "summaries[0]", "comparisons[0]", "perturbation_summaries[0]",
                "images[0]", "perturbations[0]"]


def _split(path: str) -> list:
    parts: list = []
    for token in path.split("."):
        if "[" in token:
            name, index = token[:-1].split("[")
            parts += [name, int(index)]
        else:
            parts.append(token)
    return parts


def _parent(raw: dict, path: str):
    parts = _split(path)
    node = raw
    for p in parts[:-1]:
        node = node[p]
    return node, parts[-1]


def _all_paths(value, prefix="") -> list[str]:
    out = []
    if isinstance(value, dict):
        for k, v in value.items():
            if prefix.endswith("settings"):
                continue
            p = f"{prefix}.{k}" if prefix else k
            out += [p, *_all_paths(v, p)]
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        out += _all_paths(value[0], f"{prefix}[0]")
    return out


def test_round_trip(tmp_path, make_result):
    result = make_result()
    path = tmp_path / "results.json"
    write_result(path, result)
    back = read_result(path)
    assert back == result
    assert back.attacks[0].settings == result.attacks[0].settings
    assert isinstance(back.metrics[0].per_class_iou, tuple)
    assert read_result(path) == back


def test_key_list_is_complete(make_result):
    assert _all_paths(result_to_json(make_result())) == KEY_PATHS


def test_file_layout_is_plain_json_numbers(tmp_path, make_result):
    path = tmp_path / "results.json"
    write_result(path, make_result())
    raw = json.loads(path.read_text())
    assert raw["schema_version"] == 2
    first = raw["metrics"][0]
    assert first["condition"] == "clean" and first["success_rate"] is None
    assert first["source"] is None and first["seed"] is None
    assert raw["metrics"][1]["source"] == "src" and raw["metrics"][1]["seed"] == 0
    assert first["miou"] == 0.70 and first["per_class_iou"] == [0.70, None, 0.70]
    assert raw["attacks"][0]["track"]["eps_255"] == 8.0
    assert raw["attacks"][0]["settings"]["eps"] == 8 / 255


@pytest.mark.parametrize("path", KEY_PATHS)
def test_missing_key_rejected(tmp_path, make_result, path):
    raw = result_to_json(make_result())
    node, key = _parent(raw, path)
    del node[key]
    file = tmp_path / "results.json"
    file.write_text(json.dumps(raw))
    with pytest.raises(ResultError) as err:
        read_result(file)
    message = str(err.value)
    assert str(file) in message
    assert (f"missing key '{path}'" in message) if path != "schema_version" else ("schema_version" in message)


@pytest.mark.parametrize("path", OBJECT_PATHS)
def test_unknown_key_rejected(tmp_path, make_result, path):
    raw = result_to_json(make_result())
    node = raw
    for p in _split(path) if path else []:
        node = node[p]
    node["surprise"] = 1
    file = tmp_path / "r.json"
    file.write_text(json.dumps(raw))
    expected = f"{path}.surprise" if path else "surprise"
    with pytest.raises(ResultError) as err:
        read_result(file)
    assert str(err.value) == f"{file}: unknown key '{expected}'"


@pytest.mark.parametrize("path", [
    "schema_version", "seeds[0]", "dataset.num_images", "dataset.image_limit", "attacks[0].track.eps",
    "attacks[0].track.steps", "timings.wall_s", "metrics[0].miou", "metrics[0].per_class_iou[0]",
    "metrics[1].success_rate", "metrics[0].num_images",
])
def test_number_as_string_rejected(make_result, path):
    raw = result_to_json(make_result(image_limit=4))
    node, key = _parent(raw, path)
    node[key] = str(node[key])
    with pytest.raises(ResultError, match="expected an integer|expected a number|schema_version"):
        result_from_json(raw, "fixture.json")


@pytest.mark.parametrize("path, value, match", [
    ("seeds", [1.0], "expected an integer"),
    ("seeds", [True], "expected an integer"),
    ("seeds", [0, 0], "distinct"),
    ("metrics[1].seed", None, "null exactly for the clean"),
    ("metrics[0].source", "src", "null exactly for the clean"),
    ("metrics[0].miou_ci", [0.9, 0.1], "low <= high"),
    ("comparisons[0].distinguishable", False, "excludes 0"),
    ("intervals.level", 95, "level"),
    ("metrics[0].miou", True, "expected a number"),
    ("metrics[0].miou", 70.0, "fraction"),
    ("metrics[1].success_rate", 1.5, "fraction"),
    ("metrics[0].success_rate", 0.5, "null for the clean"),
    ("models[0].checkpoint_sha256", "ABC", "64 lowercase hex"),
    ("models[0].roles", ["target", "source"], "roles"),
    ("adv_format", "jpeg", "adv_format"),
    ("dataset.class_names", "background", "expected a list"),
    ("attacks[0].settings_hash", "000000000000", "settings_hash"),
    ("attacks[0].track.name", "linf-8-t20-ae", "track"),
    ("metrics[0].num_images", 3, "num_images"),
    ("metrics[0].per_class_iou", [0.5], "per_class_iou|one accuracy per class"),
    ("schema_version", 3, "newer than supported"),
])
def test_bad_values_rejected(make_result, path, value, match):
    raw = result_to_json(make_result())
    node, key = _parent(raw, path)
    node[key] = value
    with pytest.raises(ResultError, match=match):
        result_from_json(raw, "fixture.json")


def test_changed_settings_break_the_hash(make_result):
    raw = result_to_json(make_result())
    raw["attacks"][0]["settings"]["steps"] = 10
    with pytest.raises(ResultError, match="settings_hash"):
        result_from_json(raw, "fixture.json")


def test_missing_metric_cell_rejected(make_result):
    raw = result_to_json(make_result())
    del raw["metrics"][-1]
    with pytest.raises(ResultError, match="every target x"):
        result_from_json(raw, "fixture.json")


@pytest.mark.parametrize("text, match", [
    ('{"schema_version": 1, "schema_version": 1}', "duplicate key"),
    ('{"schema_version": NaN}', "invalid JSON"),
    ("[1, 2]", "JSON object"),
    ("{", "invalid JSON"),
])
def test_malformed_json_rejected(tmp_path, text, match):
    file = tmp_path / "r.json"
    file.write_text(text)
    with pytest.raises(ResultError, match=match):
        read_result(file)


def test_nan_is_never_written(tmp_path, make_result):
    result = make_result()
    bad = MetricRecord.__new__(MetricRecord)
    for name, value in vars(result.metrics[0]).items():
        object.__setattr__(bad, name, value)
    object.__setattr__(bad, "miou", float("nan"))
    object.__setattr__(result, "metrics", (bad, *result.metrics[1:]))
    with pytest.raises(ResultError, match="non-finite"):
        write_result(tmp_path / "r.json", result)
    assert list(tmp_path.iterdir()) == []


def test_migration_hook(tmp_path, make_result, monkeypatch):
    raw = result_to_json(make_result())
    old = copy.deepcopy(raw)
    old["schema_version"] = 1
    old["run_seeds"] = old.pop("seeds")  # pretend version 1 called it run_seeds
    file = tmp_path / "old.json"
    file.write_text(json.dumps(old))

    def fake_v1_to_v2(d):
        d = dict(d)
        d["seeds"] = d.pop("run_seeds")
        d["schema_version"] = 2
        return d

    monkeypatch.setitem(rio.MIGRATIONS, 1, fake_v1_to_v2)
    assert read_result(file) == make_result()
    old["schema_version"] = 0
    file.write_text(json.dumps(old))
    with pytest.raises(ResultError, match="no migration from schema_version 0"):
        read_result(file)


def _as_version_1(result) -> dict:
    """A version-1 file of the same run, written as version 1 stored it (one source and seed, records
    without source, seed or intervals, no summaries or comparisons)."""
    raw = result_to_json(result)
    strip = lambda r, keys: {k: v for k, v in r.items() if k not in keys}  # noqa: E731
    return {"schema_version": 1, "dataset": raw["dataset"], "models": raw["models"], "source": raw["sources"][0],
            "attacks": raw["attacks"], "seed": raw["seeds"][0], "adv_format": raw["adv_format"],
            "versions": raw["versions"], "timings": raw["timings"],
            "metrics": [strip(m, ("source", "seed", "miou_ci", "success_rate_ci", "macc", "per_class_acc"))
                        for m in raw["metrics"]],
            "images": [strip(i, ("source", "seed")) for i in raw["images"]]}


def test_version_1_files_are_read_with_intervals_recomputed(tmp_path, make_result):
    result = make_result(seed=3, resamples=1000)  # the migration uses the default interval settings
    file = tmp_path / "v1.json"
    file.write_text(json.dumps(_as_version_1(result)))
    # version 1 recorded neither numerics nor perturbations
    assert read_result(file) == dataclasses.replace(result, numerics=None, perturbations=(), perturbation_summaries=())


def test_an_altered_version_1_file_is_refused_not_repaired(tmp_path, make_result):
    old = _as_version_1(make_result(resamples=1000))
    old["metrics"][1]["miou"] += 0.01
    file = tmp_path / "v1.json"
    file.write_text(json.dumps(old))
    with pytest.raises(ResultError, match="do not follow from its image records"):
        read_result(file)


def test_atomic_write_leaves_no_temp_files(tmp_path, make_result):
    path = tmp_path / "results.json"
    write_result(path, make_result(seed=1))
    write_result(path, make_result(seed=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
    assert read_result(path).seeds == (2,)


def test_failed_replace_keeps_old_file(tmp_path, make_result, monkeypatch):
    path = tmp_path / "results.json"
    write_result(path, make_result(seed=1))

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_result(path, make_result(seed=2))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
    assert read_result(path).seeds == (1,)


@pytest.mark.parametrize("eps, steps, alpha, name", [
    (8 / 255, 20, 2 / 255, "linf-8-t20-a2"),
    (8 / 255, 20, None, "linf-8-t20-ae"),
    (8 / 255, 20, 0.4 / 255, "linf-8-t20-ae"),
    (4 / 255, 1, 4 / 255, "linf-4-t1-ae"),
    (0.5 / 255, 10, 0.25 / 255, "linf-0p5-t10-a0p25"),
    (16 / 255, 10, 1 / 255, "linf-16-t10-a1"),
])
def test_track_names(eps, steps, alpha, name):
    assert track_name(eps, steps, eps / steps if alpha is None else alpha) == name
    info = AttackInfo.from_settings("pgd", {"eps": eps, "steps": steps, "alpha": alpha})
    assert info.track is not None and info.track.name == name
    assert info.track.alpha_rule == ("eps/steps" if name.endswith("-ae") else "fixed")


def test_track_none_without_budget():
    assert AttackInfo.from_settings("odd", {"foo": 1}).track is None


def test_settings_hash_ignores_key_order_and_sees_values():
    a = {"eps": 8 / 255, "steps": 20, "alpha": 2 / 255}
    assert settings_hash(a) == settings_hash(dict(reversed(list(a.items()))))
    assert settings_hash(a) != settings_hash({**a, "steps": 10})
    assert len(settings_hash(a)) == 12 and int(settings_hash(a), 16) >= 0


def test_targeted_attacks_rank_in_their_own_tracks_and_untargeted_files_have_no_goal_key():
    from benchmark.attacks import build_attack
    from benchmark.results import AttackInfo
    from benchmark.results.codec import decode, encode

    def info(name, **settings):
        attack = build_attack(name, **settings)
        return AttackInfo.from_settings(attack.name, attack.to_dict())

    untargeted, permutation = info("pgd"), info("pgd+targeted")
    to_class = info("pgd+targeted", target_rule="class", target_class=3)
    assert (untargeted.track.name, permutation.track.name, to_class.track.name) == (
        "linf-8-t10-a2", "linf-8-t10-a2-tperm", "linf-8-t10-a2-tc3")
    assert (permutation.track.goal, to_class.track.goal) == ("targeted:permutation", "targeted:class=3")
    assert info("dag").track.goal == "untargeted"  # DAG's own targets serve the untargeted benchmark
    assert "goal" not in encode(untargeted.track) and encode(to_class.track)["goal"] == "targeted:class=3"
    for attack in (untargeted, to_class):
        assert decode(AttackInfo, encode(attack), "f.json") == attack
    # a track whose name does not say its goal is refused
    wrong = {**encode(to_class), "track": {**encode(to_class.track), "name": "linf-8-t10-a2"}}
    with pytest.raises(ResultError, match="does not match its eps, steps, alpha and goal"):
        decode(AttackInfo, wrong, "f.json")
