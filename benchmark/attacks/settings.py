"""Frozen settings of every attack part, validated once at construction.

Units: ``eps`` and ``alpha`` are fractions of the [0, 1] pixel range (8/255, not 8). Every error is a
:class:`benchmark.errors.ConfigError` whose one-line message names the field and the bad value.
``to_dict()`` gives the flat, JSON-ready dict of resolved values; :class:`AttackSettings` joins the
parts of one attack and adds a short stable hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from benchmark.errors import ConfigError

STEP_SCHEDULES = ("constant", "linear", "cosine", "uniform")

#: Dataclass field metadata key: the field is left out of ``to_dict()`` -- so out of result files and
#: the settings hash -- while it holds its default. For options added after results were recorded
#: without them: the default reproduces those results and keeps their hashes (the result schema's
#: ``benchmark.results.codec.OMIT_DEFAULT`` does the same for result records).
OMIT_DEFAULT = "omit_default"


def _fail(field_name: str, value: Any, why: str) -> None:
    raise ConfigError(f"{field_name}={value!r}: {why}")


def _real(field_name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(field_name, value, "must be a finite number")
    return float(value)


def _int(field_name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(field_name, value, "must be an integer")
    return value


def _bool(field_name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        _fail(field_name, value, "must be true or false")
    return value


def _choice(field_name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        _fail(field_name, value, f"must be one of {', '.join(repr(c) for c in choices)}")
    return value


def _unit_interval(field_name: str, value: Any, *, low_open: bool = False, high: float = 1.0) -> float:
    v = _real(field_name, value)
    if v > high or v < 0 or (low_open and v == 0):
        _fail(field_name, value, f"must lie in {'(' if low_open else '['}0, {high}]")
    return v


class _Flat:
    """Mixin: a flat dict of the resolved fields (every field is a scalar); a field marked
    :data:`OMIT_DEFAULT` appears only when it differs from its default."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if not (f.metadata.get(OMIT_DEFAULT) and getattr(self, f.name) == f.default)}


@dataclass(frozen=True)
class IterativeSettings(_Flat):
    """The iterative L-inf core shared by every attack (FGSM, BIM, PGD, CosPGD, the FGSM presets).

    Paper (PGD): "Towards Deep Learning Models Resistant to Adversarial Attacks", Madry et al.,
    arXiv:1706.06083; (BIM) Kurakin et al., arXiv:1607.02533; (FGSM) Goodfellow et al., arXiv:1412.6572.

    Args:
        eps: L-inf budget, fraction of the [0, 1] pixel range, in (0, 1] (default 8/255).
        alpha: step size, same unit (registry default per attack; None means eps / steps).
        steps: iterations T >= 1.
        random_start: start uniformly inside the eps-ball.
        ignore_index: label excluded from loss, partitions and statistics (default 255).
        step_schedule: "constant" | "linear" | "cosine" | "uniform"; each has mean step alpha.
        step_min_ratio: rho in (0, 1]; dynamic schedules range over [rho, 2 - rho] * alpha.
        loss_normalizer: "valid" (per-image valid-pixel count) | "all" (H * W).
        label_source: "ground_truth" | "clean_pred" (source's clean argmax; ignore mask from labels).
        return_iterate: "last" | "best" (per image, lowest source valid-pixel accuracy).
        ensemble: "logits" (average logits) | "loss" (average pixel losses); used when the model
            argument is a sequence of models.

    Shapes:
        images (N, C, H, W) float in [0, 1]; labels (N, H, W) int64; output like images.

    Example:
        >>> attack = build_attack("pgd", eps=8 / 255, steps=10)
        >>> adv = attack(model, images, labels, generator=torch.Generator().manual_seed(0))
    """

    eps: float = 8 / 255
    alpha: float | None = 2 / 255
    steps: int = 10
    random_start: bool = True
    ignore_index: int = 255
    step_schedule: str = "constant"
    step_min_ratio: float = 0.5
    loss_normalizer: str = "valid"
    label_source: str = "ground_truth"
    return_iterate: str = "last"
    ensemble: str = "logits"

    def __post_init__(self) -> None:
        eps = _real("eps", self.eps)
        if not 0 < eps <= 1:
            hint = f" (did you mean {eps:g}/255?)" if 1 < eps <= 255 else ""
            _fail("eps", self.eps, f"must lie in (0, 1], a fraction of the pixel range{hint}")
        steps = _int("steps", self.steps)
        if steps < 1:
            _fail("steps", self.steps, "must be >= 1")
        alpha = eps / steps if self.alpha is None else _real("alpha", self.alpha)
        if alpha <= 0:
            _fail("alpha", self.alpha, "must be > 0")
        object.__setattr__(self, "eps", eps)
        object.__setattr__(self, "alpha", alpha)
        _bool("random_start", self.random_start)
        _int("ignore_index", self.ignore_index)
        _choice("step_schedule", self.step_schedule, STEP_SCHEDULES)
        object.__setattr__(
            self, "step_min_ratio", _unit_interval("step_min_ratio", self.step_min_ratio, low_open=True)
        )
        _choice("loss_normalizer", self.loss_normalizer, ("valid", "all"))
        _choice("label_source", self.label_source, ("ground_truth", "clean_pred"))
        _choice("return_iterate", self.return_iterate, ("last", "best"))
        _choice("ensemble", self.ensemble, ("logits", "loss"))


