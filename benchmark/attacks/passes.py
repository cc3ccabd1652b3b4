"""The registry's pass counts: source passes per image of a whole attack run, counted, not declared.

``count_passes(name, **settings)`` builds the attack with :func:`build_attack` and runs it once on a
stand-in source (a 1x1 convolution, 3 channels -> 4 classes, with ``features()`` and
``default_feature_layer`` for feature attacks) that counts the images and pixels it forwards. So every
registered attack, every composition and any attack registered later is counted by the same code that
runs it, with its own settings (steps, copies, ``return_iterate``, radius stages, SEA members, ...).

- ``grad``: forward passes with autograd on, each followed by an input backward (the attack steps);
- ``eval``: forward passes without autograd (clean logits, best-iterate checks, SEA's choice);
- ``canvas``: mean input area of the grad passes relative to the image (DI pads onto a canvas up to
  ``resize_rate``^2 of the pixels, DS rescales by s with E[s^2] = 13/12 at its defaults; 1.0 otherwise).
  Eval passes run on the untransformed image.

The counts are exact (they do not depend on the random draws). The canvas of a transform that draws
its size is a sample mean: when the grad-pass areas of the one-image run vary, further runs on
enough images for about 500 draws give their mean (deterministic generators, so the value is the
same on every call; its standard error is 0.5 % for DI and 2.5 % for DS at their defaults). Feature
attacks (FSPGD) stop their grad pass at the feature layer: ``partial`` says so, and the pass is
counted as a whole one (an upper bound of its cost).

Results are cached per (name, settings) within the process: counting the embedded default's attacks
takes milliseconds; an attack with hundreds of passes per step (``segpgd+vt+ssa`` at its defaults) takes
seconds.

Example:
    >>> count_passes("transegpgd", steps=20)
    Passes(grad=20, eval=1, canvas=1.0, partial=False)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from benchmark.attacks.attack import build_attack

PROBE_SIZE = 20  # DI's canvas floor(r * 20) is exact for rates in steps of 0.05 (1.1 -> 22)
CANVAS_DRAWS = 512  # grad-pass draws behind a varying canvas's mean (standard error: DI 0.5 %, DS 2.5 %)
CANVAS_BATCH = 32
CLASSES = 4


@dataclass(frozen=True)
class Passes:
    """Source passes per image of one whole attack run on one source model.

    Args:
        grad: forward passes with autograd followed by an input backward.
        eval: forward passes without autograd.
        canvas: mean input area of the grad passes, relative to the image's (unitless).
        partial: the grad passes stop at a feature layer (FSPGD); costed as whole passes.
    """

    grad: int
    eval: int
    canvas: float = 1.0
    partial: bool = False

    @property
    def grad_area(self) -> float:
        """Grad passes in units of whole-image passes: ``grad * canvas``."""
        return self.grad * self.canvas


class _CountingSource(nn.Module):
    """A 1x1 convolution that records, per forward, the images and their area, with and without
    autograd; ``features()`` (any layer name) counts the same way."""

    default_feature_layer = "conv"

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, CLASSES, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.linspace(-1.0, 1.0, 3 * CLASSES).view(CLASSES, 3, 1, 1))
            self.conv.bias.zero_()
        self.conv.requires_grad_(False)
        self.grad_areas: list[tuple[int, int]] = []  # (images, pixels per image) of each grad forward
        self.eval_images = 0
        self.partial = False

    def _count(self, x: Tensor) -> None:
        if torch.is_grad_enabled():
            self.grad_areas.append((x.shape[0], x.shape[-2] * x.shape[-1]))
        else:
            self.eval_images += x.shape[0]

    def forward(self, x: Tensor) -> Tensor:
        self._count(x)
        return self.conv(x)

    def features(self, x: Tensor, layers: list[str]) -> dict[str, Tensor]:
        self._count(x)
        self.partial = self.partial or torch.is_grad_enabled()
        return {layer: self.conv(x) for layer in layers}


def _run(name: str, settings: dict[str, Any], images: int, first: int = 0,
         source: _CountingSource | None = None) -> _CountingSource:
    """One run of the attack on ``images`` images (generators seeded ``first``, ``first + 1``, ...)."""
    attack = build_attack(name, **settings)
    source = source or _CountingSource()
    generators = [torch.Generator().manual_seed(first + i) for i in range(images)]
    x = torch.rand(images, 3, PROBE_SIZE, PROBE_SIZE, generator=torch.Generator().manual_seed(first))
    labels = torch.arange(PROBE_SIZE * PROBE_SIZE).remainder(CLASSES).view(1, PROBE_SIZE, PROBE_SIZE)
    labels = labels.expand(images, -1, -1).contiguous()
    labels[:, 0, 0] = 255  # one ignored pixel, as real labels have
    with torch.enable_grad():
        attack(source, x, labels, generator=generators)
    return source


def _mean_canvas(source: _CountingSource) -> float:
    images = sum(n for n, _ in source.grad_areas)
    return sum(n * area for n, area in source.grad_areas) / (images * PROBE_SIZE * PROBE_SIZE)


@functools.lru_cache(maxsize=None)
def _count(name: str, settings: tuple[tuple[str, Any], ...]) -> Passes:
    # One torch thread while counting: the stand-in's operations are tiny, and threads that wait for each
    # other on a busy CPU make them 10-100x slower. The caller's thread count is restored.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _counted(name, dict(settings))
    finally:
        torch.set_num_threads(threads)


def _counted(name: str, settings: dict[str, Any]) -> Passes:
    probe = _run(name, settings, images=1)
    grad = sum(n for n, _ in probe.grad_areas)
    canvas = _mean_canvas(probe) if grad else 1.0
    if len({area for _, area in probe.grad_areas}) > 1:  # the canvas is drawn: average over many draws
        # runs of at most CANVAS_BATCH images: a transform that slices images one by one (DI) has a
        # backward pass quadratic in the batch
        images = min(CANVAS_BATCH, math.ceil(CANVAS_DRAWS / grad))
        many = _CountingSource()
        for first in range(0, math.ceil(CANVAS_DRAWS / grad), images):
            _run(name, settings, images, first + 1, many)
        canvas = _mean_canvas(many)
    return Passes(grad=grad, eval=probe.eval_images, canvas=round(canvas, 4), partial=probe.partial)


def count_passes(name: str, /, **settings: Any) -> Passes:
    """Source passes per image of ``build_attack(name, **settings)`` over its whole run (see the module
    docstring); cached per (name, settings) within the process. Bad names or settings raise the same
    ConfigError as ``build_attack``."""
    return _count(name, tuple(sorted(settings.items())))
