"""Issue 25: the README became a front door of at most 200 lines, and every section of the README it
replaced moved to a page of the site. The old README's headings (frozen from ``git show HEAD:README.md``
before the move) each have a home page that holds the heading, or the heading it was renamed to; so do
its bold paragraph leads. The README links into the site, and keeps the honest reading of the default."""

import re

import pytest

from tests.docs.conftest import DOCS, ROOT

#: (heading of the old README, page of docs/ it moved to, heading there when renamed)
MOVED_HEADINGS = [
    ("TranSegPGD Bench", "index.md", None),
    ("Set-up: two commands", "get-started.md", None),
    ("Install notes", "how-to/install.md", None),
    ("GPU cluster", "how-to/cluster.md", None),
    ("GPU check", "how-to/gpu-check.md", None),
    ("Real size", "explanation/mmseg-protocol.md", None),
    ("Models", "how-to/checkpoint.md", None),
    ("Attacks", "explanation/attack-core.md", None),
    ("Base attacks", "explanation/attack-core.md", None),
    ("Modifiers", "explanation/attack-core.md", None),
    ("TASS", "explanation/attack-core.md", None),
    ("Checked against the authors' code", "explanation/reference-checks.md", None),
    ("Speed", "explanation/performance.md", "Speed of each attack"),
    ("TranSegPGD as implemented here", "explanation/transegpgd.md", None),
    ("The attack with default options", "explanation/transegpgd.md", None),
    ("Options (ambiguity register A1–A17)", "explanation/transegpgd.md", None),
    ("Identities that hold, and are tested", "explanation/transegpgd.md", None),
    ("Running experiments", "how-to/run-experiments.md", None),
    ("Speed of the whole job", "explanation/performance.md", None),
    ("The embedded default", "get-started.md", None),
    ("The other attacks on the embedded default", "explanation/findings.md", None),
    ("Does TranSegPGD transfer better? The 3 × 3 matrix with intervals", "explanation/findings.md", None),
    ("TranSegPGD option ablation", "explanation/findings.md", None),
    ("Leaderboard", "how-to/leaderboard.md", None),
    ("Layout", "reference/layout.md", None),
]

#: (bold lead of a paragraph or list item of the old README, page it moved to)
MOVED_LEADS = [
    ("Two layers of versions", "how-to/install.md"), ("pip only", "how-to/install.md"),
    ("mmcv is an extra", "how-to/install.md"), ("No compiled mmcv ops needed", "how-to/install.md"),
    ("Full mmcv with compiled ops", "how-to/cluster.md"), ("W&B online", "how-to/cluster.md"),
    ("Checkpoints", "how-to/cluster.md"), ("Several nodes", "how-to/cluster.md"),
    ("Requeues and time limits", "how-to/cluster.md"), ("Cost plan", "how-to/cluster.md"),
    ("Job arrays", "how-to/cluster.md"), ("Images of mixed sizes", "how-to/cluster.md"),
    ("The estimate, checked", "explanation/mmseg-protocol.md"),
    ("Size buckets on this CPU", "explanation/mmseg-protocol.md"),
    ("Checkpoints a user has load, and none can run code", "how-to/checkpoint.md"),
    ("TASS is not the SSAT suite's NI+DI+TI", "explanation/attack-core.md"),
    ("Memory", "explanation/performance.md"),
    ("Start", "explanation/transegpgd.md"), ("Stage 1 (t < T₁)", "explanation/transegpgd.md"),
    ("Stage 2 (t ≥ T₁, s = t − T₁)", "explanation/transegpgd.md"), ("Step size", "explanation/transegpgd.md"),
    ("Loss reduction", "explanation/transegpgd.md"),
    ("Intervals", "explanation/intervals.md"), ("Attack once, evaluate many", "how-to/saved-set.md"),
    ("Long jobs", "how-to/run-experiments.md"),
    ("Reliability: what is promised, and how it is tested", "how-to/run-experiments.md"),
    ("Preflight", "how-to/run-experiments.md"), ("What a run writes", "how-to/run-experiments.md"),
    ("W&B", "how-to/run-experiments.md"), ("Command line", "how-to/run-experiments.md"),
    ("Scaling", "explanation/performance.md"),
    ("What this shows about the paper's claim", "explanation/findings.md"),
    ("Which options matter", "explanation/findings.md"),
    ("The project description's stage-1 reading", "explanation/findings.md"),
    ("submit", "how-to/leaderboard.md"), ("build", "how-to/leaderboard.md"), ("verify", "how-to/leaderboard.md"),
]


def _headings(text: str) -> list[str]:
    """Markdown headings outside code fences."""
    out, fence = [], False
    for line in text.splitlines():
        if line.startswith(("```", "~~~")):
            fence = not fence
        elif not fence and (m := re.match(r"#{1,6} (.+)", line)):
            out.append(m.group(1).strip())
    return out


@pytest.mark.parametrize(("heading", "page", "renamed"), MOVED_HEADINGS, ids=[h for h, _, _ in MOVED_HEADINGS])
def test_every_old_readme_section_has_a_home_on_the_site(heading, page, renamed):
    path = DOCS / page
    assert path.is_file(), f"{heading!r}: its page {page} does not exist"
    assert (renamed or heading) in _headings(path.read_text()), f"{page} has no heading {renamed or heading!r}"


@pytest.mark.parametrize(("lead", "page"), MOVED_LEADS, ids=[lead for lead, _ in MOVED_LEADS])
def test_every_old_readme_paragraph_lead_has_a_home_on_the_site(lead, page):
    text = (DOCS / page).read_text()
    assert f"**{lead}" in text or lead in _headings(text), f"{page} holds no paragraph or heading {lead!r}"


def test_the_readme_is_a_short_front_door_into_the_site():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for command in ("make run", "make test", "benchmark plan", "--data.shard"):
        assert command in readme, command
    links = set(re.findall(r"\]\((docs/[^)#\s]+)", readme))
    assert {"docs/get-started.md", "docs/index.md"} <= links
    for link in links:
        assert (ROOT / link).is_file(), link
    # the honest reading stays on the front page, with its interval
    assert "does **not** transfer measurably better than SegPGD" in readme
    assert "+0.05 [−1.24, +1.35]" in readme