@dataclass(frozen=True)
class SegPGDSettings(IterativeSettings):
    """SegPGD: PGD whose CE is re-weighted between still-correct and already-fooled pixels.

    Paper: "SegPGD: An Effective and Efficient Adversarial Attack for Evaluating and Boosting
    Segmentation Robustness", Gu et al., ECCV 2022, arXiv:2207.12391.

    Args:
        (all of IterativeSettings; registry defaults eps 8/255, alpha 2/255, steps 20, random start)
        lambda_offset: 0 or 1; fooled-pixel weight (t + offset) / (2 * steps), t from 0 (default 0).

    Shapes:
        images (N, C, H, W) float in [0, 1]; labels (N, H, W) int64; output like images.

    Example:
        >>> attack = build_attack("segpgd", eps=8 / 255, steps=20)
        >>> adv = attack(model, images, labels, generator=torch.Generator().manual_seed(0))
    """

    lambda_offset: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if _int("lambda_offset", self.lambda_offset) not in (0, 1):
            _fail("lambda_offset", self.lambda_offset, "must be 0 or 1 (lambda_t must stay in [0, 1/2])")


@dataclass(frozen=True)
class TranSegPGDSettings(IterativeSettings):
    """TranSegPGD: two-stage re-weighted PGD (adversarial property, then KL transferability).

    Paper: "TranSegPGD: Improving Transferability of Adversarial Examples on Semantic Segmentation",
    Jia et al., arXiv:2312.02207. The full text was not available; every option below is one row of
    the ambiguity register (attacks.md 3.3) and every default is our interpretation.

    Args:
        (all of IterativeSettings; registry defaults alpha 2/255, steps 20, random start, "uniform")
        stage1_steps: T1, steps of stage 1 in [0, steps]; None means steps // 2 (A3).
        stage_switch: "fixed" (at T1) | "all_fooled" (per image, no valid pixel correct) (A3).
        stage1_split: "correct" (argmax == label) | "confident" (p[label] > 1/2) hard pixels (A1).
        stage1_priority: which stage-1 branch gets the high weight 1 - gamma_t (A17): "correct" (the
            hard pixels of ``stage1_split``, default) | "fooled" (the other valid pixels: the project
            description's "higher weight to misclassified pixels"). Recorded only when "fooled", so
            results and hashes from before the option stay valid.
        stage1_weight / stage2_weight: "segpgd" (linear ramp) | "constant" (gamma / beta) (A2).
        gamma / beta: constant weights in [0, 1/2] of the easy branch (A2).
        lambda_offset: 0 or 1, ramp (t + offset) / (2 * horizon) (A2).
        weight_horizon: "stage" (ramp over the stage's steps) | "total" (over all steps) (A2).
        kl_reference: "clean" (source softmax on clean image) | "label" (one-hot) (A4).
        kl_direction: "clean_adv" KL(ref || adv) | "adv_clean" KL(adv || ref) (A5).
        stage2_split: "mean" | "median" | "topk" per-image threshold on KL (A6).
        topk_fraction: fraction in (0, 1] of valid pixels on the upper side for "topk" (A6).
        transferable_side: "high_kl" | "low_kl" (A7).
        stage2_loss: "ce" | "kl" | "ce_kl" weighted stage-2 objective (A8).

    Shapes:
        images (N, C, H, W) float in [0, 1]; labels (N, H, W) int64; output like images.

    Example:
        >>> attack = build_attack("transegpgd+mi", steps=20, stage2_split="median")
        >>> adv = attack(model, images, labels, generator=torch.Generator().manual_seed(0))
    """

    steps: int = 20
    step_schedule: str = "uniform"
    stage1_steps: int | None = None
    stage_switch: str = "fixed"
    stage1_split: str = "correct"
    stage1_priority: str = field(default="correct", metadata={OMIT_DEFAULT: True})
    stage1_weight: str = "segpgd"
    stage2_weight: str = "segpgd"
    gamma: float = 0.1
    beta: float = 0.1
    lambda_offset: int = 0
    weight_horizon: str = "stage"
    kl_reference: str = "clean"
    kl_direction: str = "clean_adv"
    stage2_split: str = "mean"
    topk_fraction: float = 0.5
    transferable_side: str = "high_kl"
    stage2_loss: str = "ce"

    def __post_init__(self) -> None:
        super().__post_init__()
        t1 = self.steps // 2 if self.stage1_steps is None else _int("stage1_steps", self.stage1_steps)
        if not 0 <= t1 <= self.steps:
            _fail("stage1_steps", self.stage1_steps, f"must lie in [0, steps={self.steps}]")
        object.__setattr__(self, "stage1_steps", t1)
        _choice("stage_switch", self.stage_switch, ("fixed", "all_fooled"))
        _choice("stage1_split", self.stage1_split, ("correct", "confident"))
        _choice("stage1_priority", self.stage1_priority, ("correct", "fooled"))
        _choice("stage1_weight", self.stage1_weight, ("segpgd", "constant"))
        _choice("stage2_weight", self.stage2_weight, ("segpgd", "constant"))
        object.__setattr__(self, "gamma", _unit_interval("gamma", self.gamma, high=0.5))
        object.__setattr__(self, "beta", _unit_interval("beta", self.beta, high=0.5))
        if _int("lambda_offset", self.lambda_offset) not in (0, 1):
            _fail("lambda_offset", self.lambda_offset, "must be 0 or 1 (ramp weights must stay in [0, 1/2])")
        _choice("weight_horizon", self.weight_horizon, ("stage", "total"))
        _choice("kl_reference", self.kl_reference, ("clean", "label"))
        _choice("kl_direction", self.kl_direction, ("clean_adv", "adv_clean"))
        _choice("stage2_split", self.stage2_split, ("mean", "median", "topk"))
        object.__setattr__(
            self, "topk_fraction", _unit_interval("topk_fraction", self.topk_fraction, low_open=True)
        )
        _choice("transferable_side", self.transferable_side, ("high_kl", "low_kl"))
        _choice("stage2_loss", self.stage2_loss, ("ce", "kl", "ce_kl"))
        # Option interactions (attacks.md 3.3).
        if self.stage_switch == "all_fooled" and self.weight_horizon != "total":
            _fail("weight_horizon", self.weight_horizon, 'stage_switch="all_fooled" requires "total"')
        if self.kl_reference == "label" and self.kl_direction != "clean_adv":
            _fail(
                "kl_direction", self.kl_direction,
                'kl_reference="label" requires "clean_adv" (KL(p || one-hot) is infinite)',
            )


