"""Settings validation, registry behaviour and build_attack routing (attacks.md 4.4)."""

from __future__ import annotations

import dataclasses
import types

import pytest

from benchmark.attacks import (
    ATTACKS,
    MODIFIERS,
    DISettings,
    IterativeSettings,
    MomentumSettings,
    SegPGDSettings,
    TISettings,
    TranSegPGDSettings,
    build_attack,
    registry,
)
from benchmark.errors import ConfigError

from .conftest import ALL_NAMES

BAD = [
    (IterativeSettings, {"eps": 8}, "eps=8"),
    (IterativeSettings, {"eps": 0}, "eps=0"),
    (IterativeSettings, {"eps": float("nan")}, "eps=nan"),
    (IterativeSettings, {"alpha": -0.1}, "alpha=-0.1"),
    (IterativeSettings, {"steps": 0}, "steps=0"),
    (IterativeSettings, {"steps": 2.5}, "steps=2.5"),
    (IterativeSettings, {"random_start": 1}, "random_start=1"),
    (IterativeSettings, {"step_schedule": "exp"}, "step_schedule='exp'"),
    (IterativeSettings, {"step_min_ratio": 0.0}, "step_min_ratio=0.0"),
    (IterativeSettings, {"loss_normalizer": "batch"}, "loss_normalizer='batch'"),
    (IterativeSettings, {"label_source": "x"}, "label_source='x'"),
    (IterativeSettings, {"return_iterate": "first"}, "return_iterate='first'"),
    (IterativeSettings, {"ensemble": "vote"}, "ensemble='vote'"),
    (SegPGDSettings, {"lambda_offset": -1}, "lambda_offset=-1"),
    (TranSegPGDSettings, {"steps": 10, "stage1_steps": 11}, "stage1_steps=11"),
    (TranSegPGDSettings, {"stage1_steps": -1}, "stage1_steps=-1"),
    (TranSegPGDSettings, {"gamma": 0.6}, "gamma=0.6"),
    (TranSegPGDSettings, {"beta": -0.1}, "beta=-0.1"),
    (TranSegPGDSettings, {"lambda_offset": 2}, "lambda_offset=2"),
    (TranSegPGDSettings, {"topk_fraction": 0.0}, "topk_fraction=0.0"),
    (TranSegPGDSettings, {"stage_switch": "all_fooled"}, "weight_horizon='stage'"),
    (TranSegPGDSettings, {"kl_reference": "label", "kl_direction": "adv_clean"}, "kl_direction='adv_clean'"),
    (TranSegPGDSettings, {"stage2_split": "max"}, "stage2_split='max'"),
    (TranSegPGDSettings, {"stage2_loss": "js"}, "stage2_loss='js'"),
    (MomentumSettings, {"decay": -1.0}, "decay=-1.0"),
    (DISettings, {"resize_rate": 1.0}, "resize_rate=1.0"),
    (DISettings, {"diversity_prob": 1.5}, "diversity_prob=1.5"),
    (TISettings, {"kernel_size": 4}, "kernel_size=4"),
    (TISettings, {"nsig": 0}, "nsig=0"),
]


@pytest.mark.parametrize("cls,kwargs,needle", BAD, ids=[b[2] for b in BAD])
def test_invalid_settings_name_field_and_value(cls, kwargs, needle):
    with pytest.raises(ConfigError) as err:
        cls(**kwargs)
    message = str(err.value)
    assert needle in message and "\n" not in message


def test_eps_in_255_units_gets_a_hint():
    with pytest.raises(ConfigError, match="8/255"):
        IterativeSettings(eps=8)


def test_resolution_of_alpha_and_stage1_steps():
    assert IterativeSettings(eps=0.1, alpha=None, steps=4).alpha == pytest.approx(0.025)
    assert TranSegPGDSettings(steps=9).stage1_steps == 4
    assert TranSegPGDSettings(steps=9, stage1_steps=0).stage1_steps == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        IterativeSettings().eps = 0.5


def test_registry_defaults():
    table = {name: build_attack(name).to_dict() for name in ATTACKS}
    assert table["fgsm"]["alpha"] == table["fgsm"]["eps"] and table["fgsm"]["steps"] == 1
    assert table["fgsm"]["random_start"] is False and table["bim"]["random_start"] is False
    assert table["pgd"]["random_start"] is True and table["pgd"]["alpha"] == 2 / 255
    for name in ("segpgd", "cospgd", "transegpgd"):
        assert table[name]["steps"] == 20 and table[name]["alpha"] == 2 / 255 and table[name]["random_start"]
    assert table["segpgd"]["lambda_offset"] == 0
    assert table["transegpgd"]["step_schedule"] == "uniform" and table["pgd"]["step_schedule"] == "constant"
    for name in ("mifgsm", "nifgsm", "difgsm", "tifgsm"):
        assert table[name]["steps"] == 10 and table[name]["alpha"] == pytest.approx(8 / 255 / 10)
        assert table[name]["random_start"] is False
    assert table["mifgsm"]["decay"] == 1.0 and table["difgsm"]["resize_rate"] == 1.1
    assert table["difgsm"]["diversity_prob"] == 0.5
    assert table["tifgsm"]["kernel_size"] == 15 and table["tifgsm"]["nsig"] == 3.0
    for row in table.values():
        assert row["eps"] == 8 / 255 and row["ignore_index"] == 255 and row["ensemble"] == "logits"


