"""Blur: Gaussian smoothing of every model input, after the geometry transform (TASS's "TI").

Paper: "Transferable Attack for Semantic Segmentation", He, Zhang, Yang, He, Barnes, Dai,
arXiv:2307.16572. The authors' code (github.com/anucvers/TASS, ``attacks.py``, ``es_NI_DI_TI``) calls
``model(TI(DI(x)))``: TI's depthwise Gaussian convolution (Dong et al., arXiv:1904.02884; ``ti`` here,
which smooths the *gradient*) applied to the model's *input*, after DI, with a 5 x 5 kernel, nsig 3:

    z = linspace(-nsig, nsig, k),  W = outer(pdf(z), pdf(z)) / sum
    input <- depthwise conv2d(input, W, groups=C, padding=k // 2)        (zero padding)

The gradient reaches the query point through the convolution (W is symmetric, so the input gradient
is the gradient at the blurred input smoothed by W), but unlike ``ti`` the model also sees a blurred
image, and the smoothing comes before the momentum's normalisation of the raw gradient. The zero
padding is in our [0, 1] pixel space; the authors' models take mean-subtracted input, so their border
pads with the mean colour (a 2-pixel band at k = 5).

The core has no slot after the geometry transform, so the registry composes this part with the
geometry transform (or the identity) as :class:`Blurred`: every sub-batch of every view is blurred,
and ``back`` and the coverage stay the geometry transform's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from benchmark.attacks.entries import ModifierEntry, part
from benchmark.attacks.modifiers.ti import gaussian_kernel
from benchmark.attacks.parts import GeometryTransform, View, identity_view
from benchmark.attacks.rng import PerImageRNG
from benchmark.attacks.settings import Flat, odd_kernel, positive


@dataclass(frozen=True)
class BlurSettings(Flat):
    """Gaussian smoothing of every model input, after the geometry transform (TASS's input "TI").

    Paper: "Transferable Attack for Semantic Segmentation", He et al., arXiv:2307.16572; the kernel of
    TI (arXiv:1904.02884).

    Args:
        blur_kernel: odd kernel side k >= 1, pixels (default 5).
        blur_nsig: the kernel spans [-nsig, nsig] standard deviations, > 0 (default 3.0).
    """

    blur_kernel: int = 5
    blur_nsig: float = 3.0

    def __post_init__(self) -> None:
        odd_kernel("blur_kernel", self.blur_kernel)
        object.__setattr__(self, "blur_nsig", positive("blur_nsig", self.blur_nsig))


class InputBlur:
    """Gaussian smoothing of a model input.

    Args:
        settings: BlurSettings (blur_kernel in pixels, odd; blur_nsig in standard deviations).
        base: the base attack's settings (unused).

    Shapes:
        x (n, C, H, W) -> (n, C, H, W); the kernel is built once per channel count, device and dtype.
    """

    def __init__(self, settings: BlurSettings, base=None) -> None:
        self.kernel_size, self.nsig = settings.blur_kernel, settings.blur_nsig
        self._kernels: dict[tuple, Tensor] = {}  # (channels, device, dtype) -> kernel: built once, not per call

    def __call__(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        key = (c, x.device, x.dtype)
        if key not in self._kernels:
            self._kernels[key] = gaussian_kernel(self.kernel_size, self.nsig, c, device=x.device, dtype=x.dtype)
        return F.conv2d(x, self._kernels[key], padding=self.kernel_size // 2, groups=c)


class Blurred:
    """A geometry transform (or the identity) whose model inputs are blurred.

    Args:
        geometry: DI, TDI, DS, BSR or None.
        blur: the smoothing applied to every sub-batch of every view.
    """

    def __init__(self, geometry: GeometryTransform | None, blur: InputBlur) -> None:
        self.geometry, self.blur = geometry, blur

    def __call__(self, x: Tensor, rng: PerImageRNG) -> list[View]:
        views = self.geometry(x, rng) if self.geometry is not None else [identity_view(x)]
        return [View([self.blur(inp) for inp in view.inputs], view.back, view.coverage) for view in views]


METHODS = (ModifierEntry(
    "blur", BlurSettings, part(InputBlur), "filter",
    paper="Transferable Attack for Semantic Segmentation, He et al., arXiv:2307.16572 (its input smoothing)",
),)