@dataclass(frozen=True)
class MomentumSettings(_Flat):
    """MI-FGSM / NI-FGSM momentum on the per-image mean-|grad| normalised gradient.

    Paper: "Boosting Adversarial Attacks with Momentum", Dong et al., CVPR 2018, arXiv:1710.06081;
    NI: "Nesterov Accelerated Gradient and Scale Invariance for Adversarial Attacks", Lin et al.,
    ICLR 2020, arXiv:1908.06281.

    Args:
        decay: momentum factor mu >= 0, unitless (default 1.0; 0 gives BIM).
    """

    decay: float = 1.0

    def __post_init__(self) -> None:
        decay = _real("decay", self.decay)
        if decay < 0:
            _fail("decay", self.decay, "must be >= 0")
        object.__setattr__(self, "decay", decay)


@dataclass(frozen=True)
class DISettings(_Flat):
    """Diverse inputs: random nearest resize and zero padding of the query point.

    Paper: "Improving Transferability of Adversarial Examples with Input Diversity", Xie et al.,
    CVPR 2019, arXiv:1803.06978.

    Args:
        resize_rate: canvas size factor r > 0, r != 1 (default 1.1; r < 1 shrinks and pads).
        diversity_prob: per-image probability of transforming, in [0, 1] (default 0.5).
    """

    resize_rate: float = 1.1
    diversity_prob: float = 0.5

    def __post_init__(self) -> None:
        rate = _real("resize_rate", self.resize_rate)
        if rate <= 0 or rate == 1:
            _fail("resize_rate", self.resize_rate, "must be > 0 and != 1")
        object.__setattr__(self, "resize_rate", rate)
        object.__setattr__(self, "diversity_prob", _unit_interval("diversity_prob", self.diversity_prob))


