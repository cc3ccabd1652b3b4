"""What makes an attack valid: the invariants every registered attack is held to, on tiny models.

:func:`check_attack` runs them for one registry name (a built-in, a composition or a plugin) and returns
one :class:`Check` per invariant; ``benchmark check-attack NAME`` prints them and the test suite asserts
them for every built-in, so there is one definition of "a valid attack":

1. ``eps-ball``: the result stays within eps of the image (L-inf, 1e-6) and in [0, 1], has the input's
   shape, dtype and device, is detached, and leaves the inputs untouched; on one model and on
   ensembles (averaged logits, averaged losses);
2. ``model``: the models' train/eval flags, ``requires_grad`` flags and parameters are as before, with
   no ``.grad`` left;
3. ``global RNG``: the global torch RNG state is unchanged, with and without generators;
4. ``deterministic``: the same generators give the same result;
5. ``batch``: an image's result does not depend on its batch (1e-6; one image without valid pixels in
   the batch);
6. ``ignored pixels``: an image whose pixels are all ignored is not moved (from the clean image), and on
   a per-pixel model the ignored pixels of other images stay as they are unless a part mixes pixels;
   a label-free attack (``uses_labels`` False) must instead move images whose labels are all ignored;
7. ``passes``: the planner's count (:func:`~benchmark.attacks.passes.count_passes`, on its stand-in)
   equals the source passes counted on the check's model.

Averaging modifiers run with at most 3 copies (``copy_settings``): the invariants hold for any count.
The tiny models use native convolutions and one thread while checking (restored afterwards), since
oneDNN's batch-size-dependent kernels differ in the last bits.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from benchmark.attacks.attack import Attack, build_attack
from benchmark.attacks.passes import count_passes
from benchmark.attacks.registry import ATTACKS, MODIFIERS, copy_settings, parse

EPS_TOLERANCE = 1e-6
CHECKS = ("builds", "eps-ball", "model", "global RNG", "deterministic", "batch", "ignored pixels", "passes")


@dataclass(frozen=True)
class Check:
    """One invariant: its ``name``, whether it ``holds``, and a one-line ``detail``."""

    name: str
    holds: bool | None  # None: not run (an earlier failure prevents it)
    detail: str = ""


class TinySegNet(nn.Module):
    """3x3 convs C -> 6 -> K; logits at input resolution; feature attacks read ``conv1`` by default."""

    default_feature_layer = "conv1"

    def __init__(self, channels: int = 3, classes: int = 4, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(channels, 6, 3, padding=1)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(6, classes, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)

    def forward(self, x):
        return self.conv2(self.act(self.conv1(x)))


class PixelLinear(nn.Module):
    """Per-pixel linear classifier (1x1 conv): logits_k = w_k . x + b_k."""

    default_feature_layer = "conv"

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        k, c = weight.shape
        self.conv = nn.Conv2d(c, k, 1)
        with torch.no_grad():
            self.conv.weight.copy_(weight.view(k, c, 1, 1))
            self.conv.bias.copy_(torch.zeros(k) if bias is None else bias)

    def forward(self, x):
        return self.conv(x)


class _Counting(nn.Module):
    """Counts the images a model forwards, with and without autograd."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.grad, self.eval_images = model, 0, 0
        layer = getattr(model, "default_feature_layer", None)
        self.default_feature_layer = f"model.{layer}" if layer else None

    def forward(self, x):
        if torch.is_grad_enabled():
            self.grad += x.shape[0]
        else:
            self.eval_images += x.shape[0]
        return self.model(x)


def make_batch(n: int = 2, c: int = 3, h: int = 17, w: int = 29, k: int = 4, seed: int = 0):
    """Random images in [0, 1] and labels with a 3x5 ignored corner (255)."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(n, c, h, w, generator=gen)
    labels = torch.randint(0, k, (n, h, w), generator=gen)
    labels[:, :3, :5] = 255
    return images, labels


def generators(n: int, seed: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def mixes_pixels(name: str) -> bool:
    """Whether a part of ``name`` moves gradient between pixels (a geometry transform, a filter, or a
    modifier that declares ``mixes_pixels``), a preset's own modifiers included."""
    base, mods = parse(name)
    parts = [*ATTACKS[base].preset_modifiers, *mods]
    return any(MODIFIERS[m].kind in ("geometry", "filter") or MODIFIERS[m].mixes_pixels for m in parts)


