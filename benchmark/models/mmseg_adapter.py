"""The mmsegmentation adapter: the only module that imports mmseg, mmengine or mmcv.

:func:`build_segmentor` turns an mmseg config (and optionally a checkpoint) into a plain
:class:`SegmentationModel`: RGB images in [0, 1] go in, logits at input resolution come out, and
mean/std normalisation, whole/slide inference and mmseg's metadata stay inside.
"""

from __future__ import annotations

import copy
import os
import warnings
from contextlib import contextmanager
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.utils.checkpoint
from torch import nn

from benchmark import quiet
from benchmark.errors import ConfigError
from benchmark.models.checkpoints import LoadReport
from benchmark.models.wrapper import SegmentationWrapper, load_checkpoint

MODES = ("whole", "slide")


class SegmentationModel(SegmentationWrapper):
    """An mmseg segmentor behind the benchmark's model contract (:class:`SegmentationWrapper`).

    Input: float RGB images in [0, 1], shape (N, 3, H, W), any H and W (values slightly outside
    [0, 1], e.g. at an NI look-ahead point, are accepted). Output: float logits (N, K, H, W) at
    input resolution, computed by the segmentor's own ``inference`` (whole or sliding window),
    differentiable with respect to the input. Layer names are relative to the segmentor.

    Attributes (besides the base's):
        config_name: the config the model was built from.
    """

    def __init__(self, segmentor: nn.Module, mean: torch.Tensor, std: torch.Tensor,
                 class_names: tuple[str, ...], config_name: str, checkpoint_sha256: str | None,
                 checkpoint_report: LoadReport | None = None):
        super().__init__(class_names, checkpoint_sha256, checkpoint_report)
        self.segmentor = segmentor
        # Buffers on the [0, 1] scale: mmseg's 0-255 mean/std divided by 255.
        self.register_buffer("mean", mean.view(1, -1, 1, 1) / 255.0, persistent=False)
        self.register_buffer("std", std.view(1, -1, 1, 1) / 255.0, persistent=False)
        self.config_name = config_name

    @property
    def network(self) -> nn.Module:
        return self.segmentor

    @property
    def mode(self) -> str:
        return self.segmentor.test_cfg.get("mode", "whole")

    def _inputs(self, images: torch.Tensor) -> tuple[torch.Tensor, list[dict]]:
        self._check_images(images, self.mean.shape[1])
        height, width = images.shape[-2:]
        # Fresh metadata per call: mmseg's slide inference writes into the first dict.
        metas = [dict(ori_shape=(height, width), img_shape=(height, width), pad_shape=(height, width),
                      padding_size=[0, 0, 0, 0]) for _ in range(images.shape[0])]
        return ((images - self.mean) / self.std).contiguous(memory_format=self.memory_format), metas

    def _infer(self, normalised: torch.Tensor, metas: list[dict]) -> torch.Tensor:
        return self.segmentor.inference(normalised, metas)

    def _encode(self, normalised: torch.Tensor, metas: list[dict]) -> torch.Tensor:
        return self.segmentor.encode_decode(normalised, metas)  # whole image, no sliding windows

    @property
    def default_feature_layer(self) -> str | None:
        """The layer a feature loss (FSPGD) uses unless told otherwise: the third of four backbone
        stages, ``backbone.layer3`` of a ResNet, else ``backbone[2]`` (the third feature map the
        backbone returns: MiT, Swin, ...); None without a backbone."""
        backbone = getattr(self.segmentor, "backbone", None)
        if backbone is None:
            return None
        return "backbone.layer3" if hasattr(backbone, "layer3") else "backbone[2]"

    def extra_repr(self) -> str:
        return f"config={self.config_name!r}, num_classes={self.num_classes}, mode={self.mode!r}"