@dataclass(frozen=True)
class TISettings(_Flat):
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
        _odd_kernel("kernel_size", self.kernel_size)
        object.__setattr__(self, "nsig", _positive("nsig", self.nsig))


@dataclass(frozen=True)
class AttackSettings:
    """Every resolved setting of one built attack: its canonical name, base and modifier settings.

    ``to_dict()`` is flat: ``{"attack": name, <base fields>, <modifier fields>}``; field names never
    collide (the registry checks it). ``settings_hash()`` is the first 12 hex digits of the sha256 of
    that dict as sorted, compact JSON, so it is stable across processes and platforms.
    """

    name: str
    base: IterativeSettings
    modifiers: tuple[Any, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        flat: dict[str, Any] = {"attack": self.name}
        for part in (self.base, *self.modifiers):
            flat.update(part.to_dict())
        revision = code_revision(self)
        if revision > 1:  # recorded only when it moved: every other attack keeps its hash
            flat["revision"] = revision
        return flat

    def settings_hash(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


# --- attacks of the later tier (attacks.md 5) -------------------------------------------------------

Q_SCHEDULES = ("constant", "linear", "cosine")
TARGET_RULES = ("permutation", "class")
ACTIVE_SETS = ("correct", "not_target")
APGD_LOSSES = ("ce", "masked_ce", "balanced_ce", "balanced_masked_ce", "js", "mask_norm")
RADIUS_SCHEDULES = ("constant", "progressive")
CONTEXT_FEATURES = ("raw", "normalised")


def _odd_kernel(field_name: str, value: Any) -> None:
    """A Gaussian kernel's side: an odd integer >= 1 (pixels)."""
    k = _int(field_name, value)
    if k < 1 or k % 2 == 0:
        _fail(field_name, value, "must be an odd integer >= 1")


def _positive(field_name: str, value: Any) -> float:
    v = _real(field_name, value)
    if v <= 0:
        _fail(field_name, value, "must be > 0")
    return v


def _count(field_name: str, value: Any, low: int = 1) -> int:
    if _int(field_name, value) < low:
        _fail(field_name, value, f"must be an integer >= {low}")
    return value


def _target_fields(settings: Any) -> None:
    _choice("target_rule", settings.target_rule, TARGET_RULES)
    _count("target_class", settings.target_class, low=0)


@dataclass(frozen=True)
class TsallisPGDSettings(IterativeSettings):
    """TsallisPGD: PGD on the Tsallis cross-entropy with a dynamic q schedule.

    Paper: "TsallisPGD: Adaptive Gradient Weighting for Adversarial Attacks on Semantic Segmentation",
    arXiv:2605.03405 (only the abstract was available; the schedule's shape is an option).

    Args:
        (all of IterativeSettings; registry defaults alpha 2/255, steps 20, random start)
        q_start: q at the first step (default -2.0); finite, unitless.
        q_end: q at the last step (default 1.0, where L_q is CE).
        q_schedule: "linear" (default) | "cosine" | "constant" (q_start throughout).
    """

    steps: int = 20
    q_start: float = -2.0
    q_end: float = 1.0
    q_schedule: str = "linear"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "q_start", _real("q_start", self.q_start))
        object.__setattr__(self, "q_end", _real("q_end", self.q_end))
        _choice("q_schedule", self.q_schedule, Q_SCHEDULES)


@dataclass(frozen=True)
class DAGSettings(IterativeSettings):
    """DAG: dense targeted attack on the active pixels with an L-inf normalised step, projected.

    Paper: "Adversarial Examples for Semantic Segmentation and Object Detection", Xie et al.,
    ICCV 2017, arXiv:1703.08603.

    Args:
        (all of IterativeSettings; registry defaults alpha 2/255 = the largest pixel change of one
        step, steps 20, no random start)
        target_rule: "permutation" (a random K-cycle of the classes per image, default) | "class".
        target_class: the class of ``target_rule="class"``.
        active_set: "correct" (still predicted as the label; the paper) | "not_target".
    """

    steps: int = 20
    random_start: bool = False
    target_rule: str = "permutation"
    target_class: int = 0
    active_set: str = "correct"

    def __post_init__(self) -> None:
        super().__post_init__()
        _target_fields(self)
        _choice("active_set", self.active_set, ACTIVE_SETS)


@dataclass(frozen=True)
class _APGDRuleSettings(IterativeSettings):
    """The APGD step rule's fields, shared by APGD and SEA (registry defaults steps 20, no random
    start, return_iterate "best"; ``alpha`` is not used)."""

    steps: int = 20
    random_start: bool = False
    return_iterate: str = "best"
    initial_step: float = 2.0
    momentum: float = 0.75
    rho: float = 0.75
    radius_schedule: str = "constant"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "initial_step", _positive("initial_step", self.initial_step))
        object.__setattr__(self, "momentum", _unit_interval("momentum", self.momentum, low_open=True))
        object.__setattr__(self, "rho", _unit_interval("rho", self.rho, low_open=True))
        _choice("radius_schedule", self.radius_schedule, RADIUS_SCHEDULES)