def _sources() -> list[tuple[str, Any, dict[str, Any]]]:
    return [("one model", TinySegNet(seed=1).eval(), {}),
            ("ensemble of logits", [TinySegNet(seed=1).eval(), TinySegNet(seed=2).eval()], {"ensemble": "logits"}),
            ("ensemble of losses", [TinySegNet(seed=1).eval(), TinySegNet(seed=2).eval()], {"ensemble": "loss"})]


def _eps_ball(build: Callable[..., Attack]) -> str | None:
    eps = build().settings.base.eps
    for where, model, extra in _sources():
        images, labels = make_batch(n=3)
        before = images.clone(), labels.clone()
        adv = build(**extra)(model, images, labels, generator=torch.Generator().manual_seed(0))
        if (adv - images).abs().max() > eps + EPS_TOLERANCE:
            return f"{where}: moved {(adv - images).abs().max().item():.6f} > eps {eps:.6f}"
        if adv.min() < 0 or adv.max() > 1:
            return f"{where}: values outside [0, 1] ({adv.min().item():.4f}, {adv.max().item():.4f})"
        if adv.shape != images.shape or adv.dtype != images.dtype or adv.requires_grad or adv.grad_fn is not None:
            return f"{where}: the result is not a detached tensor like the images"
        if adv.data_ptr() == images.data_ptr() or not (torch.equal(images, before[0]) and torch.equal(labels, before[1])):
            return f"{where}: the inputs were modified or returned"
        if not (adv != images).any():
            return f"{where}: the attack did not move the images"
    return None


def _model(build: Callable[..., Attack]) -> str | None:
    for where, model, extra in _sources()[:2]:
        members = model if isinstance(model, list) else [model]
        members[0].act.train()  # a mixed-mode model: flags must survive as they are
        for m in members:
            m.conv2.bias.requires_grad_(False)
        flags = [(mod.training, [p.requires_grad for p in mod.parameters(recurse=False)])
                 for m in members for mod in m.modules()]
        values = [p.detach().clone() for m in members for p in m.parameters()]
        images, labels = make_batch()
        build(**extra)(model, images, labels, generator=torch.Generator().manual_seed(0))
        if flags != [(mod.training, [p.requires_grad for p in mod.parameters(recurse=False)])
                     for m in members for mod in m.modules()]:
            return f"{where}: a module's train/eval or requires_grad flag changed"
        if any(p.grad is not None for m in members for p in m.parameters()):
            return f"{where}: a parameter was left with a .grad"
        if not all(torch.equal(a, b) for a, b in zip(values, (p for m in members for p in m.parameters()))):
            return f"{where}: a parameter changed"
    return None


def _rng(build: Callable[..., Attack]) -> str | None:
    model, (images, labels) = TinySegNet(seed=1).eval(), make_batch()
    attack, state = build(), torch.get_rng_state()
    attack(model, images, labels, generator=torch.Generator().manual_seed(5))
    if not torch.equal(torch.get_rng_state(), state):
        return "the global RNG moved with a generator given"
    attack(model, images, labels)
    return None if torch.equal(torch.get_rng_state(), state) else "the global RNG moved with generator=None"


def _deterministic(build: Callable[..., Attack]) -> str | None:
    model, (images, labels) = TinySegNet(seed=1).eval(), make_batch()
    attack = build()
    a = attack(model, images, labels, generator=torch.Generator().manual_seed(5))
    b = attack(model, images, labels, generator=torch.Generator().manual_seed(5))
    return None if torch.equal(a, b) else f"two runs with the same generator differ by {(a - b).abs().max():.3g}"


def _batch(build: Callable[..., Attack]) -> str | None:
    for where, model, extra in _sources():
        images, labels = make_batch(n=3)
        labels[1] = 255  # one image without valid pixels must not disturb the others
        attack = build(**extra)
        together = attack(model, images, labels, generator=generators(3, seed=10))
        for i in range(3):
            alone = attack(model, images[i:i + 1], labels[i:i + 1], generator=generators(1, seed=10 + i))
            if (together[i:i + 1] - alone).abs().max() > EPS_TOLERANCE:
                return f"{where}: image {i} differs by {(together[i:i + 1] - alone).abs().max():.3g} alone"
    return None


