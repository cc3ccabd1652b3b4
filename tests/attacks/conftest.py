"""Tiny pure-torch models and shared lists for the attack tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmark.attacks import ATTACKS, build_attack
from benchmark.attacks.conformance import PixelLinear, TinySegNet, make_batch  # noqa: F401 -- the check's models
from benchmark.attacks.conformance import generators as gens  # noqa: F401
from benchmark.attacks.registry import LISTED_COMBINATIONS, copy_settings


@pytest.fixture(autouse=True)
def _cpu_numerics():
    """One CPU thread and native convolutions for every test here, restored afterwards.

    Tiny tensors gain nothing from threads, and the CPUs are shared. oneDNN convolutions pick
    batch-size-dependent kernels, so the conv of a batch differs from the conv of each image in the
    last bits; near-zero gradient entries (e.g. TI-smoothed ones) can then flip sign, which the
    batch-independence invariant would blame on the attack. The native kernels are batch-invariant.
    """
    threads, mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = mkldnn
        torch.set_num_threads(threads)


COMBINATIONS = list(LISTED_COMBINATIONS)
ALL_NAMES = list(ATTACKS) + COMBINATIONS


def build_small(name: str, **settings):
    """``build_attack`` with at most 3 copies / samples per averaging modifier (SI, Admix, SSA, BSR,
    VT), for the invariants: they hold for any count, and ``segpgd+vt+ssa`` at its defaults is 420
    passes per step. Explicit settings win."""
    return build_attack(name, **{**copy_settings(name, 3), **settings})


def has_modifier(name: str, mods: tuple[str, ...]) -> bool:
    """Whether ``name`` has one of ``mods``, a preset's own modifiers included (``tass``: ni, tdi, blur)."""
    base, *parts = name.split("+")
    return bool((set(parts) | set(ATTACKS[base].preset_modifiers)) & set(mods))


class Identity(nn.Module):
    def forward(self, x):
        return x


MODEL_KINDS = ["single", "ens_logits", "ens_loss"]


def make_source(kind: str):
    """(model or ensemble, extra settings) for a model kind."""
    if kind == "single":
        return TinySegNet(seed=1).eval(), {}
    models = [TinySegNet(seed=1).eval(), TinySegNet(seed=2).eval()]
    return models, {"ensemble": "logits" if kind == "ens_logits" else "loss"}


@pytest.fixture
def batch():
    return make_batch()