@dataclass(frozen=True)
class APGDSettings(_APGDRuleSettings):
    """APGD: the adaptive step-size rule with momentum and restarts from the best point.

    Papers: Croce, Hein, arXiv:2003.01690 (APGD); Croce, Singh, Hein, arXiv:2306.12941 (the
    segmentation losses and the radius schedule).

    Args:
        (all of IterativeSettings; registry defaults steps 20, no random start, return_iterate
        "best"; ``alpha`` is not used: the rule's own step starts at ``initial_step * eps``)
        loss: "ce" | "masked_ce" | "balanced_ce" | "balanced_masked_ce" | "js" | "mask_norm".
        initial_step: eta at start, a multiple of eps (default 2.0).
        momentum: APGD's a in (0, 1] (default 0.75).
        rho: oscillation threshold in (0, 1] (default 0.75).
        radius_schedule: "constant" | "progressive" (30 % of the steps at 2 eps, 30 % at 1.5 eps,
            the rest at eps, each stage starting from the previous stage's best point).
    """

    loss: str = "ce"

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice("loss", self.loss, APGD_LOSSES)


@dataclass(frozen=True)
class SEASettings(_APGDRuleSettings):
    """SEA: per image, the worst case over APGD runs with several segmentation losses.

    Paper: "Towards Reliable Evaluation and Fast Training of Robust Semantic Segmentation Models",
    Croce, Singh, Hein, arXiv:2306.12941.

    Args:
        (all of IterativeSettings; ``steps`` is per loss (the paper: 300); alpha not used)
        sea_losses: comma-separated APGD losses (default "masked_ce,balanced_ce,js,mask_norm").
        initial_step, momentum, rho: as APGDSettings.
        radius_schedule: default "progressive" (the paper's 2 eps -> 1.5 eps -> eps).
    """

    sea_losses: str = "masked_ce,balanced_ce,js,mask_norm"
    radius_schedule: str = "progressive"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.sea_losses, str):
            _fail("sea_losses", self.sea_losses, "must be a comma-separated string of losses")
        names = [name.strip() for name in self.sea_losses.split(",")]
        if not names or any(name not in APGD_LOSSES for name in names) or len(set(names)) != len(names):
            _fail("sea_losses", self.sea_losses, f"must name distinct losses among {', '.join(APGD_LOSSES)}")
        object.__setattr__(self, "sea_losses", ",".join(names))