def build_segmentor(config: str | os.PathLike | Mapping, checkpoint: str | os.PathLike | None = None,
                    device: str | torch.device = "cpu", mode: str | None = None,
                    crop_size: tuple[int, int] | None = None, stride: tuple[int, int] | None = None,
                    strict: bool = True, expected_sha256: str | None = None,
                    cfg_options: Mapping[str, Any] | None = None,
                    checkpoint_windows: bool = False,
                    default_crop_size: tuple[int, int] | None = None) -> SegmentationModel:
    """Build an mmseg segmentor as a frozen, eval-mode :class:`SegmentationModel`.

    Args:
        config: a config file path, a config name shipped inside mmseg (e.g.
            ``"pspnet/pspnet_r50-d8_4xb4-20k_voc12aug-512x512.py"`` or just its file name), or a
            config mapping with a ``model`` key.
        checkpoint: optional checkpoint file: any format :func:`benchmark.models.checkpoints.read_checkpoint`
            reads (mmengine / mmcv checkpoints, bare state dicts, ``.safetensors``), read without
            running code from it; a ``module.`` (DDP) key prefix is stripped.
        device: where the model lives; never guessed.
        mode: "whole" or "slide"; None keeps the config's ``test_cfg`` mode.
        crop_size, stride: (h, w) in pixels for slide inference; None keeps the config's values.
        strict: key mismatches between checkpoint and model are an error (default); False loads the
            overlap and warns with the counts, and still refuses a file matching under half the tensors.
        expected_sha256: if given, the checkpoint's sha256 must equal it (checked before loading).
        cfg_options: dotted config overrides, e.g. ``{"model.backbone.depth": 18}`` (tiny variants).
        checkpoint_windows: in slide mode, keep no activations of the windows during the forward
            pass and recompute each window in the backward pass (activation checkpointing per window).
            Gradients are unchanged; an attack step then needs the memory of one window instead of
            all of them, for one extra forward pass (pitfalls §20).
        default_crop_size: (h, w) of the windows when slide mode is asked of a config whose
            ``test_cfg`` defines none (mmseg's Cityscapes CNN configs test in whole mode): the zoo
            passes the training crop; the stride is then two thirds of it, rounded (mmseg's 512x1024
            slide configs use 341x683). None: such a request is an error.
    """
    with _quiet_imports():
        from mmengine.config import Config

    cfg = _load_config(config, Config)
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    model_cfg = cfg.get("model")
    if model_cfg is None:
        raise ConfigError(f"config {config}: no 'model' section")
    model_cfg = _sanitise(copy.deepcopy(model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else model_cfg))
    test_cfg = dict(model_cfg.get("test_cfg") or {})
    slide = (mode or test_cfg.get("mode", "whole")) == "slide"
    if slide and default_crop_size is not None and "crop_size" not in test_cfg and crop_size is None:
        crop_size = tuple(default_crop_size)
        stride = stride or tuple(round(2 * side / 3) for side in crop_size)
    model_cfg["test_cfg"] = _test_cfg(test_cfg, mode, crop_size, stride, config)
    mean, std = _mean_std(model_cfg, config)
    model_cfg.pop("data_preprocessor", None)  # normalisation lives in SegmentationModel

    segmentor = _build(model_cfg, config)
    if checkpoint_windows and model_cfg["test_cfg"]["mode"] == "slide":
        segmentor.encode_decode = _checkpointed(segmentor.encode_decode)
    sha256, report = (None, None) if checkpoint is None else load_checkpoint(segmentor, checkpoint,
                                                                             expected_sha256, strict)
    model = SegmentationModel(segmentor, mean, std, _class_names(cfg, segmentor), _config_name(config),
                              sha256, report)
    return model.frozen(device)


def _checkpointed(encode_decode):
    """``encode_decode`` under activation checkpointing, called by mmseg's slide inference per window."""

    def run(inputs: torch.Tensor, batch_img_metas: list[dict]) -> torch.Tensor:
        if not torch.is_grad_enabled():
            return encode_decode(inputs, batch_img_metas)
        # snapshot: slide inference rewrites img_shape before each window, and the recomputation
        # in the backward pass must see this window's metadata
        metas = [dict(meta) for meta in batch_img_metas]
        return torch.utils.checkpoint.checkpoint(encode_decode, inputs, metas, use_reentrant=False)

    return run


def mmseg_config_dir() -> Path:
    """The directory of configs shipped inside the mmseg wheel."""
    return Path(_import_mmseg().__file__).parent / ".mim" / "configs"


def library_versions() -> dict[str, str]:
    """Versions of the OpenMMLab libraries, for result files."""
    import mmcv
    import mmengine
    import mmseg

    return {"mmseg": mmseg.__version__, "mmengine": mmengine.__version__, "mmcv": mmcv.__version__}


@contextmanager
def _quiet_imports():
    """Silence the known-harmless warnings of mmcv-lite, mmengine and mmseg (:mod:`benchmark.quiet`), no others."""
    with warnings.catch_warnings():
        quiet.ignore_known_warnings()
        yield


def _load_config(config, config_cls):
    if isinstance(config, Mapping):
        return config_cls(dict(config))
    path = Path(config)
    if not path.is_file():
        path = _find_shipped_config(str(config))
    try:
        with _quiet_imports(), _cached_metafiles():
            return config_cls.fromfile(str(path))
    except Exception as err:  # mmengine raises many types for a bad file
        raise ConfigError(f"cannot read mmseg config {path}: {err}") from None


_METAFILE_INDEX: dict[str, dict[str, Any]] = {}