def test_modifier_keeps_base_defaults_and_records_every_option():
    flat = build_attack("transegpgd+mi+di+ti").to_dict()
    assert flat["attack"] == "transegpgd+mi+di+ti" and flat["alpha"] == 2 / 255 and flat["steps"] == 20
    for key in ("decay", "resize_rate", "diversity_prob", "kernel_size", "nsig", "stage1_steps", "stage_switch",
                "stage1_split", "stage1_weight", "stage2_weight", "gamma", "beta", "lambda_offset",
                "weight_horizon", "kl_reference", "kl_direction", "stage2_split", "topk_fraction",
                "transferable_side", "stage2_loss", "step_schedule", "step_min_ratio", "loss_normalizer",
                "label_source", "return_iterate", "random_start"):
        assert key in flat
    assert all(isinstance(v, (int, float, str, bool)) for v in flat.values())


def test_canonical_names():
    assert build_attack("transegpgd+ti+di+mi").name == "transegpgd+mi+di+ti"
    assert build_attack("pgd+ti+ni").name == "pgd+ni+ti"
    assert build_attack("mifgsm").name == "mifgsm"


@pytest.mark.parametrize("name,needle", [
    ("foo", "unknown base 'foo'"),
    ("pgd+xx", "unknown modifier 'xx'"),
    ("pgd+mi+ni", "mutually exclusive"),
    ("pgd+mi+mi", "twice"),
    ("mifgsm+di", "takes no modifiers"),
    ("fgsm+mi", "takes no modifiers"),
    ("", "non-empty"),
])
def test_bad_names(name, needle):
    with pytest.raises(ConfigError, match=needle):
        build_attack(name)


def test_settings_routing_and_unknown_keys():
    attack = build_attack("pgd+mi+ti", eps=4 / 255, decay=0.5, kernel_size=7)
    assert attack.settings.base.eps == 4 / 255
    assert [type(m) for m in attack.settings.modifiers] == [MomentumSettings, TISettings]
    assert attack.settings.modifiers[0].decay == 0.5 and attack.settings.modifiers[1].kernel_size == 7
    with pytest.raises(ConfigError, match="unknown setting 'decay'.*eps"):
        build_attack("pgd", decay=0.5)
    with pytest.raises(ConfigError, match="unknown setting 'name'"):
        build_attack("pgd", name="pgd")
    with pytest.raises(ConfigError, match="steps=5"):
        build_attack("fgsm", steps=5)
    assert build_attack("fgsm", steps=1).to_dict()["steps"] == 1


def test_settings_hash_is_short_stable_and_sensitive():
    a, b = build_attack("transegpgd", steps=10), build_attack("transegpgd", steps=10)
    assert a.settings_hash == b.settings_hash and len(a.settings_hash) == 12
    assert int(a.settings_hash, 16) >= 0
    others = {
        build_attack("transegpgd", steps=11).settings_hash,
        build_attack("transegpgd", steps=10, stage2_split="median").settings_hash,
        build_attack("transegpgd+mi", steps=10).settings_hash,
        build_attack("transegpgd+ni", steps=10).settings_hash,
    }
    assert a.settings_hash not in others and len(others) == 4


def test_registries_are_read_only_and_reject_duplicates():
    with pytest.raises(TypeError):
        ATTACKS["new"] = ATTACKS["pgd"]  # type: ignore[index]
    with pytest.raises(TypeError):
        MODIFIERS["mi"] = MODIFIERS["ni"]  # type: ignore[index]
    clash = types.ModuleType("clash")
    clash.METHODS = (dataclasses.replace(ATTACKS["pgd"]),)
    with pytest.raises(ConfigError, match="'pgd' clashes with the built-in attack 'pgd'"):
        registry.register_module(clash, {"import": "clash.py", "sha256": {}})
    assert "clash" not in str(registry.origin("pgd"))


def test_every_listed_name_builds():
    assert {"fgsm", "bim", "pgd", "segpgd", "cospgd", "transegpgd", "mifgsm", "nifgsm", "difgsm", "tifgsm",
            "tsallispgd", "dag", "apgd", "sea", "fspgd", "rppgd", "tass"} == set(ATTACKS)
    assert set(MODIFIERS) == {"mi", "ni", "di", "ti", "vt", "si", "admix", "ssa", "ds", "bsr", "targeted", "tdi",
                              "blur"}
    for name in ALL_NAMES:
        assert build_attack(name).name == name