@dataclass(frozen=True)
class FSPGDSettings(IterativeSettings):
    """FSPGD: PGD on a feature-similarity loss of an intermediate layer of the source.

    Paper: "FSPGD: Rethinking Black-box Attacks on Semantic Segmentation", Park et al.,
    arXiv:2502.01262.

    Args:
        (all of IterativeSettings; registry defaults alpha 2/255, steps 20, random start)
        layer: the source layer, a module path such as "backbone.layer3" (None: the model's
            ``default_feature_layer``; `benchmark models --layers MODEL` lists the names).
        similarity_c: c > 1 of the pair threshold cos(pi / c) (default 3: cos > 1/2).
        context_features: "raw" (the authors' code) | "normalised".
    """

    steps: int = 20
    layer: str | None = None
    similarity_c: float = 3.0
    context_features: str = "raw"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.layer is not None and (not isinstance(self.layer, str) or not self.layer):
            _fail("layer", self.layer, "must be a module path such as 'backbone.layer3', or null")
        c = _real("similarity_c", self.similarity_c)
        if c <= 1:
            _fail("similarity_c", self.similarity_c, "must be > 1 (the threshold is cos(pi / c))")
        object.__setattr__(self, "similarity_c", c)
        _choice("context_features", self.context_features, CONTEXT_FEATURES)


@dataclass(frozen=True)
class RPPGDSettings(IterativeSettings):
    """RP-PGD: sign steps on region-weighted CE over pixel states kept across steps, plus prototypes.

    Paper: "A Region-and-Prototype-Based Adversarial Attack to Enhance the Robustness of Segmentation
    Models", AAAI 2025 (ojs.aaai.org article 33122); authors' code github.com/yuxuan357/RP-PGD
    (``tool_train/train_sat_psp.py``, ``RPPGD`` and ``Attack``; loss in ``losses/rppgd.py``).

    Args:
        (all of IterativeSettings; registry defaults: alpha None = eps / steps, steps 3, random
        start, as the authors' ``Attack``; eps stays the library's 8/255 -- theirs is 0.03)
        layer: the source layer the prototype term reads, a module path (None: the model's
            ``default_feature_layer``; the authors use the last backbone stage, ``backbone.layer4``
            of a ResNet); read only when ``prototype_grad`` is true.
        prototype_grad: differentiate the prototype term through the features (default False: the
            authors' model detaches its features, so their prototype term moves nothing).
        intra_split: the threshold on (cos + 1) / 2 that splits the intra-class term into its low
            (weight 0.75) and high (0.25) part, in [0, 1], unitless (default 0.9, their ``lamda``).
    """

    alpha: float | None = None
    steps: int = 3
    layer: str | None = None
    prototype_grad: bool = False
    intra_split: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.layer is not None and (not isinstance(self.layer, str) or not self.layer):
            _fail("layer", self.layer, "must be a module path such as 'backbone.layer4', or null")
        _bool("prototype_grad", self.prototype_grad)
        object.__setattr__(self, "intra_split", _unit_interval("intra_split", self.intra_split))


