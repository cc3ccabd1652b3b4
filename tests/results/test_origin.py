"""The ``origin`` of users' code (a plugin attack, a factory-built model): round trips, refusals, and
files without users' code staying byte-identical."""

from __future__ import annotations

import dataclasses
import json

import pytest

from benchmark.errors import ResultError
from benchmark.models.zoo import REPO_ROOT
from benchmark.plugins import import_spec, origin
from benchmark.results import AttackInfo, ModelInfo, Origin, read_result, result_from_json, result_to_json, write_result
from benchmark.results import codec
from benchmark.results.entry import entries_from_result, read_entry, write_entry
from benchmark.results.ranking import build_tables
from benchmark.results.render import leaderboard_markdown, row_cells
from tests.results.results_factory import settings_for

DIGEST = "ab" * 32
PLUGIN = {"import": "my_pkg.attacks", "distribution": "my-pkg", "version": "0.1.0",
          "sha256": {"my_pkg/attacks.py": DIGEST, "my_pkg/__init__.py": "cd" * 32}}
FACTORY = {"import": "models/build.py", "distribution": None, "version": None, "sha256": {"build.py": "ef" * 32}}


def _with_origins(result):
    """The run with a plugin for its second attack and a factory for target t1."""
    attacks = (result.attacks[0], dataclasses.replace(result.attacks[1], origin=Origin.from_dict(PLUGIN)))
    models = tuple(dataclasses.replace(m, origin=Origin.from_dict(FACTORY)) if m.name == "t1" else m
                   for m in result.models)
    return dataclasses.replace(result, attacks=attacks, models=models)


def _keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_origin_round_trips_through_the_codec_with_the_json_key_import():
    o = Origin.from_dict(PLUGIN)
    assert o.import_ == "my_pkg.attacks" and o.label == "my_pkg.attacks 0.1.0"
    assert list(o.sha256) == sorted(PLUGIN["sha256"])  # an own, ordered copy
    raw = codec.encode(o)
    assert list(raw) == ["import", "distribution", "version", "sha256"] and raw == o.to_dict() == PLUGIN
    assert codec.decode(Origin, json.loads(json.dumps(raw)), "x.json") == o
    assert Origin.from_dict(FACTORY).label == "models/build.py"


def test_attack_and_model_info_carry_an_origin_through_json():
    plain = AttackInfo.from_settings("myattack", settings_for("pgd"))
    attack = AttackInfo.from_settings("myattack", settings_for("pgd"), origin=PLUGIN)  # a plain mapping is read
    assert attack.origin == Origin.from_dict(PLUGIN)
    assert (attack.settings_hash, attack.track) == (plain.settings_hash, plain.track)  # settings only
    assert codec.decode(AttackInfo, codec.encode(attack), "x.json") == attack
    assert codec.encode(attack)["origin"]["import"] == "my_pkg.attacks" and "origin" not in codec.encode(plain)
    model = ModelInfo("mine", ("target",), "configs/models/mine.py", None, "whole", origin=Origin.from_dict(FACTORY))
    assert codec.decode(ModelInfo, codec.encode(model), "x.json") == model
    assert "origin" not in codec.encode(dataclasses.replace(model, origin=None))


def test_run_result_round_trip_with_origins(tmp_path, make_result):
    result = _with_origins(make_result())
    raw = result_to_json(result)
    assert raw["attacks"][1]["origin"] == PLUGIN | {"sha256": dict(sorted(PLUGIN["sha256"].items()))}
    assert "origin" not in raw["attacks"][0] and [("origin" in m) for m in raw["models"]] == [False, True, False]
    assert result_from_json(json.loads(json.dumps(raw))) == result
    write_result(tmp_path / "results.json", result)
    assert read_result(tmp_path / "results.json") == result


def test_the_producers_record_is_accepted(tmp_path):
    file = tmp_path / "my_attack.py"
    file.write_text("X = 1\n")
    record = origin(str(file), import_spec(str(file)))
    o = Origin.from_dict(record)
    assert o.to_dict() == record and o.distribution is None and list(o.sha256) == ["my_attack.py"]


@pytest.mark.parametrize("change, expected", [
    ({"sha256": {"my_pkg/attacks.py": "AB" * 32}}, "sha256['my_pkg/attacks.py'] must be 64 lowercase hex"),
    ({"sha256": {"my_pkg/attacks.py": "ab" * 31}}, "sha256['my_pkg/attacks.py'] must be 64 lowercase hex"),
    ({"sha256": {}}, "origin 'my_pkg.attacks': sha256 must map at least one source file"),
    ({"sha256": {"": DIGEST}}, "sha256 names an empty or non-string file"),
    ({"import": ""}, "origin.import must be a non-empty string"),
    ({"import": None}, "origin.import must be a non-empty string"),
    ({"version": 1}, "origin 'my_pkg.attacks': version must be a string or null"),
])
def test_a_bad_origin_is_refused_in_one_line_naming_the_field(change, expected):
    with pytest.raises(ResultError, match=expected.replace("[", r"\[").replace("]", r"\]")) as info:
        Origin.from_dict(PLUGIN | change)
    assert "\n" not in str(info.value)


