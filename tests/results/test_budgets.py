"""A budget follows from the attack's settings (its eps), never from a field beside them (pitfalls §23):
an edited ``budgets`` in a saved set's manifest, or a perturbation record over its attack's eps, is refused
wherever it is read (``evaluate``, ``submit``, ``verify``)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from benchmark.errors import ResultError
from benchmark.models.zoo import REPO_ROOT
from benchmark.results import AttackInfo, PerturbationRecord, read_result, result_to_json, submit, write_result
from benchmark.results.adv_manifest import (
    MANIFEST_VERSION,
    AdvManifest,
    AttackBudget,
    SavedFile,
    budget_levels,
    check_budget,
    condition_path,
    read_manifest,
    write_manifest,
)
from benchmark.results.entry import entries_from_result
from tests.results.results_factory import build_result, settings_for

EPS8 = 8 / 255


def _manifest(eps=EPS8, levels=None, settings=None, num_images=2) -> AdvManifest:
    """A manifest of one pgd attack from "src" with budget ``levels`` (default: the derived one)."""
    result = build_result(targets=("t1",), attacks=("pgd",), num_images=num_images, split_size=num_images)
    attacks = (AttackInfo.from_settings("pgd", settings or settings_for("pgd", eps=eps)),)
    images = tuple(f"img{i}" for i in range(num_images))
    conditions = ["clean", *((s.id, "pgd", seed) for s in result.sources for seed in result.seeds)]
    files = tuple(sorted((SavedFile(condition_path(c, image), "0" * 64) for c in conditions for image in images),
                         key=lambda f: f.path))
    return AdvManifest(
        manifest_version=MANIFEST_VERSION, dataset=result.dataset, images=images, sources=result.sources,
        models=tuple(m for m in result.models if "source" in m.roles), attacks=attacks, seeds=result.seeds,
        budgets=(AttackBudget("pgd", budget_levels(eps) if levels is None else levels),), result_sha256="a" * 64,
        files=files)


# ---------------------------------------------------------------- the manifest

@pytest.mark.parametrize("eps, levels", [(EPS8, 8), (4 / 255, 4), (0.5 / 255, 0), (16 / 255, 16), (0.03137, 7)])
def test_a_consistent_manifest_is_accepted_and_its_budget_follows_from_eps(eps, levels):
    manifest = _manifest(eps=eps)
    assert manifest.budget("pgd") == levels == manifest.budgets[0].levels


def test_edited_budgets_are_refused_naming_attack_both_values_and_the_edit():
    with pytest.raises(ResultError) as err:
        _manifest(levels=16)
    assert str(err.value) == ("budgets gives pgd 16 levels but its settings (eps 0.0314 = 8/255) allow 8; "
                              "the manifest was edited")


def test_a_lowered_budget_is_refused_too():
    with pytest.raises(ResultError, match="budgets gives pgd 7 levels but its settings .* allow 8"):
        _manifest(levels=7)


def test_an_edited_manifest_file_is_refused_in_one_line_naming_the_file(tmp_path):
    path = write_manifest(tmp_path, _manifest())
    raw = json.loads(path.read_text())
    raw["budgets"][0]["levels"] = 16
    path.write_text(json.dumps(raw))
    with pytest.raises(ResultError) as err:
        read_manifest(tmp_path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    assert message.endswith("budgets gives pgd 16 levels but its settings (eps 0.0314 = 8/255) allow 8; "
                            "the manifest was edited")


def test_an_attack_without_eps_has_no_budget_and_is_refused():
    settings = settings_for("pgd")
    del settings["eps"]
    with pytest.raises(ResultError, match="attack pgd: its settings hold no eps"):
        _manifest(settings=settings, levels=8)


@pytest.mark.parametrize("gap, accepted", [(8, True), (9, False)])
def test_saved_files_are_checked_against_the_budget_derived_from_eps(tmp_path, gap, accepted):
    manifest = _manifest(num_images=1)
    clean = np.full((4, 5, 3), 100, dtype=np.uint8)
    adv = clean.copy()
    adv[1, 2, 0] += gap
    for path, pixels in ((condition_path("clean", "img0"), clean),
                         (condition_path(manifest.conditions()[1], "img0"), adv)):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(tmp_path / path)
    if accepted:
        check_budget(tmp_path, manifest)
    else:
        with pytest.raises(ResultError, match="differs from its clean image by 9 levels, over the budget of 8"):
            check_budget(tmp_path, manifest)


# ---------------------------------------------------------------- perturbation records

def _with_linf(result, linf, image="img0"):
    """``result`` with the L-inf of ``image``'s first perturbation record set to ``linf`` (checked again)."""
    records = list(result.perturbations)
    at = next(i for i, r in enumerate(records) if r.image == image)
    records[at] = dataclasses.replace(records[at], linf=linf)
    return dataclasses.replace(result, perturbations=tuple(records))


def test_a_perturbation_over_eps_is_refused_naming_image_source_attack_and_both_values():
    with pytest.raises(ResultError) as err:
        _with_linf(build_result(attacks=("pgd",)), 16 / 255)
    assert str(err.value) == "perturbations: image img0 under pgd from src moved 16.00/255, over its eps 8.00/255"