@contextmanager
def _cached_metafiles():
    """Read mmseg's model-index metafiles once per process instead of once per ``mmseg::`` base.

    mmengine resolves every ``mmseg::_base_/...`` reference by parsing all ~50 ``metafile.yml`` files of
    the package (about 0.2 s per model on a 2-core CPU); the index it builds depends only on the
    installed package, so it is kept. Same results and errors as mmengine's
    ``_get_cfg_metainfo``; without that function (another mmengine) nothing changes."""
    from mmengine.config import utils

    original = getattr(utils, "_get_cfg_metainfo", None)
    if original is None:
        yield
        return

    def cached(package_path: str, cfg_path: str) -> dict:
        if package_path not in _METAFILE_INDEX:
            index: dict[str, Any] = {}
            mim = Path(package_path) / ".mim"
            for meta_path in utils.load(str(mim / "model-index.yml"))["Import"]:
                for model_cfg in utils.load(str(mim / meta_path))["Models"]:
                    if "Config" in model_cfg:  # the first weights of a config, as mmengine picks
                        index.setdefault(model_cfg["Config"].partition("/")[-1], model_cfg)
            _METAFILE_INDEX[package_path] = index
        if cfg_path not in _METAFILE_INDEX[package_path]:
            raise ValueError(f"{cfg_path} is not in the metafiles of {package_path}")
        return _METAFILE_INDEX[package_path][cfg_path]

    utils._get_cfg_metainfo = cached
    try:
        yield
    finally:
        utils._get_cfg_metainfo = original


def _find_shipped_config(name: str) -> Path:
    root = mmseg_config_dir()
    name = name if name.endswith(".py") else f"{name}.py"
    direct = root / name
    if direct.is_file():
        return direct
    matches = sorted(root.glob(f"*/{Path(name).name}"))
    if len(matches) == 1:
        return matches[0]
    raise ConfigError(f"mmseg config {name!r} is neither a file nor a config shipped with mmseg")


def _sanitise(node):
    """Recursively: SyncBN -> BN, drop init_cfg, clear pretrained (building never downloads)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "init_cfg":
                continue
            if key == "pretrained":
                out[key] = None
                continue
            out[key] = _sanitise(value)
        if out.get("type") == "SyncBN":
            out["type"] = "BN"
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(_sanitise(item) for item in node)
    return node


def _test_cfg(test_cfg: dict, mode, crop_size, stride, config) -> dict:
    out = dict(test_cfg)
    out["mode"] = mode or out.get("mode", "whole")
    if out["mode"] not in MODES:
        raise ConfigError(f"config {config}: inference mode must be one of {MODES}, got {out['mode']!r}")
    if crop_size is not None:
        out["crop_size"] = tuple(int(v) for v in crop_size)
    if stride is not None:
        out["stride"] = tuple(int(v) for v in stride)
    if out["mode"] == "slide" and not ("crop_size" in out and "stride" in out):
        raise ConfigError(f"config {config}: slide inference needs crop_size and stride")
    return out


def _mean_std(model_cfg: dict, config) -> tuple[torch.Tensor, torch.Tensor]:
    pre = model_cfg.get("data_preprocessor") or {}
    mean, std = pre.get("mean"), pre.get("std")
    if mean is None or std is None:
        raise ConfigError(f"config {config}: model.data_preprocessor must define mean and std")
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)


def _import_mmseg():
    """Import mmseg, turning a missing or incompatible mmcv into one clear line."""
    try:
        with _quiet_imports():
            import mmseg
            from mmseg.utils import register_all_modules
    except ModuleNotFoundError as err:
        if err.name != "mmcv":
            raise
        raise ConfigError("mmsegmentation needs mmcv, which is not installed: pip install 'mmcv-lite>=2.0,<2.2' "
                          "(the package's [lite] extra), or a full mmcv 2.0/2.1 with compiled ops") from None
    except AssertionError as err:  # mmseg asserts its supported mmcv range at import
        raise ConfigError(f"mmsegmentation refuses the installed mmcv: {err}") from None
    with _quiet_imports():  # imports mmseg.models, and with it mmcv's transformer bricks
        register_all_modules(init_default_scope=False)
    return mmseg


def _build(model_cfg: dict, config) -> nn.Module:
    _import_mmseg()
    with _quiet_imports():
        from mmengine.config import ConfigDict
        from mmseg.registry import MODELS

    try:
        with _quiet_imports():
            segmentor = MODELS.build(ConfigDict(model_cfg))
    except (KeyError, TypeError, ValueError, AssertionError) as err:
        raise ConfigError(f"cannot build the model of config {config}: {err}") from None
    if not hasattr(segmentor, "inference"):
        raise ConfigError(f"config {config}: model type {model_cfg.get('type')!r} has no inference()")
    return segmentor


def _class_names(cfg, segmentor) -> tuple[str, ...]:
    num_classes = int(segmentor.decode_head.num_classes)
    names = cfg.get("class_names")
    if names is None:
        names = _dataset_classes(cfg)
    if names is None or len(names) != num_classes:
        names = [f"class_{index}" for index in range(num_classes)]
    return tuple(str(name) for name in names)


def _dataset_classes(cfg):
    from mmseg.registry import DATASETS

    dataset_type = cfg.get("dataset_type")
    dataset_cls = DATASETS.get(dataset_type) if isinstance(dataset_type, str) else None
    metainfo = getattr(dataset_cls, "METAINFO", None) or {}
    return metainfo.get("classes")


def _config_name(config) -> str:
    if isinstance(config, Mapping):
        return "<dict>"
    return Path(config).name
