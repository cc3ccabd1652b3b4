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
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.loggers import CSVLogger, WandbLogger

from benchmark.errors import BenchmarkError
from benchmark.lightning.preflight import (check_accelerator, check_trainer_options, check_wandb_online, launched_rank,
                                           prepare_out_dir, remove_empty_folders)
from benchmark.lightning.stopping import EXIT_CODES, Interrupted, requeue_slurm_job, under_slurm
from benchmark.lightning.stopping import install as install_signal_handlers
from benchmark.results.journal import journal_dir, journalled_images
from benchmark.results.outdir import RunLock
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
    fresh = False  # set by run_cli from --fresh
    lock: RunLock | None = None  # the out_dir lock of this run (the first process only)

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
        """Everything checkable is checked here, before the Trainer exists (preflight)."""
        config = self.config
        check_trainer_options(dict(config.trainer))
        check_accelerator(config.trainer.accelerator)
        if config.logger == "wandb" and config.wandb.mode == "online":
            check_wandb_online()
        writer = self._get(self.config_init, "results")
        writer.run_config = fingerprint_config(config)
        if launched_rank() == 0:  # DDP workers started by Lightning re-run this: only the first process
            self.lock = prepare_out_dir(config.results.out_dir, fresh=self.fresh)
            self.datamodule.check_files()
        kwargs["logger"] = self._logger()
        if under_slurm():  # our SIGUSR1 handling requeues; Lightning's would checkpoint every model first
            from lightning.fabric.plugins.environments import SLURMEnvironment

            kwargs["plugins"] = [SLURMEnvironment(auto_requeue=False)]
        return super().instantiate_trainer(**kwargs)

    def _logger(self):
        config = self.config
        out_dir = str(config.results.out_dir)
        if config.logger == "none":
            return False
        if config.logger == "csv":
            return CSVLogger(save_dir=out_dir, name="csv")
        return WandbLogger(save_dir=out_dir, project=config.wandb.project, offline=config.wandb.mode == "offline",
                           id=wandb_run_id(out_dir), resume="allow")


# Options that decide where results go or how they are shown, not what they are: left out of the
# fingerprint, so a resumed run may change them (the world size among them).
NOT_FINGERPRINTED = ("results.out_dir", "results.quiet", "results.num_logged_images", "logger", "wandb", "progress",
                     "trainer.devices", "trainer.num_nodes", "trainer.strategy", "trainer.accelerator",
                     "trainer.enable_progress_bar", "data.num_workers", "data.preflight", "config")


def fingerprint_config(config) -> dict:
    """The resolved configuration minus :data:`NOT_FINGERPRINTED`, as plain data."""
    flat = {}
    for key, value in config.as_dict().items() if hasattr(config, "as_dict") else dict(config).items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return {k: v for k, v in sorted(flat.items())
            if not any(k == skip or k.startswith(skip + ".") for skip in NOT_FINGERPRINTED)}


def wandb_run_id(out_dir) -> str:
    """The W&B run id of ``out_dir``: kept beside the journal, so a resumed run continues its W&B run."""
    path = journal_dir(out_dir) / "wandb-id"
    if path.is_file():
        return path.read_text().strip()
    import secrets

    run_id = secrets.token_hex(4)
    if launched_rank() == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(run_id + "\n")
    return run_id


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
    """Parse, preflight (every setting and the data validated before any work), validate, clean up.

    ``--fresh`` discards an interrupted run's journal in ``out_dir`` instead of resuming it;
    ``--debug`` shows tracebacks. Exit status: 0 done, 2 refused input, 130/143 stopped by
    SIGINT/SIGTERM (resumable), 1 any other failure."""
    os.environ.setdefault("WANDB_SILENT", "true")
    argv = list(argv)
    flags = {flag: flag in argv for flag in ("--fresh", "--debug")}
    argv = [a for a in argv if a not in flags]
    cli_class = cli_class or BenchmarkCLI
    cli_class.fresh = flags["--fresh"]
    install_signal_handlers()
    cli, status = None, 0
    try:
        cli = _make(cli_class, argv)
        cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
    except (SIGTERMException, Interrupted) as err:
        name = "SIGTERM" if isinstance(err, SIGTERMException) else err.signal_name
        out = cli.config.results.out_dir if cli is not None else "the out_dir"
        resume = requeue_slurm_job() if name == "SIGUSR1" else "rerun the same command to resume"
        print(f"error: stopped by {name} after the batch in flight; {journalled_images(out)} images are journalled in "
              f"{out}: {resume}", file=sys.stderr)
        status = EXIT_CODES[name]
    except BenchmarkError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        status = 2
    except Exception as err:  # anything else: one line unless --debug
        if flags["--debug"]:
            raise
        print(f"error: {type(err).__name__}: {one_line(err)} (rerun with --debug for the traceback)", file=sys.stderr)
        status = 1
    finally:
        if cli is not None and cli.lock is not None:
            cli.lock.release()
            remove_empty_folders(cli.config.results.out_dir)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return status


def one_line(err: BaseException) -> str:
    """An error's message on one line; for an error re-raised from a DataLoader worker (its message
    embeds the worker's traceback) the original message, from the traceback's last line."""
    text = str(err).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(text.split("\n")[:1]) if text else type(err).__name__
