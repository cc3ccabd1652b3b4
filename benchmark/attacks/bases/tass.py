"""TASS as its authors' code (``es_NI_DI_TI``) runs it: ``bim`` + ``ni`` + ``tdi`` + ``blur``.

Paper: "Transferable Attack for Semantic Segmentation", He et al., arXiv:2307.16572. NI (decay 1) on
CE with the ground truth, DI shrinking by up to 30 px with p 0.7 (``modifiers/tdi.py``), a 5x5
Gaussian blur of the model input after DI (``modifiers/blur.py``), 10 steps of eps / 10 from the clean
image (docs/explanation/attack-core.md, "TASS").
"""

from __future__ import annotations

from benchmark.attacks.bases.fgsm_presets import PRESET_DEFAULTS
from benchmark.attacks.entries import AttackEntry
from benchmark.attacks.losses.ce import ce_loss
from benchmark.attacks.settings import IterativeSettings

METHODS = (AttackEntry(
    "tass", IterativeSettings, lambda s: ce_loss, defaults=PRESET_DEFAULTS, accepts_modifiers=False,
    preset_modifiers=("ni", "tdi", "blur"),
    paper="Transferable Attack for Semantic Segmentation, He et al., arXiv:2307.16572",
),)
