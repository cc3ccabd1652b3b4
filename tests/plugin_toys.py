"""Toy attack plugins, written the way a user writes one: a file in exactly the form of a built-in method
file (``benchmark/attacks/bases/*.py``), and a package that offers it through an entry point."""

from __future__ import annotations

import textwrap
from pathlib import Path

#: A base attack and a modifier in one user file: CE weighted by the label's probability (a confidence
#: weighting), and a gradient transform that scales the gradient (harmless under the sign step).
TOY_ATTACK = textwrap.dedent('''
    """Toy attack: PGD on CE weighted by p_y ** toy_power (toy paper, arXiv:0000.00000)."""

    from __future__ import annotations

    import functools
    from dataclasses import dataclass

    from benchmark.attacks.entries import AttackEntry, ModifierEntry
    from benchmark.attacks.losses.ce import pixel_ce
    from benchmark.attacks.settings import Flat, IterativeSettings, fail, real


    @dataclass(frozen=True)
    class ToySettings(IterativeSettings):
        """Args: toy_power: exponent >= 0 of the label probability weighting, unitless (default 1)."""

        toy_power: float = 1.0

        def __post_init__(self) -> None:
            super().__post_init__()
            if real("toy_power", self.toy_power) < 0:
                fail("toy_power", self.toy_power, "must be >= 0")


    @dataclass(frozen=True)
    class ToyScaleSettings(Flat):
        """Args: toy_scale: gradient factor > 0 (default 2)."""

        toy_scale: float = 2.0


    def toy_loss(logits, labels, ctx, power=1.0):
        ce = pixel_ce(logits, labels, ctx.valid)
        return (-ce).exp().detach() ** power * ce


    class ToyScale:
        order = 0

        def __init__(self, settings, base=None):
            self.scale = settings.toy_scale

        def init(self, x):
            return None

        def __call__(self, grad, state, probe=None):
            return grad * self.scale, state

        def lookahead(self, state):
            return None


    METHODS = (
        AttackEntry("toyattack", ToySettings, lambda s: functools.partial(toy_loss, power=s.toy_power),
                    paper="A toy confidence-weighted attack, Nobody et al., arXiv:0000.00000",
                    defaults={"alpha": 2 / 255, "steps": 10, "random_start": True}),
        ModifierEntry("toyscale", ToyScaleSettings, lambda m, b: ToyScale(m), "grad",
                      paper="A toy gradient scaling, Nobody et al., arXiv:0000.00000"),
    )
''').lstrip()

#: Breaks the ignored-pixel invariant: a per-image loss that counts ignored pixels as class 0.
BROKEN_ATTACK = textwrap.dedent('''
    """A broken toy attack: its per-image loss gives ignored pixels a loss."""

    import torch

    from benchmark.attacks.entries import AttackEntry
    from benchmark.attacks.losses.ce import pixel_ce
    from benchmark.attacks.settings import IterativeSettings


    def leaky(logits, labels, ctx):
        everywhere = torch.ones_like(ctx.valid)
        return pixel_ce(logits, torch.where(ctx.valid, labels, 0), everywhere).sum(dim=(1, 2))


    METHODS = (AttackEntry("leakyattack", IterativeSettings, lambda s: None, make_image_loss=lambda s: leaky,
                           paper="A broken toy, arXiv:0000.00001"),)
''').lstrip()


def write_attack_file(folder: Path, text: str = TOY_ATTACK, name: str = "toy_attack.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def write_entry_point_package(folder: Path) -> Path:
    """``toy_pkg`` (distribution ``toy-bench-plugin`` 0.3.1) offering ``toy_pkg.attacks`` under the
    ``transegpgd_bench.attacks`` group, installed by putting ``folder`` on the path (PYTHONPATH)."""
    package = folder / "toy_pkg"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('"""Toy plugin package."""\n')
    (package / "attacks.py").write_text(TOY_ATTACK.replace('"toyattack"', '"toypkgattack"')
                                        .replace('"toyscale"', '"pkgscale"').replace("toy_scale", "pkg_scale")
                                        .replace("toy_power", "pkg_power"))
    info = folder / "toy_bench_plugin-0.3.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-bench-plugin\nVersion: 0.3.1\n")
    (info / "top_level.txt").write_text("toy_pkg\n")
    (info / "RECORD").write_text("toy_pkg/__init__.py,,\ntoy_pkg/attacks.py,,\n")
    (info / "entry_points.txt").write_text("[transegpgd_bench.attacks]\ntoy = toy_pkg.attacks\n")
    return folder
