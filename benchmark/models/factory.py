"""Models from a user's Python factory: any ``nn.Module`` behind the benchmark's model contract (torch only).

A zoo entry with ``factory: my_pkg.models:build`` (see :mod:`benchmark.models.zoo`) names a function
returning an ``nn.Module`` that maps float RGB images in [0, 1], shape (N, 3, H, W), to logits
(N, num_classes, H, W) at input size; normalisation and upsampling are the module's own business.
:func:`build_factory_model` calls it, loads the entry's checkpoint (if any) through the restricted
loader, checks the output shape on a probe image and returns a frozen, eval-mode :class:`FactoryModel`.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import torch
from torch import nn

from benchmark.errors import ConfigError
from benchmark.models.checkpoints import LoadReport
from benchmark.models.wrapper import SegmentationWrapper, load_checkpoint
from benchmark.plugins import origin

#: (height, width) of the probe image whose logits must come back at (1, num_classes, height, width);
#: not square, so that transposed outputs are caught; a multiple of 32 for strided backbones.
PROBE_SIZE = (64, 96)


class FactoryModel(SegmentationWrapper):
    """The module a factory returned, behind the benchmark's model contract (:class:`SegmentationWrapper`).

    Whole-image inference; layer names are relative to the returned module (``net``), whose
    ``default_feature_layer`` attribute, if any, names the layer a feature loss reads by default.

    Attributes (besides the base's):
        factory: the spec of the factory (``module:function``), recorded as the model's config.
    """

    def __init__(self, net: nn.Module, class_names: tuple[str, ...], factory: str, checkpoint_sha256: str | None,
                 checkpoint_report: LoadReport | None = None, origin: dict[str, Any] | None = None):
        super().__init__(class_names, checkpoint_sha256, checkpoint_report, origin)
        self.net = net
        self.factory = factory

    @property
    def network(self) -> nn.Module:
        return self.net

    @property
    def mode(self) -> str:
        return "whole"

    @property
    def default_feature_layer(self) -> str | None:
        return getattr(self.net, "default_feature_layer", None)

    def _inputs(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        self._check_images(images)
        return (images.contiguous(memory_format=self.memory_format),)

    def _infer(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def extra_repr(self) -> str:
        return f"factory={self.factory!r}, num_classes={self.num_classes}"


def build_factory_model(factory: Callable[..., Any], spec: str, num_classes: int,
                        class_names: tuple[str, ...] | None = None, kwargs: dict[str, Any] | None = None,
                        checkpoint: str | os.PathLike | None = None, expected_sha256: str | None = None,
                        strict: bool = True, device: str | torch.device = "cpu", module: ModuleType | None = None,
                        name: str | None = None) -> FactoryModel:
    """Call ``factory(**kwargs)`` and wrap what it returns as a frozen, eval-mode :class:`FactoryModel`.

    Args:
        factory: the function (:meth:`benchmark.models.zoo.ModelEntry.load_factory`).
        spec: its spec, ``module:function``, for messages and the results.
        num_classes, class_names: the model's classes (default names ``class_0``, ...).
        kwargs: keyword arguments of the factory.
        checkpoint: optional state dict of the returned module (any format of
            :func:`~benchmark.models.checkpoints.read_checkpoint`); None keeps the factory's weights.
        expected_sha256: if given, the checkpoint's sha256 must equal it (checked before loading).
        strict: key mismatches between checkpoint and module are an error.
        device: where the model lives.
        module: the factory's module: its provenance (:func:`benchmark.plugins.origin` of ``spec``) becomes
            :attr:`origin` (None: no origin).
        name: the zoo name, for messages.

    Raises:
        ConfigError: the factory raised, returned something other than an ``nn.Module``, or the module's
            probe forward failed or gave logits of another shape (one line naming the model).
        CheckpointError: the checkpoint is missing, damaged, non-finite or does not match.
    """
    label = f"model {name or spec!r}"
    try:
        net = factory(**(kwargs or {}))
    except Exception as err:  # noqa: BLE001 -- any error of users' code becomes one line
        raise ConfigError(f"{label}: factory {spec!r} raised {_error_line(err)}") from None
    if not isinstance(net, nn.Module):
        raise ConfigError(f"{label}: factory {spec!r} returned a {type(net).__module__}.{type(net).__qualname__}, "
                          "not a torch.nn.Module")
    sha256, report = (None, None) if checkpoint is None else load_checkpoint(net, checkpoint, expected_sha256, strict)
    record = None if module is None else origin(spec, module)
    names = tuple(class_names) if class_names is not None else tuple(f"class_{i}" for i in range(num_classes))
    model = FactoryModel(net, names, spec, sha256, report, record).frozen(device)
    _probe(model, label)
    return model


def _probe(model: FactoryModel, label: str) -> None:
    """One forward of a (1, 3, *PROBE_SIZE) image; ConfigError unless it gives (1, K, *PROBE_SIZE) logits."""
    expected = (1, model.num_classes, *PROBE_SIZE)
    try:
        with torch.no_grad():
            out = model(torch.full((1, 3, *PROBE_SIZE), 0.5, device=model.device))
    except Exception as err:  # noqa: BLE001
        raise ConfigError(f"{label}: the probe forward of a (1, 3, {PROBE_SIZE[0]}, {PROBE_SIZE[1]}) image failed: "
                          f"{_error_line(err)}") from None
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if got != expected or not out.is_floating_point():
        raise ConfigError(f"{label}: expected logits of shape {expected} for a (1, 3, {PROBE_SIZE[0]}, "
                          f"{PROBE_SIZE[1]}) image (num_classes, input size), got {got}"
                          + ("" if not isinstance(out, torch.Tensor) or out.is_floating_point() else f" {out.dtype}"))


def _error_line(err: BaseException) -> str:
    """``ValueError: bad width (model.py:12)``: the error and the innermost frame it came from."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    message = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {message}{where}"
