"""Attack plugins: a user's file or installed package, in the form of a built-in method file."""

from __future__ import annotations

import sys

import pytest
import torch

from benchmark.attacks import ATTACKS, MODIFIERS, build_attack, registry
from benchmark.attacks.conformance import check_attack
from benchmark.errors import ConfigError
from benchmark.fileio import sha256_file
from benchmark.plugins import check_origin, import_spec, load_attack_plugins, origin
from tests.plugin_toys import BROKEN_ATTACK, TOY_ATTACK, write_attack_file, write_entry_point_package

from .conftest import TinySegNet, gens, make_batch


@pytest.fixture(autouse=True)
def _restore_registry():
    """Every test leaves the registry as it found it."""
    before = set(ATTACKS) | set(MODIFIERS)
    yield
    registry.unregister((set(ATTACKS) | set(MODIFIERS)) - before)


def test_a_plugin_file_registers_its_attack_and_modifier_with_provenance(tmp_path):
    path = write_attack_file(tmp_path)
    (record,) = load_attack_plugins([str(path)], entry_points=False)
    assert record == {"import": str(path), "distribution": None, "version": None,
                      "sha256": {"toy_attack.py": sha256_file(path)}}
    assert registry.origin("toyattack") == record and registry.origin("toyscale") == record
    assert registry.origin("pgd") is None
    assert registry.attack_origins("toyattack+mi+toyscale") == (record,)
    assert registry.attack_origins("pgd+mi") == ()
    # idempotent: every DDP worker and every callback may load the same plugins again
    assert load_attack_plugins([str(path)], entry_points=False) == [record]


def test_a_plugin_composes_with_every_kind_of_modifier_and_is_hashed_like_a_built_in(tmp_path):
    load_attack_plugins([str(write_attack_file(tmp_path))], entry_points=False)
    attack = build_attack("toyattack+toyscale+ni+di+ti", toy_power=2.0, steps=3)
    assert attack.name == "toyattack+ni+di+ti+toyscale"  # canonical: plugin modifiers after the built-ins
    flat = attack.to_dict()
    assert flat["toy_power"] == 2.0 and flat["toy_scale"] == 2.0 and flat["decay"] == 1.0
    assert len(attack.settings_hash) == 12 and "revision" not in flat
    images, labels = make_batch(n=2)
    adv = attack(TinySegNet(seed=1).eval(), images, labels, generator=gens(2))
    assert (adv - images).abs().max() <= 8 / 255 + 1e-6 and (adv != images).any()
    with pytest.raises(ConfigError, match="toy_power=-1: must be >= 0"):
        build_attack("toyattack", toy_power=-1)


def test_the_conformance_check_passes_a_valid_plugin_and_fails_a_broken_one_on_its_row(tmp_path):
    load_attack_plugins([str(write_attack_file(tmp_path)), str(write_attack_file(tmp_path, BROKEN_ATTACK,
                                                                                  "broken.py"))], entry_points=False)
    assert all(c.holds for c in check_attack("toyattack+toyscale+mi"))
    rows = {c.name: c for c in check_attack("leakyattack")}
    assert [name for name, c in rows.items() if not c.holds] == ["ignored pixels"]
    assert "ignored pixels carry loss" in rows["ignored pixels"].detail


def test_an_installed_package_offers_attacks_through_its_entry_point(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(write_entry_point_package(tmp_path / "site")))
    records = load_attack_plugins([])
    toy = next(r for r in records if r["import"] == "toy_pkg.attacks")
    assert (toy["distribution"], toy["version"]) == ("toy-bench-plugin", "0.3.1")
    assert toy["sha256"] == {"toy_pkg/attacks.py": sha256_file(tmp_path / "site" / "toy_pkg" / "attacks.py")}
    assert registry.origin("toypkgattack") == toy
    assert build_attack("toypkgattack+pkgscale").name == "toypkgattack+pkgscale"
    monkeypatch.delitem(sys.modules, "toy_pkg.attacks")
    monkeypatch.delitem(sys.modules, "toy_pkg")


@pytest.mark.parametrize("text, message", [
    (TOY_ATTACK.replace('"toyattack"', '"pgd"'), "'pgd' clashes with the built-in attack 'pgd'"),
    (TOY_ATTACK.replace('"toyscale"', '"mi"'), "'mi' clashes with the built-in modifier 'mi'"),
    (TOY_ATTACK.replace("toy_scale", "decay"), "setting 'decay' is already a setting of the core or another"),
    (TOY_ATTACK.replace('paper="A toy confidence-weighted attack, Nobody et al., arXiv:0000.00000",', ""),
     "'toyattack' gives no paper"),
    (TOY_ATTACK.replace("class ToySettings(IterativeSettings)", "class ToySettings(Flat)"),
     "settings_cls must be a frozen dataclass subclassing IterativeSettings"),
    (TOY_ATTACK.replace("@dataclass(frozen=True)\nclass ToySettings", "@dataclass\nclass ToySettings"),
     "failed to import (toy_attack.py:13: TypeError: cannot inherit non-frozen dataclass from a frozen one)"),
    (TOY_ATTACK.replace('"grad",', '"gradient",'), "kind 'gradient' must be one of grad, pixel"),
    (TOY_ATTACK.replace('"toyattack"', '"Toy-Attack"'), "name 'Toy-Attack' must be lowercase"),
    (TOY_ATTACK.replace("METHODS = (", "OTHER = ("), "declares no METHODS tuple"),
    (TOY_ATTACK.replace("import functools", "import functools\nundefined_name"),
     "failed to import (toy_attack.py:6: NameError: name 'undefined_name' is not defined)"),
    (TOY_ATTACK.replace("def toy_loss(", "def toy_loss(("), "failed to import (toy_attack.py:32: SyntaxError: invalid syntax"),
])
def test_a_broken_plugin_is_refused_in_one_line_naming_it_and_registers_nothing(tmp_path, text, message):
    path = write_attack_file(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_attack_plugins([str(path)], entry_points=False)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(path) in str(err.value)
    assert "toyattack" not in ATTACKS and "toyscale" not in MODIFIERS


def test_missing_plugins_are_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match=r"plugin '.*nothing.py': no such file"):
        load_attack_plugins([str(tmp_path / "nothing.py")], entry_points=False)
    with pytest.raises(ConfigError, match="plugin 'no_such_pkg.attacks': no module named 'no_such_pkg'"):
        load_attack_plugins(["no_such_pkg.attacks"], entry_points=False)
    with pytest.raises(ConfigError, match="attack.plugins must be a list"):
        load_attack_plugins("toy.py", entry_points=False)


def test_a_changed_source_is_named_by_the_origin_check(tmp_path):
    path = write_attack_file(tmp_path)
    recorded = origin(str(path), import_spec(str(path)))
    check_origin(recorded, import_spec(str(path)), "attack plugin")
    path.write_text(path.read_text().replace("default 1", "default 2"))  # one character
    with pytest.raises(ConfigError, match=r"attack plugin '.*toy_attack.py': toy_attack.py differs from the "
                                          r"recorded source \(sha256 [0-9a-f]{12} here, [0-9a-f]{12} recorded\)"):
        check_origin(recorded, import_spec(str(path)), "attack plugin")
    torch.manual_seed(0)  # the module is imported once per process: the check reads the file itself
