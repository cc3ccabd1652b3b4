"""A plain-PyTorch segmentation model as a user writes it, for the factory tests: its source text, written
into a test's folder, and a zoo YAML entry naming it."""

from pathlib import Path

import torch

SOURCE = '''\
"""A user's tiny segmentation network: no mmseg, normalisation and upsampling inside."""
import torch
import torch.nn.functional as F
from torch import nn


class TinyNet(nn.Module):
    default_feature_layer = "body.2"

    def __init__(self, num_classes=7, width=8):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                  nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, images):
        logits = self.head(self.body((images - self.mean) / self.std))
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


def build(num_classes=7, width=8):
    return TinyNet(num_classes, width)


def trained(num_classes=7, width=8):
    """Weights of its own (a factory with checkpoint: null)."""
    torch.manual_seed(1)
    return TinyNet(num_classes, width)


def broken(**kwargs):
    raise ValueError("width must be even")


def not_a_module():
    return {"net": TinyNet()}


def downsampling():
    return nn.Conv2d(3, 7, 1, stride=2)


NOT_CALLABLE = 3
'''


def write_model(folder: Path) -> Path:
    """``folder/user_model.py`` holding :data:`SOURCE`."""
    path = folder / "user_model.py"
    path.write_text(SOURCE)
    return path


def save_weights(model_file: Path, path: Path, seed: int = 0) -> Path:
    """A deterministic checkpoint of ``build()`` from ``model_file``: ``torch.save`` of its state dict."""
    from benchmark.plugins import import_spec

    torch.manual_seed(seed)
    net = import_spec(str(model_file)).build()
    with torch.no_grad():  # BatchNorm statistics that are not the initial ones
        net.body[1].running_mean.uniform_(-0.1, 0.1)
        net.body[1].running_var.uniform_(0.5, 1.5)
    torch.save(net.state_dict(), path)
    return path


def entry_yaml(name: str, model_file: Path, checkpoint: Path | None, attribute: str = "build", **extra) -> str:
    """One zoo entry (YAML text) of the factory ``model_file:attribute`` for synthetic-voc (7 classes)."""
    lines = [f"{name}:", f"  factory: {model_file}:{attribute}", "  num_classes: 7", "  dataset: synthetic-voc",
             f"  checkpoint: {checkpoint if checkpoint is not None else 'null'}"]
    lines += [f"  {key}: {value}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"
