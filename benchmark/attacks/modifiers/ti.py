"""TI: translation-invariant smoothing of the input gradient with a depthwise Gaussian kernel.

Paper: "Evading Defenses to Transferable Adversarial Examples by Translation-Invariant Attacks",
Dong et al., CVPR 2019, arXiv:1904.02884.

    z = linspace(-nsig, nsig, k), g1 = N(0, 1) pdf(z), W = outer(g1, g1) / sum
    grad <- depthwise conv2d(grad, W, groups=C, padding=k // 2)    (zero padding)

The kernel is built per call for the gradient's own channel count, device and dtype. W is separable
(outer(g1, g1) / sum = outer(g1 / sum g1, g1 / sum g1)), so it is applied as a vertical and a
horizontal 1-D depthwise convolution, both zero-padded: the same result as the k x k convolution at
2k instead of k^2 multiply-adds per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.attacks.entries import ModifierEntry
from benchmark.attacks.settings import Flat, odd_kernel, positive


@dataclass(frozen=True)
class TISettings(Flat):
    """Translation-invariant gradient smoothing with a depthwise Gaussian kernel.

    Paper: "Evading Defenses to Transferable Adversarial Examples by Translation-Invariant Attacks",
    Dong et al., CVPR 2019, arXiv:1904.02884.

    Args:
        kernel_size: odd kernel side k >= 1, pixels (default 15).
        nsig: the kernel spans [-nsig, nsig] standard deviations, > 0 (default 3.0).
    """

    kernel_size: int = 15
    nsig: float = 3.0

    def __post_init__(self) -> None:
        odd_kernel("kernel_size", self.kernel_size)
        object.__setattr__(self, "nsig", positive("nsig", self.nsig))


def gaussian_1d(kernel_size: int, nsig: float) -> Tensor:
    """(k,) float64 normalised Gaussian taps at linspace(-nsig, nsig, k)."""
    z = torch.linspace(-nsig, nsig, kernel_size, dtype=torch.float64)
    g1 = torch.exp(-0.5 * z * z)  # the pdf's constant cancels in the normalisation
    return g1 / g1.sum()


def gaussian_kernel(kernel_size: int, nsig: float, channels: int, device=None, dtype=None) -> Tensor:
    """(C, 1, k, k) depthwise kernel outer(g1, g1) / sum, each slice symmetric and summing to 1."""
    g1 = gaussian_1d(kernel_size, nsig)
    w = torch.outer(g1, g1).to(device=device, dtype=dtype or torch.float32)
    return w.expand(channels, 1, kernel_size, kernel_size).contiguous()


class TranslationInvariant:
    """TI gradient transform.

    Args:
        settings: TISettings (kernel_size in pixels, odd; nsig in standard deviations).

    Shapes:
        grad (N, C, H, W) -> (N, C, H, W); state: the (C, 1, k, 1) and (C, 1, 1, k) 1-D kernels.
    """

    order = 0  # before momentum

    def __init__(self, settings: TISettings) -> None:
        self.kernel_size = settings.kernel_size
        self.nsig = settings.nsig

    def init(self, x: Tensor) -> tuple[Tensor, Tensor]:
        k, c = self.kernel_size, x.shape[1]
        g1 = gaussian_1d(k, self.nsig).to(device=x.device, dtype=x.dtype)
        return g1.view(1, 1, k, 1).expand(c, 1, k, 1).contiguous(), g1.view(1, 1, 1, k).expand(c, 1, 1, k).contiguous()

    def __call__(self, grad: Tensor, state: tuple[Tensor, Tensor], probe=None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        vertical, horizontal = state
        pad, c = self.kernel_size // 2, grad.shape[1]
        smoothed = F.conv2d(grad, vertical.to(grad.dtype), padding=(pad, 0), groups=c)
        smoothed = F.conv2d(smoothed, horizontal.to(grad.dtype), padding=(0, pad), groups=c)
        return smoothed, state

    def lookahead(self, state: Tensor) -> None:
        return None


METHODS = (ModifierEntry(
    "ti", TISettings, lambda m, b: TranslationInvariant(m), "grad", mixes_pixels=True,
    paper="Evading Defenses to Transferable Adversarial Examples by Translation-Invariant Attacks, Dong et al., "
          "CVPR 2019, arXiv:1904.02884",
),)
