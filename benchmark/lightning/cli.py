"""``benchmark run``: a LightningCLI over the data module, the transfer module and the callbacks.

YAML and command-line overrides follow LightningCLI/jsonargparse conventions::

    benchmark run --config configs/default.yaml --attack.steps 40 --trainer.devices 8 --trainer.strategy ddp
    benchmark run --config configs/default.yaml --print_config

Groups: ``data`` (SegmentationDataModule), ``model`` (TransferModule), ``attack`` (AttackCallback),
``results`` (ResultsWriter), ``progress`` (the progress bar), ``trainer``; top-level ``logger`` (wandb | csv | none) and ``wandb``.
"""

from __future__ import annotations

import os
import sys
import warnings

import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger, WandbLogger

from benchmark.errors import BenchmarkError
from benchmark.lightning.attack_callback import AttackCallback
from benchmark.lightning.datamodule import SegmentationDataModule
from benchmark.lightning.module import TransferModule, source_specs
from benchmark.lightning.results_writer import ResultsWriter
from benchmark.lightning.saved_set import SavedSetCallback, data_arguments
from benchmark.models import get_model_entry
from benchmark.results.adv_manifest import read_manifest

TRAINER_DEFAULTS = {
    "inference_mode": False,  # attacks need autograd inside validation (pitfalls §11)
    "use_distributed_sampler": False,  # our ShardSampler neither pads nor drops (pitfalls §10)
    "enable_checkpointing": False,
    "enable_model_summary": False,
    "num_sanity_val_steps": 0,
    "accelerator": "auto",
    "devices": 1,
}


class BenchmarkProgressBar(TQDMProgressBar):
    """The validation bar, with images done and the attack being computed."""

    def __init__(self, refresh_rate: int = 1):
        super().__init__(refresh_rate=refresh_rate)
        self._images = 0

    def on_validation_start(self, trainer, pl_module) -> None:
        super().on_validation_start(trainer, pl_module)
        self._images = 0

    def show_attack(self, name: str, batch_size: int) -> None:
        bar = getattr(self, "_val_progress_bar", None)
        if bar is not None and not bar.disable:
            bar.set_postfix_str(f"images {self._images}+{batch_size}, attack {name}", refresh=True)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._images += len(batch["name"])
        super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)
        bar = getattr(self, "_val_progress_bar", None)
        if bar is not None and not bar.disable:
            bar.set_postfix_str(f"images {self._images}", refresh=True)


def _attack_names(callback: AttackCallback) -> list[str]:
    return callback.names


def _attack_seeds(callback: AttackCallback) -> list[int]:
    return callback.seeds


def _attack_ensemble(callback: AttackCallback) -> str:
    return callback.ensemble


class BenchmarkCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        self.add_adversarial_arguments(parser)
        parser.add_lightning_class_args(ResultsWriter, "results")
        parser.add_lightning_class_args(BenchmarkProgressBar, "progress")
        parser.add_argument("--logger", choices=["wandb", "csv", "none"], default="wandb",
                            help="where metrics go besides results.json (W&B runs offline by default)")
        parser.add_argument("--wandb.project", default="transegpgd-bench")
        parser.add_argument("--wandb.mode", choices=["offline", "online"], default="offline")
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.ignore_index", "model.ignore_index", apply_on="instantiate")

    def add_adversarial_arguments(self, parser, group: str = "attack", cls=AttackCallback) -> None:
        """The group that fills ``batch["adv"]`` and its links into the module."""
        parser.add_lightning_class_args(cls, group)
        parser.link_arguments(group, "model.conditions", compute_fn=_attack_names, apply_on="instantiate")
        parser.link_arguments(group, "model.seeds", compute_fn=_attack_seeds, apply_on="instantiate")
        parser.link_arguments(group, "model.ensemble", compute_fn=_attack_ensemble, apply_on="instantiate")

    def instantiate_trainer(self, **kwargs):
        self.datamodule.check_files()  # before the Trainer: data problems are the only output
        kwargs["logger"] = self._logger()
        return super().instantiate_trainer(**kwargs)

    def _logger(self):
        config = self.config
        out_dir = str(config.results.out_dir)
        if config.logger == "none":
            return False
        if config.logger == "csv":
            return CSVLogger(save_dir=out_dir, name="csv")
        return WandbLogger(save_dir=out_dir, project=config.wandb.project, offline=config.wandb.mode == "offline")