@dataclass(frozen=True)
class DSSettings(_Flat):
    """Dynamic scaling: a random bilinear rescale of each image per step (arXiv:2111.11368).

    Args:
        scale_min, scale_max: the factor's range, 0 < min <= max (provisional default [0.5, 1.5]).
        scale_prob: per-image probability of rescaling, in [0, 1] (default 1).
    """

    scale_min: float = 0.5
    scale_max: float = 1.5
    scale_prob: float = 1.0

    def __post_init__(self) -> None:
        low, high = _positive("scale_min", self.scale_min), _positive("scale_max", self.scale_max)
        if low > high:
            _fail("scale_min", self.scale_min, f"must be <= scale_max={high}")
        object.__setattr__(self, "scale_min", low)
        object.__setattr__(self, "scale_max", high)
        object.__setattr__(self, "scale_prob", _unit_interval("scale_prob", self.scale_prob))


@dataclass(frozen=True)
class SISettings(_Flat):
    """Scale invariance (arXiv:1908.06281). Args: scale_copies m >= 1, copies x / 2^i (default 5)."""

    scale_copies: int = 5

    def __post_init__(self) -> None:
        _count("scale_copies", self.scale_copies)


@dataclass(frozen=True)
class VTSettings(_Flat):
    """Variance tuning (arXiv:2103.15571).

    Args:
        vt_samples: neighbours N >= 1 per step (default 20).
        vt_beta: neighbourhood radius as a multiple of eps, > 0 (default 1.5).
    """

    vt_samples: int = 20
    vt_beta: float = 1.5

    def __post_init__(self) -> None:
        _count("vt_samples", self.vt_samples)
        object.__setattr__(self, "vt_beta", _positive("vt_beta", self.vt_beta))


@dataclass(frozen=True)
class AdmixSettings(_Flat):
    """Admix (arXiv:2102.00436).

    Args:
        admix_copies: scale copies m1 >= 1 (default 5).
        admix_mixes: mixed images m2 >= 1 (default 3).
        admix_strength: eta >= 0, unitless (default 0.2).
        admix_source: "rolled" (the image itself, shifted; default) | "batch" (another image).
    """

    admix_copies: int = 5
    admix_mixes: int = 3
    admix_strength: float = 0.2
    admix_source: str = "rolled"

    def __post_init__(self) -> None:
        _count("admix_copies", self.admix_copies)
        _count("admix_mixes", self.admix_mixes)
        strength = _real("admix_strength", self.admix_strength)
        if strength < 0:
            _fail("admix_strength", self.admix_strength, "must be >= 0")
        object.__setattr__(self, "admix_strength", strength)
        _choice("admix_source", self.admix_source, ("rolled", "batch"))


@dataclass(frozen=True)
class SSASettings(_Flat):
    """Spectrum simulation (arXiv:2207.05382).

    Args:
        ssa_copies: copies N >= 1 (default 20).
        ssa_rho: spectrum mask range rho in (0, 1], M ~ U[1 - rho, 1 + rho] (default 0.5).
        ssa_sigma: noise standard deviation, fraction of the pixel range (None: eps).
    """

    ssa_copies: int = 20
    ssa_rho: float = 0.5
    ssa_sigma: float | None = None

    def __post_init__(self) -> None:
        _count("ssa_copies", self.ssa_copies)
        object.__setattr__(self, "ssa_rho", _unit_interval("ssa_rho", self.ssa_rho))
        if self.ssa_sigma is not None:
            sigma = _real("ssa_sigma", self.ssa_sigma)
            if sigma < 0:
                _fail("ssa_sigma", self.ssa_sigma, "must be >= 0")
            object.__setattr__(self, "ssa_sigma", sigma)


