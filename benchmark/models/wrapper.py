"""The benchmark's model contract, shared by every way of building a model (torch only).

:class:`SegmentationWrapper` is the base of the mmseg adapter's model and of a user factory's model:
float RGB images in [0, 1], shape (N, 3, H, W), go in; logits (N, K, H, W) at input resolution come
out. A subclass says which module layer names are relative to (:attr:`network`), how images become
that module's inputs (:meth:`_inputs`), and which call gives the logits (:meth:`_infer`) and which a
whole-image forward for features (:meth:`_encode`); features, layer tables, the memory layout and
freezing are the same for all of them.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from benchmark.attacks.features import capture
from benchmark.errors import CheckpointError
from benchmark.fileio import sha256_file
from benchmark.models.checkpoints import LoadReport, load_weights


class SegmentationWrapper(nn.Module):
    """A network behind the benchmark's model contract (see the module docstring).

    Attributes:
        num_classes: K.
        class_names: K class names.
        checkpoint_sha256: sha256 of the loaded checkpoint file, or None (random or the factory's own weights).
        checkpoint_report: how the checkpoint's tensors loaded (:class:`LoadReport`), or None.
        origin: provenance of the code that built the network (:func:`benchmark.plugins.origin`), or
            None for code of this project (mmseg configs).
        mode: "whole" or "slide".
    """

    def __init__(self, class_names: tuple[str, ...], checkpoint_sha256: str | None,
                 checkpoint_report: LoadReport | None = None, origin: dict[str, Any] | None = None):
        super().__init__()
        self.num_classes = len(class_names)
        self.class_names = tuple(class_names)
        self.checkpoint_sha256 = checkpoint_sha256
        self.checkpoint_report = checkpoint_report
        self.origin = origin
        self.memory_format = torch.contiguous_format

    # -- what a subclass defines ---------------------------------------------------------------------
    @property
    def network(self) -> nn.Module:
        """The module that layer names (features, layer table) are relative to."""
        raise NotImplementedError

    @property
    def mode(self) -> str:
        raise NotImplementedError

    def _inputs(self, images: torch.Tensor) -> tuple:
        """The arguments of :meth:`_infer` and :meth:`_encode` for ``images`` in [0, 1]."""
        raise NotImplementedError

    def _infer(self, *inputs) -> torch.Tensor:
        """Logits at input resolution: the forward pass a run evaluates and attacks."""
        raise NotImplementedError

    def _encode(self, *inputs) -> Any:
        """A whole-image forward pass through :attr:`network`, for features (its result is not used)."""
        return self._infer(*inputs)

    # -- the shared contract ---------------------------------------------------------------------------
    @staticmethod
    def _check_images(images: torch.Tensor, channels: int = 3) -> None:
        if images.dim() != 4 or images.shape[1] != channels:
            raise ValueError(f"expected images of shape (N, {channels}, H, W), got {tuple(images.shape)}")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._infer(*self._inputs(images))

    def use_channels_last(self) -> SegmentationWrapper:
        """Keep the weights and the (normalised) input in ``torch.channels_last`` (NHWC) memory: the
        faster layout of convolutions on recent GPUs (tensor cores), and with bf16 autocast above all.
        Logits and input gradients are the same tensors up to float rounding; the layout is recorded in
        a result's numerics."""
        self.memory_format = torch.channels_last
        self.network.to(memory_format=torch.channels_last)
        return self

    def features(self, images: torch.Tensor, layers: list[str] | tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Outputs of the named submodules of :attr:`network` (names as in ``network.named_modules()``,
        listed by ``benchmark models --layers``) for images in [0, 1], differentiable with respect to
        the images. The forward pass runs on the whole image (no sliding windows) and stops at the
        deepest requested layer."""
        inputs = self._inputs(images)
        return capture(self.network, list(layers), lambda: self._encode(*inputs))

    def logits_and_features(self, images: torch.Tensor,
                            layers: list[str] | tuple[str, ...]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(self(images), self.features(images, layers))`` from one forward pass, for losses that read
        both (RP-PGD's prototypes). Whole inference only: sliding windows would give one window's
        features; ValueError in slide mode."""
        if self.mode != "whole":
            raise ValueError(f"logits and features of one forward need whole inference; this model uses "
                             f"{self.mode!r} (build it with mode='whole')")
        inputs = self._inputs(images)
        out: list[torch.Tensor] = []
        found = capture(self.network, list(layers), lambda: out.append(self._infer(*inputs)), stop_early=False)
        return out[0], found

    def layer_table(self, size: tuple[int, int] = (256, 256)) -> list[tuple[str, str, str]]:
        """(name, module type, output shape) of every submodule, from one forward pass of a
        (1, 3, *size) image, in the order the modules finished; modules that did not run are listed last."""
        shapes: dict[str, str] = {}
        handles = []
        for name, module in self.network.named_modules():
            if not name:
                continue

            def hook(module, inputs, output, name=name):
                if name not in shapes:
                    shapes[name] = _shape_text(output)

            handles.append(module.register_forward_hook(hook))
        try:
            with torch.no_grad():
                self(torch.full((1, 3, *size), 0.5, device=self.device))
        finally:
            for handle in handles:
                handle.remove()
        modules = dict(self.network.named_modules())
        ran = [(name, type(modules[name]).__name__, shape) for name, shape in shapes.items()]
        idle = [(name, type(module).__name__, "-") for name, module in modules.items()
                if name and name not in shapes]
        return ran + idle

    @property
    def device(self) -> torch.device:
        """Where the first parameter (or buffer) lives; the CPU for a model without either."""
        for tensor in (*self.parameters(), *self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def frozen(self, device: str | torch.device) -> SegmentationWrapper:
        """This model in eval mode with every parameter frozen, on ``device``."""
        self.eval()
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        return self.to(device)


def load_checkpoint(module: nn.Module, checkpoint: str | os.PathLike, expected_sha256: str | None = None,
                    strict: bool = True) -> tuple[str, LoadReport]:
    """Check ``checkpoint``'s sha256 against ``expected_sha256`` (if given), then load it into ``module``
    through :func:`~benchmark.models.checkpoints.load_weights` (restricted reader, key, shape and
    non-finite checks). Returns (sha256, report)."""
    if not os.path.isfile(checkpoint):
        raise CheckpointError(f"checkpoint not found: {checkpoint}")
    sha256 = sha256_file(checkpoint)
    if expected_sha256 is not None and sha256 != expected_sha256:
        raise CheckpointError(f"checksum mismatch for {checkpoint}: expected {expected_sha256}, file has {sha256}")
    return sha256, load_weights(module, checkpoint, strict=strict)


def _shape_text(output: Any) -> str:
    """(1, 64, 8, 8) for a tensor; [(..), (..)] for a sequence (select one with NAME[i])."""
    if isinstance(output, torch.Tensor):
        return str(tuple(output.shape))
    if isinstance(output, (tuple, list)) and all(isinstance(o, torch.Tensor) for o in output):
        return "[" + ", ".join(str(tuple(o.shape)) for o in output) + "]"
    return type(output).__name__
