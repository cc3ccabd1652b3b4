"""The documentation site (issue 25): it builds with warnings as errors, fast; its generated reference pages
hold what the code holds; every relative link and image in it resolves, anchors included; nothing it shows
is fetched from the network."""

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tests.docs.conftest import page_sources

EXTERNAL = ("http://", "https://", "//")


def test_the_site_builds_with_warnings_as_errors_in_well_under_a_minute(site, built):
    assert site.seconds < 60, f"the docs build took {site.seconds:.0f} s"
    for page in page_sources():
        assert (built / page.with_suffix(".html")).is_file(), page


def test_the_reference_is_generated_from_the_code(built):
    from benchmark.attacks import ATTACKS, MODIFIERS
    from benchmark.cli import COMMANDS
    from benchmark.results import schema

    cli = (built / "reference" / "cli.html").read_text()
    for name in COMMANDS:
        assert f"usage: benchmark {name}" in cli, name
    assert "--attack.attacks" in cli and "--trainer.devices" in cli  # benchmark run --help, from Lightning's parser
    attacks = (built / "reference" / "attacks.html").read_text()
    for name in [*ATTACKS, *MODIFIERS]:
        assert f'<span class="pre">{name}</span>' in attacks, name
    results = (built / "reference" / "results-schema.html").read_text()
    for name in schema.__all__:
        if isinstance(getattr(schema, name), type):
            assert f'id="{name.lower()}"' in results, name
    assert 'id="leaderboardentry"' in results and "per_class_iou" in results
    api = (built / "reference" / "python-api.html").read_text()
    for name in ("benchmark.attacks.build_attack", "benchmark.attacks.Attack", "benchmark.attacks.TranSegPGDSettings",
                 "benchmark.attacks.entries.AttackEntry", "benchmark.attacks.conformance.check_attack",
                 "benchmark.plugins.load_attack_plugins"):
        assert f'id="{name}"' in api, name


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[tuple[str, str, str]] = []  # (tag, attribute, value)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if attrs.get(key):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) is not None:
                self.links.append((tag, key, attrs[key]))
        if tag == "link" and attrs.get("href") and "stylesheet" in (attrs.get("rel") or ""):
            self.links.append(("stylesheet", "href", attrs["href"]))


def _parse(built: Path) -> dict[Path, _Links]:
    parsed = {}
    for path in sorted(built.rglob("*.html")):
        parser = _Links()
        parser.feed(path.read_text())
        parsed[path.resolve()] = parser
    return parsed


def test_every_relative_link_and_image_resolves_and_every_anchor_exists(built):
    parsed = _parse(built)
    problems = []
    for path, page in parsed.items():
        for tag, attribute, value in page.links:
            where = f"{path.relative_to(built.resolve())}: <{tag} {attribute}={value!r}>"
            if value.startswith(EXTERNAL):
                if tag in ("img", "script", "stylesheet", "iframe"):
                    problems.append(f"{where} is fetched from the network")
                continue
            if value.startswith(("mailto:", "data:", "javascript:")):
                continue
            parts = urlsplit(value)
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                problems.append(f"{where}: no file {target}")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in parsed[target].ids:
                problems.append(f"{where}: no anchor #{parts.fragment} in {target.name}")
    assert problems == [], "\n".join(problems[:40])
    assert len(parsed) >= len(page_sources())