def test_a_missing_or_unknown_key_is_named():
    with pytest.raises(ResultError, match="origin: missing key 'import'"):
        Origin.from_dict({k: v for k, v in PLUGIN.items() if k != "import"})
    with pytest.raises(ResultError, match="origin: unknown key 'url'"):
        Origin.from_dict(PLUGIN | {"url": "x"})
    with pytest.raises(ResultError, match="origin must be a mapping"):
        AttackInfo.from_settings("myattack", settings_for("pgd"), origin="my_pkg.attacks")


def test_a_bad_origin_in_a_file_is_refused_with_its_key_path(make_result):
    raw = result_to_json(_with_origins(make_result()))
    bad = json.loads(json.dumps(raw))
    bad["attacks"][1]["origin"]["sha256"]["my_pkg/attacks.py"] = "xyz"
    with pytest.raises(ResultError, match=r"results.json: attacks\[1\].origin: .*sha256\['my_pkg/attacks.py'\]"):
        result_from_json(bad, "results.json")
    bad = json.loads(json.dumps(raw))
    del bad["models"][1]["origin"]["import"]
    with pytest.raises(ResultError, match=r"results.json: missing key 'models\[1\].origin.import'"):
        result_from_json(bad, "results.json")
    bad = json.loads(json.dumps(raw))
    bad["models"][1]["origin"]["sha256"] = {}
    with pytest.raises(ResultError, match=r"models\[1\].origin: origin 'models/build.py': sha256 must map"):
        result_from_json(bad, "results.json")


def test_results_and_entries_without_users_code_have_no_origin_key(make_result):
    raw = result_to_json(make_result())
    assert "origin" not in _keys(raw) and "import" not in _keys(raw)
    entries = entries_from_result(make_result())
    assert entries and not any(e.uses_user_code for e in entries)
    assert {e.origin_text for e in entries} == {"built-in"}


def test_committed_entries_are_written_back_byte_identically(tmp_path):
    files = sorted((REPO_ROOT / "leaderboard" / "entries").rglob("*.json"))
    assert files
    for file in files:
        write_entry(tmp_path / "entry.json", read_entry(file))
        assert (tmp_path / "entry.json").read_bytes() == file.read_bytes(), file.name


def test_an_entry_keeps_its_origins_through_json(tmp_path, make_result):
    entries = {e.attack.name: e for e in entries_from_result(_with_origins(make_result()))}
    plugin = entries["transegpgd"]
    assert plugin.uses_user_code and plugin.origin_text == "my_pkg.attacks 0.1.0, models/build.py"
    assert entries["pgd"].uses_user_code and entries["pgd"].origin_text == "models/build.py"  # the factory's model
    for entry in entries.values():
        write_entry(tmp_path / "entry.json", entry)
        again = read_entry(tmp_path / "entry.json")
        assert again == entry and again.origins == entry.origins and again.content_hash == entry.content_hash


def test_the_leaderboard_shows_an_origin_column_only_where_users_code_was_used(make_result):
    result = make_result()
    plugin = dataclasses.replace(result, attacks=(result.attacks[0], dataclasses.replace(
        result.attacks[1], origin=Origin.from_dict(PLUGIN))))
    (table,) = build_tables(entries_from_result(plugin))
    page = leaderboard_markdown([table])
    assert "| origin |" in page
    cells = {row.attack: row_cells(row, table) for row in table.rows}
    assert "my_pkg.attacks 0.1.0" in cells["transegpgd"] and "built-in" in cells["pgd"]
    (plain,) = build_tables(entries_from_result(result))
    assert "origin" not in leaderboard_markdown([plain]) and all(r.origin == "built-in" for r in plain.rows)


def test_submit_refuses_users_code_without_its_origin(tmp_path):
    """A plugin attack (a part the registry does not know) or a factory-built model (a ``module:function``
    config) must record its origin: nobody could re-run it otherwise."""
    from benchmark.results import submit
    from tests.results.results_factory import build_result

    result = build_result()
    first = result.attacks[0]
    plugin = AttackInfo.from_settings(first.name, {**first.settings, "attack": "myattack+mi"})
    with_plugin = dataclasses.replace(result, attacks=(plugin, *result.attacks[1:]))
    write_result(tmp_path / "a.json", with_plugin)
    with pytest.raises(ResultError, match=r"attack '.*' uses plugin code \(myattack\) but records no origin"):
        submit(tmp_path / "a.json", tmp_path / "lb")
    factory = tuple(dataclasses.replace(m, config="my_pkg.models:build") if m.name == "t1" else m
                    for m in result.models)
    write_result(tmp_path / "m.json", dataclasses.replace(result, models=factory))
    with pytest.raises(ResultError, match="model 't1' is built by the factory my_pkg.models:build but records no origin"):
        submit(tmp_path / "m.json", tmp_path / "lb")
