"""Per-image random draws from the attack's explicit generator(s); the global RNG is never touched.

``generator`` may be None (a fresh generator seeded from the OS, so the call is not reproducible),
one ``torch.Generator`` (images draw from it in batch order) or a sequence of N generators (image n
draws only from generator n). Because every draw is made per image, an image's draws do not depend on
the other images of its batch when per-image generators are passed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class PerImageRNG:
    """Per-image uniform draws for a batch of N images.

    Args:
        generator: None, one ``torch.Generator`` or a sequence of N of them.
        n: batch size N.
        device: device of the tensors the draws are used on.
        dtype: floating dtype of ``uniform`` draws.
    """

    def __init__(
        self,
        generator: torch.Generator | Sequence[torch.Generator] | None,
        n: int,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if generator is None:
            fresh = torch.Generator()
            fresh.seed()  # OS entropy; the global RNG is left alone
            generators = [fresh] * n
        elif isinstance(generator, torch.Generator):
            generators = [generator] * n
        else:
            generators = list(generator)
            if len(generators) != n or not all(isinstance(g, torch.Generator) for g in generators):
                raise ValueError(
                    f"generator: expected one torch.Generator or a sequence of {n} (one per image), "
                    f"got {len(generators)} items"
                )
        self.generators = generators
        self.n = n
        self.device = device
        self.dtype = dtype

    def _draw(self, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        # One draw per image, in batch order, each from that image's generator.
        draws = [torch.rand(shape, generator=g, device=g.device, dtype=dtype) for g in self.generators]
        return torch.stack(draws)

    def uniform(self, shape: tuple[int, ...] = ()) -> Tensor:
        """U[0, 1) draws of shape (N, *shape) on ``device`` with ``dtype``."""
        return self._draw(shape, torch.float32).to(device=self.device, dtype=self.dtype)

    def normal(self, shape: tuple[int, ...] = ()) -> Tensor:
        """Standard normal draws of shape (N, *shape) on ``device`` with ``dtype``, per image."""
        draws = [torch.randn(shape, generator=g, device=g.device) for g in self.generators]
        return torch.stack(draws).to(device=self.device, dtype=self.dtype)

    def uniform_host(self, shape: tuple[int, ...] = ()) -> list:
        """U[0, 1) float64 draws of shape (N, *shape) as nested Python lists.

        For decisions that need Python numbers (DI's sizes). With CPU generators this never
        synchronises a GPU.
        """
        return self._draw(shape, torch.float64).tolist()