@pytest.mark.parametrize("linf, accepted", [
    (EPS8, True),
    (float(np.float32(EPS8)), True),       # measured in float32: rounded up by ~1e-9
    (EPS8 + 0.9e-6, True),
    (EPS8 + 1.1e-6, False),
    (9 / 255, False),
])
def test_a_perturbation_at_eps_is_accepted_within_float32_rounding(linf, accepted):
    result = build_result(attacks=("pgd",))
    if accepted:
        assert max(r.linf for r in _with_linf(result, linf).perturbations) == linf
    else:
        with pytest.raises(ResultError, match="over its eps 8.00/255"):
            _with_linf(result, linf)


@pytest.mark.parametrize("eps", [EPS8, 4 / 255, 0.5 / 255, 16 / 255, 0.03137, 0.0314, 1 / 255 - 1e-9])
def test_a_quantised_saved_set_stays_within_eps(eps):
    """8-bit files move a pixel by at most levels/255, levels = floor(255 eps + 1e-6): never over eps."""
    levels = budget_levels(eps)
    assert levels / 255 <= eps + 1e-6
    honest = build_result(attacks=("pgd",))
    result = dataclasses.replace(  # every image unmoved but the one set below
        honest, attacks=(AttackInfo.from_settings("pgd", settings_for("pgd", eps=eps, alpha=eps / 4)),),
        perturbations=tuple(dataclasses.replace(r, linf=0.0) for r in honest.perturbations))
    assert _with_linf(result, levels / 255).perturbations[0].linf == levels / 255
    with pytest.raises(ResultError, match="over its eps"):
        _with_linf(result, (levels + 1) / 255)


def test_submit_refuses_a_results_file_with_a_perturbation_over_eps(tmp_path):
    raw = result_to_json(build_result(attacks=("pgd",)))
    raw["perturbations"][0]["linf"] = 16 / 255
    path = tmp_path / "results.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ResultError, match=r"results\.json: .*moved 16\.00/255, over its eps 8\.00/255") as err:
        submit(path, tmp_path / "lb")
    assert "\n" not in str(err.value) and not (tmp_path / "lb").exists()


def test_a_leaderboard_entry_with_a_perturbation_over_eps_is_refused():
    (entry,) = entries_from_result(build_result(attacks=("pgd",)))
    records = list(entry.perturbations)
    records[0] = dataclasses.replace(records[0], linf=16 / 255)
    with pytest.raises(ResultError, match="moved 16.00/255, over its eps 8.00/255"):
        dataclasses.replace(entry, perturbations=tuple(records))


def test_honest_results_round_trip(tmp_path):
    result = build_result(attacks=("pgd",))
    write_result(tmp_path / "results.json", result)
    assert read_result(tmp_path / "results.json").perturbations == result.perturbations
    assert all(isinstance(r, PerturbationRecord) for r in result.perturbations)


# ---------------------------------------------------------------- end to end

def _cli(args, tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        env[var] = str(tmp_path / "wandb-home" / var.lower())
    return subprocess.run([sys.executable, "-m", "benchmark.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO_ROOT, env=env)


@pytest.mark.slow
def test_evaluate_refuses_a_saved_set_whose_budget_was_raised_beside_its_settings(tmp_path):
    """The reported case: budgets 8 -> 16 levels in the manifest, one pixel moved 16 levels (its sha256
    fixed in the manifest): ``evaluate`` must refuse the set, not score it as eps 8/255."""
    from benchmark.data.synthetic import generate

    data_root = generate(tmp_path / "data" / "synthetic-voc", layout="voc", n_train=0, n_val=2)
    run = tmp_path / "run"
    ran = _cli(["run", "--config", "configs/default.yaml", "--data.root", str(data_root), "--data.limit", "2",
                "--data.batch_size", "2", "--attack.attacks", "[pgd]", "--attack.steps", "2",
                "--results.save_adv", "true", "--logger", "none", "--results.quiet", "true",
                "--progress.refresh_rate", "0", "--results.out_dir", str(run)], tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    adv = run / "adv"
    raw = json.loads((adv / "manifest.json").read_text())
    assert raw["budgets"] == [{"attack": "pgd", "levels": 8}]
    raw["budgets"][0]["levels"] = 16
    victim = sorted((adv / "default-pspnet-r18" / "pgd" / "seed0").glob("*.png"))[0]
    clean = np.asarray(Image.open(adv / "clean" / victim.name).convert("RGB")).astype(int)
    pixels = np.asarray(Image.open(victim).convert("RGB")).copy()
    pixels[0, 0, 0] = clean[0, 0, 0] + 16 if clean[0, 0, 0] <= 239 else clean[0, 0, 0] - 16
    Image.fromarray(pixels).save(victim)
    relative = victim.relative_to(adv).as_posix()
    for entry in raw["files"]:
        if entry["path"] == relative:
            entry["sha256"] = hashlib.sha256(victim.read_bytes()).hexdigest()
    (adv / "manifest.json").write_text(json.dumps(raw))

    evaluated = _cli(["evaluate", "--adv", str(adv), "--targets", "default-deeplabv3-r18", "--data.root",
                      str(data_root), "--logger", "none", "--results.out_dir", str(tmp_path / "eval")], tmp_path)
    errors = [line for line in evaluated.stderr.splitlines() if line.startswith("error:")]
    assert evaluated.returncode == 2 and len(errors) == 1, evaluated.stderr[-3000:]
    assert "manifest.json" in errors[0] and "budgets gives pgd 16 levels" in errors[0] and "allow 8" in errors[0]
    assert not (tmp_path / "eval" / "results.json").exists()
    print(errors[0])