@dataclass(frozen=True)
class BSRSettings(_Flat):
    """Block shuffle and rotation (arXiv:2308.10299).

    Args:
        bsr_blocks: n >= 1, an n x n grid of blocks (default 2).
        bsr_copies: copies >= 1 (default 20).
        bsr_angle: tau, the largest rotation in degrees, in [0, 180] (default 24).
    """

    bsr_blocks: int = 2
    bsr_copies: int = 20
    bsr_angle: float = 24.0

    def __post_init__(self) -> None:
        _count("bsr_blocks", self.bsr_blocks)
        _count("bsr_copies", self.bsr_copies)
        angle = _real("bsr_angle", self.bsr_angle)
        if not 0 <= angle <= 180:
            _fail("bsr_angle", self.bsr_angle, "must lie in [0, 180] degrees")
        object.__setattr__(self, "bsr_angle", angle)


@dataclass(frozen=True)
class TargetedSettings(_Flat):
    """Targeted mode: the loss is descended towards a target label map (``pgd+targeted``).

    Args:
        target_rule: "permutation" (a random K-cycle of the classes per image, default) | "class".
        target_class: the class of ``target_rule="class"`` (default 0).
    """

    target_rule: str = "permutation"
    target_class: int = 0

    def __post_init__(self) -> None:
        _target_fields(self)


@dataclass(frozen=True)
class TDISettings(_Flat):
    """TASS's diverse inputs: shrink by up to ``tdi_shrink`` pixels, pad back, no mapping back.

    Paper: "Transferable Attack for Semantic Segmentation", He et al., arXiv:2307.16572 (the
    authors' code, ``attacks.py``, ``es_NI_DI_TI``); a variant of DI (arXiv:1803.06978).

    Args:
        tdi_shrink: k >= 1, pixels; h' ~ U{H - k, ..., H - 1} (at least 1), likewise w' (default 30).
        tdi_prob: per-image probability of transforming, in [0, 1] (default 0.7).
    """

    tdi_shrink: int = 30
    tdi_prob: float = 0.7

    def __post_init__(self) -> None:
        _count("tdi_shrink", self.tdi_shrink)
        object.__setattr__(self, "tdi_prob", _unit_interval("tdi_prob", self.tdi_prob))


@dataclass(frozen=True)
class BlurSettings(_Flat):
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
        _odd_kernel("blur_kernel", self.blur_kernel)
        object.__setattr__(self, "blur_nsig", _positive("blur_nsig", self.blur_nsig))


def code_revision(settings: AttackSettings) -> int:
    """The revision of the code behind ``settings``' numbers: 2 where the checks against the authors'
    code (README "Checked against the authors' code") changed them, else 1. Recorded in the flat
    settings only when above 1, so exactly the attacks whose numbers changed get a new settings hash:
    APGD's checkpoints one step later (``apgd``, ``sea``), TsallisPGD's q schedule (q_end reached at
    t = T), DAG's ``not_target`` active set (the predicted class's logit), SSA's gradient passed straight
    through its spectrum transform, and VT's neighbours drawn around x^t under NI."""
    parts = set(settings.name.split("+"))
    base = settings.base
    changed = (isinstance(base, (_APGDRuleSettings, TsallisPGDSettings))
               or (isinstance(base, DAGSettings) and base.active_set == "not_target")
               or "ssa" in parts or {"vt", "ni"} <= parts)
    return 2 if changed else 1


def build_options(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The options of flat settings (``to_dict()``, a result's attack settings) that build the attack
    again: all but its name and the code revision, which the running code decides."""
    return {k: v for k, v in flat.items() if k not in ("attack", "revision")}