def _ignored(name: str, build: Callable[..., Attack]) -> str | None:
    model = TinySegNet(seed=1).eval()
    images, labels = make_batch()
    if not build().uses_labels:
        adv = build(random_start=False)(model, images, torch.full_like(labels, 255), generator=generators(2))
        return None if (adv != images).any() else "label-free, but images with no valid label were not moved"
    labels[0] = 255
    adv = build(random_start=False)(model, images, labels, generator=generators(2))
    if not torch.equal(adv[0], images[0]):
        return "an image whose pixels are all ignored was moved (ignored pixels carry loss)"
    if mixes_pixels(name):
        return None
    pixel = PixelLinear(torch.randn(3, 3, generator=torch.Generator().manual_seed(3))).eval()
    images, labels = make_batch(k=3)
    adv = build(random_start=False)(pixel, images, labels, generator=generators(2))
    ignored = (labels == 255).unsqueeze(1).expand_as(images)
    if not torch.equal(adv[ignored], images[ignored]):
        return "on a per-pixel model, ignored pixels moved (they carry loss)"
    return None


def _passes(name: str, settings: dict[str, Any], build: Callable[..., Attack]) -> str | None:
    declared = count_passes(name, **settings)
    counting = _Counting(TinySegNet(seed=1).eval())
    images, labels = make_batch(n=1)
    with torch.enable_grad():
        build()(counting, images, labels, generator=generators(1))
    if (counting.grad, counting.eval_images) != (declared.grad, declared.eval):
        return (f"the planner counts {declared.grad} grad + {declared.eval} eval passes per image, the check's "
                f"model saw {counting.grad} + {counting.eval_images}")
    return None


def check_attack(name: str, /, **settings: Any) -> list[Check]:
    """Run the invariants (module docstring) for ``build_attack(name, **settings)``; one Check per row of
    :data:`CHECKS`. A build failure fails the first row and leaves the others not run."""
    small = {**copy_settings(name, 3), **settings} if _parses(name) else dict(settings)
    try:
        build_attack(name, **small)
    except Exception as err:  # noqa: BLE001 -- a plugin's failure is a row, not a traceback
        return [Check("builds", False, _line(err))] + [Check(row, None, "not run") for row in CHECKS[1:]]
    rows = [Check("builds", True, build_attack(name, **small).name)]

    def build(**extra: Any) -> Attack:
        return build_attack(name, **{**small, **extra})

    runs: list[tuple[str, Callable[[], str | None]]] = [
        ("eps-ball", lambda: _eps_ball(build)), ("model", lambda: _model(build)), ("global RNG", lambda: _rng(build)),
        ("deterministic", lambda: _deterministic(build)), ("batch", lambda: _batch(build)),
        ("ignored pixels", lambda: _ignored(name, build)), ("passes", lambda: _passes(name, small, build)),
    ]
    threads, mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    try:
        for row, run in runs:
            try:
                problem = run()
            except Exception as err:  # noqa: BLE001
                problem = f"raised {_line(err)}"
            rows.append(Check(row, problem is None, problem or ""))
    finally:
        torch.backends.mkldnn.enabled = mkldnn
        torch.set_num_threads(threads)
    return rows


def _parses(name: str) -> bool:
    try:
        parse(name)
    except Exception:  # noqa: BLE001
        return False
    return True


def _line(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text}{where}"


def table(name: str, rows: list[Check]) -> str:
    """The rows as a plain-text table: check, holds / FAILS / not run, detail."""
    mark = {True: "holds", False: "FAILS", None: "not run"}
    width = max(len(r.name) for r in rows)
    lines = [f"check-attack {name}", f"{'check'.ljust(width)}  result   detail"]
    lines += [f"{r.name.ljust(width)}  {mark[r.holds].ljust(7)}  {r.detail}" for r in rows]
    return "\n".join(lines)
