"""``benchmark evaluate``: evaluate targets on a saved adversarial set instead of attacking.

:class:`SavedSetCallback` takes the place of the attack callback: it reads the set's manifest, checks
every file's sha256 and every image's budget before the Trainer starts, and for each validation batch
puts the saved adversarial images into ``batch["adv"]`` (same keys as the attack callback). Everything
else -- data module, thin module, metrics, results writer, DDP -- is ``benchmark run``'s own; the
result records the set's manifest as its provenance.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from benchmark.errors import ConfigError, DataError
from benchmark.lightning import ADV_KEY, AdvKey
from benchmark.lightning.attack_callback import AdversarialSource
from benchmark.results import CLEAN, AttackInfo, Provenance
from benchmark.results.adv_manifest import (MANIFEST, AdvManifest, check_budget, check_files, condition_path,
                                            read_manifest, read_png)


def data_arguments(manifest: AdvManifest) -> list[str]:
    """``benchmark run`` data arguments that select a set's dataset, split, images and resize policy."""
    dataset = manifest.dataset
    match = re.match(r"resize=(\w+);", dataset.input_policy)
    limit = "null" if dataset.image_limit is None else str(dataset.image_limit)
    shard = [] if dataset.shard is None else ["--data.shard", dataset.shard.text]
    return ["--data.dataset", dataset.name, "--data.split", dataset.split, "--data.limit", limit,
            "--data.resize", match.group(1) if match else "none", "--data.generate_if_missing", "false", *shard]


class SavedSetCallback(AdversarialSource):
    """Serve a saved adversarial set (``results.save_adv``) as ``batch["adv"]``.

    Args:
        adv_dir: the set's folder (``RUN_DIR/adv``, holding ``manifest.json``).
    """

    def __init__(self, adv_dir: str):
        super().__init__()
        from benchmark.fileio import sha256_file

        self.adv_dir = Path(adv_dir)
        self.manifest = read_manifest(self.adv_dir)
        check_files(self.adv_dir, self.manifest)
        check_budget(self.adv_dir, self.manifest)
        self.seeds = list(self.manifest.seeds)
        self.adv_format = "png_uint8"
        self.provenance = Provenance(adv_dir=str(self.adv_dir), manifest_sha256=sha256_file(self.adv_dir / MANIFEST))
        modes = {s.ensemble for s in self.manifest.sources if s.ensemble is not None}
        self.ensemble = modes.pop() if modes else "logits"

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.manifest.attacks]

    def attack_infos(self) -> tuple[AttackInfo, ...]:
        return self.manifest.attacks

    def eps(self, attack: str) -> float:
        return next(a.settings["eps"] for a in self.manifest.attacks if a.name == attack)

    @property
    def source_specs(self) -> list[list[str]]:
        return [list(s.models) for s in self.manifest.sources]

    @property
    def source_models(self) -> list[dict]:
        return [{"name": m.name, "config": m.config, "checkpoint_sha256": m.checkpoint_sha256,
                 "mode": m.inference_mode, **({} if m.origin is None else {"origin": m.origin.to_dict()})}
                for m in self.manifest.models]

    def setup(self, trainer, pl_module, stage: str) -> None:
        data, expected = trainer.datamodule, self.manifest.dataset
        names = sorted(sample.name for sample in data.dataset.samples)
        if (data.dataset_name, data.split, data.input_policy) != (expected.name, expected.split, expected.input_policy) \
                or names != list(self.manifest.images):
            raise ConfigError(f"{self.adv_dir}: the set holds {len(self.manifest.images)} images of "
                              f"{expected.name}/{expected.split} ({expected.input_policy}); the data module reads "
                              f"{len(names)} images of {data.dataset_name}/{data.split} ({data.input_policy})")

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        device = batch["image"].device
        clean = (batch["image"] * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        for name, pixels in zip(batch["name"], clean):
            saved = read_png(self.adv_dir / condition_path(CLEAN, name))
            if saved.shape != pixels.shape or not np.array_equal(saved, pixels):
                raise DataError(f"{self.adv_dir}: the saved clean image of {name!r} differs from the dataset's "
                                "(another data root, resize policy or dataset version?)")
        adversarial = {}
        for condition in self.manifest.conditions()[1:]:
            stack = np.stack([read_png(self.adv_dir / condition_path(condition, name)) for name in batch["name"]])
            images = torch.from_numpy(stack).permute(0, 3, 1, 2).float().div_(255.0)
            adversarial[AdvKey(*condition)] = images.to(device=device, dtype=batch["image"].dtype)
        batch[ADV_KEY] = adversarial
