"""Intermediate features of a torch module through forward hooks, for feature-level losses (FSPGD).

A model may offer ``features(images, layers) -> {name: tensor}`` itself (the mmseg adapter does, with
names relative to the segmentor); for any other ``nn.Module`` the core uses :func:`capture` with
names from ``module.named_modules()``; ``NAME[i]`` takes element ``i`` of a module that returns a
tuple or list (``backbone[2]``: the third stage a backbone returns). A model may name its default
layer in the attribute ``default_feature_layer``.

The forward pass stops as soon as every requested layer has produced its output, so a feature loss
pays for the part of the network up to the deepest requested layer only. A loss that reads logits and
features of the same forward (RP-PGD) uses :func:`logits_and_features`: the whole forward runs, the
hook only records; a model may offer ``logits_and_features(images, layers) -> (logits, {name: tensor})``
itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn


class _Captured(Exception):
    """Raised by the last hook to stop the forward pass early."""


def _split(name: str) -> tuple[str, int | None]:
    """"backbone[2]" -> ("backbone", 2); "backbone.layer3" -> ("backbone.layer3", None)."""
    if name.endswith("]") and "[" in name:
        path, index = name[:-1].rsplit("[", 1)
        if index.lstrip("-").isdigit():
            return path, int(index)
    return name, None


def resolve(module: nn.Module, name: str) -> nn.Module:
    """The submodule ``name`` (``NAME[i]`` names the module NAME); ValueError naming the valid
    top-level names otherwise."""
    path, _ = _split(name)
    try:
        return module.get_submodule(path)
    except AttributeError:
        top = ", ".join(n for n, _ in module.named_children())
        raise ValueError(f"layer {name!r}: no such submodule (top-level modules: {top}); "
                         "`benchmark models --layers MODEL` lists every name") from None


def capture(root: nn.Module, layers: Sequence[str], run: Callable[[], object],
            stop_early: bool = True) -> dict[str, Tensor]:
    """Run ``run()`` (a forward pass through ``root``) and return the outputs of ``layers``.

    Args:
        root: the module the names are relative to.
        layers: submodule names.
        run: a zero-argument callable doing the forward pass.
        stop_early: stop the forward once every layer has produced its output (False: run it whole,
            e.g. when ``run`` also keeps the logits).

    Returns:
        {name: output tensor}, differentiable with respect to the forward's input.
    """
    wanted = list(dict.fromkeys(layers))
    found: dict[str, Tensor] = {}
    handles = []

    def hook_for(name: str):
        index = _split(name)[1]

        def hook(module, inputs, output):
            if index is not None:
                if not isinstance(output, (tuple, list)) or not -len(output) <= index < len(output):
                    raise ValueError(f"layer {name!r}: the module does not return a sequence with "
                                     f"element {index}")
                output = output[index]
            elif isinstance(output, (tuple, list)):
                output = output[0]
            found[name] = output
            if stop_early and len(found) == len(wanted):
                raise _Captured

        return hook

    try:
        for name in wanted:
            handles.append(resolve(root, name).register_forward_hook(hook_for(name)))
        try:
            run()
        except _Captured:
            pass
    finally:
        for handle in handles:
            handle.remove()
    missing = [name for name in wanted if name not in found]
    if missing:
        raise ValueError(f"layer {missing[0]!r} was not run by the model's forward pass")
    return found


def _layer_name(model, layer: str | None) -> str:
    """``layer``, or the model's ``default_feature_layer`` when None (ValueError if it names none)."""
    name = layer if layer is not None else getattr(model, "default_feature_layer", None)
    if name is None:
        raise ValueError("layer: this model names no default_feature_layer; set the attack's 'layer' "
                         "(`benchmark models --layers MODEL` lists the names)")
    return name


def feature_extractor(model: Callable[[Tensor], Tensor], layer: str | None) -> Callable[[Tensor], Tensor]:
    """x -> the (N, C, h, w) output of ``layer`` of ``model`` (its ``default_feature_layer`` if None)."""
    name = _layer_name(model, layer)
    own = getattr(model, "features", None)
    if callable(own):
        return lambda x: own(x, [name])[name]
    if not isinstance(model, nn.Module):
        raise ValueError("a feature loss needs an nn.Module or a model with features(images, layers)")
    resolve(model, name)
    return lambda x: capture(model, [name], lambda: model(x))[name]


def logits_and_features(model: Callable[[Tensor], Tensor],
                        layer: str | None) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """x -> (logits of ``model``, the (N, C, h, w) output of ``layer``), both from one forward pass
    (``layer`` None: the model's ``default_feature_layer``)."""
    name = _layer_name(model, layer)
    own = getattr(model, "logits_and_features", None)
    if callable(own):
        def from_model(x: Tensor) -> tuple[Tensor, Tensor]:
            logits, found = own(x, [name])
            return logits, found[name]
        return from_model
    if not isinstance(model, nn.Module):
        raise ValueError("a loss on logits and features needs an nn.Module or a model with "
                         "logits_and_features(images, layers)")
    resolve(model, name)

    def hooked(x: Tensor) -> tuple[Tensor, Tensor]:
        out: list[Tensor] = []
        found = capture(model, [name], lambda: out.append(model(x)), stop_early=False)
        return out[0], found[name]

    return hooked