@pytest.mark.parametrize("name, settings, message", [
    ("segpgd+targeted", {}, "'segpgd' has no targeted mode; bases with one: bim, pgd, tsallispgd, apgd"),
    ("apgd+targeted", {"loss": "js"}, "this configuration of 'apgd' has no targeted mode"),
    ("pgd+si+admix", {}, "'si' and 'admix' are both pixel transforms"),
    ("pgd+di+bsr", {}, "'di' and 'bsr' are both geometry transforms"),
    ("sea", {"sea_losses": "ce,foo"}, "sea_losses='ce,foo': must name distinct losses"),
    ("sea", {"sea_losses": "js,js"}, "sea_losses='js,js': must name distinct losses"),
    ("pgd+ssa", {"ssa_rho": 1.5}, "ssa_rho=1.5: must lie in [0, 1.0]"),
    ("pgd+bsr", {"bsr_blocks": 0}, "bsr_blocks=0: must be an integer >= 1"),
    ("tsallispgd", {"q_schedule": "exp"}, "q_schedule='exp': must be one of"),
    ("pgd+targeted", {"target_class": -1}, "target_class=-1: must be an integer >= 0"),
    ("dag", {"active_set": "all"}, "active_set='all': must be one of 'correct', 'not_target'"),
    ("fspgd", {"similarity_c": 1}, "similarity_c=1: must be > 1"),
    ("pgd+ds", {"scale_min": 2.0, "scale_max": 1.0}, "scale_min=2.0: must be <= scale_max=1.0"),
    ("apgd", {"rho": 0}, "rho=0: must lie in (0, 1.0]"),
])
def test_new_attacks_refuse_bad_settings_with_the_field_and_value(name, settings, message):
    with pytest.raises(ConfigError) as err:
        build_attack(name, **settings)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_open_points_are_recorded_in_the_settings():
    recorded = {
        "tsallispgd": {"q_start": -2.0, "q_end": 1.0, "q_schedule": "linear"},
        "dag": {"target_rule": "permutation", "active_set": "correct", "random_start": False},
        "sea": {"sea_losses": "masked_ce,balanced_ce,js,mask_norm", "radius_schedule": "progressive",
                "initial_step": 2.0, "momentum": 0.75, "rho": 0.75, "return_iterate": "best"},
        "fspgd": {"layer": None, "similarity_c": 3.0, "context_features": "raw"},
        "pgd+ds": {"scale_min": 0.5, "scale_max": 1.5, "scale_prob": 1.0},
        "pgd+admix": {"admix_copies": 5, "admix_mixes": 3, "admix_strength": 0.2, "admix_source": "rolled"},
        "pgd+bsr": {"bsr_blocks": 2, "bsr_copies": 20, "bsr_angle": 24.0},
        "pgd+ssa": {"ssa_copies": 20, "ssa_rho": 0.5, "ssa_sigma": None},
        "bim+mi+vt": {"vt_samples": 20, "vt_beta": 1.5},
        "pgd+targeted": {"target_rule": "permutation", "target_class": 0},
    }
    for name, expected in recorded.items():
        flat = build_attack(name).to_dict()
        assert {key: flat[key] for key in expected} == expected, name


def test_only_attacks_whose_numbers_changed_record_a_code_revision():
    """The reference checks changed APGD's checkpoints, TsallisPGD's q schedule, DAG's not_target set,
    SSA's gradient and VT's centre under NI: those attacks record revision 2 (a new settings hash),
    every other attack's settings and hash stay as they were."""
    from benchmark.attacks import build_attack

    changed = [("apgd", {}), ("sea", {}), ("tsallispgd", {}), ("dag", {"active_set": "not_target"}),
               ("pgd+ssa", {}), ("bim+ni+vt", {}), ("segpgd+vt+ssa", {})]
    kept = [("pgd", {}), ("segpgd", {}), ("transegpgd", {}), ("transegpgd+mi", {}), ("dag", {}), ("bim+mi+vt", {}),
            ("pgd+ni", {}), ("fspgd", {}), ("cospgd", {}), ("pgd+di", {})]
    for name, options in changed:
        assert build_attack(name, **options).to_dict()["revision"] == 2, name
    for name, options in kept:
        assert "revision" not in build_attack(name, **options).to_dict(), name


def test_every_attacks_recorded_settings_build_it_again():
    """What the plan, the run log and ``benchmark verify`` do: rebuild an attack from its flat settings
    (a code revision included) and get the same settings and hash."""
    from benchmark.attacks import build_attack
    from benchmark.attacks.settings import build_options
    from tests.attacks.conftest import ALL_NAMES

    for name in [*ALL_NAMES, "dag"]:
        attack = build_attack(name)
        again = build_attack(attack.to_dict()["attack"], **build_options(attack.to_dict()))
        assert again.to_dict() == attack.to_dict() and again.settings_hash == attack.settings_hash, name
    nt = build_attack("dag", active_set="not_target")
    assert build_attack("dag", **build_options(nt.to_dict())).settings_hash == nt.settings_hash