def _saved_sources(callback: SavedSetCallback) -> list[list[str]]:
    return callback.source_specs


def _saved_models(callback: SavedSetCallback) -> list[dict]:
    return callback.source_models


class EvaluateCLI(BenchmarkCLI):
    """``benchmark evaluate``: ``benchmark run`` with the saved-set reader in place of the attacks;
    the sources and their provenance come from the set's manifest."""

    def add_adversarial_arguments(self, parser, group: str = "adv", cls=None) -> None:
        super().add_adversarial_arguments(parser, group, SavedSetCallback)
        parser.link_arguments(group, "model.sources", compute_fn=_saved_sources, apply_on="instantiate")
        parser.link_arguments(group, "model.source_models", compute_fn=_saved_models, apply_on="instantiate")


class ConfigCheckCLI(BenchmarkCLI):
    """Parse and validate an experiment without building models, reading data or starting a Trainer.

    Checks the YAML against every signature, builds the attacks (all settings validated), constructs the
    data module (dataset name and options) and resolves every model name in the zoo.
    """

    def instantiate_classes(self) -> None:
        config = self.config
        self.attack = AttackCallback(**config.attack.as_dict())
        self.datamodule = SegmentationDataModule(**config.data.as_dict())
        specs = source_specs(config.model.source, config.model.sources)
        self.models = [get_model_entry(name) for name in [*(n for spec in specs for n in spec), *config.model.targets]]
        self.model = None

    def _add_configure_optimizers_method_to_model(self, subcommand) -> None:
        return None


def _make(cli_class: type[BenchmarkCLI], argv: list[str]) -> BenchmarkCLI:
    # `args` is the CLI's input; sys.argv stays the real command line so DDP can relaunch it.
    warnings.filterwarnings("ignore", message=r".*(does not have many workers|LeafSpec|Checkpoint directory"
                                              r"|LightningCLI's args parameter)")
    return cli_class(TransferModule, SegmentationDataModule, args=argv, run=False,
                     trainer_defaults=TRAINER_DEFAULTS, save_config_callback=None,
                     parser_kwargs={"prog": "benchmark run"}, auto_configure_optimizers=False,
                     seed_everything_default=False)


def evaluate_cli(argv: list[str]) -> int:
    """``benchmark evaluate --adv DIR --targets NAME... [benchmark run options]``.

    ``--targets a b`` is short for ``--model.targets [a, b]``; the set's dataset, split, images and
    resize policy are taken from its manifest (given before the user's options, and checked again
    against the data module before the first batch)."""
    argv = list(argv)
    if "--targets" in argv:
        at = argv.index("--targets")
        names = []
        while at + 1 + len(names) < len(argv) and not argv[at + 1 + len(names)].startswith("--"):
            names.append(argv[at + 1 + len(names)])
        argv[at:at + 1 + len(names)] = ["--model.targets", "[" + ", ".join(names) + "]"]
    adv = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--adv.adv_dir"), None)
    if adv is None and "--adv" in argv[:-1]:
        at = argv.index("--adv")
        adv = argv[at + 1]
        argv[at:at + 2] = ["--adv.adv_dir", adv]
    if adv is None:
        print("error: benchmark evaluate needs --adv RUN_DIR/adv (a set saved with results.save_adv true)",
              file=sys.stderr)
        return 2
    try:
        manifest = read_manifest(adv)  # files and budgets are checked when the reader is built
    except BenchmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return run_cli([*data_arguments(manifest), *argv], EvaluateCLI)


def check_config(argv: list[str]) -> ConfigCheckCLI:
    """Validate ``benchmark run`` arguments (e.g. ``["--config", path]``) without running anything."""
    return _make(ConfigCheckCLI, argv)


def run_cli(argv: list[str], cli_class: type[BenchmarkCLI] | None = None) -> int:
    """Parse, instantiate (every setting validated before any work), validate, clean up."""
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        cli = _make(cli_class or BenchmarkCLI, argv)
        cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
    except BenchmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0
