"""``benchmark run``: a LightningCLI over the data module, the transfer module and the callbacks.

YAML and command-line overrides follow LightningCLI/jsonargparse conventions::

    benchmark run --config configs/default.yaml --attack.steps 40 --trainer.devices 8 --trainer.strategy ddp
    benchmark run --config configs/default.yaml --print_config

Groups: ``data`` (SegmentationDataModule), ``model`` (TransferModule), ``attack`` (AttackCallback),
``results`` (ResultsWriter), ``progress`` (the progress bar), ``trainer``; top-level ``logger``
(wandb | csv | none) and ``wandb``.

Beside it: :mod:`~benchmark.lightning.finalize` (``benchmark finalize``), :mod:`~benchmark.lightning.run_config`
(the run's fingerprint, W&B config and run id) and :mod:`~benchmark.lightning.error_lines` (one-line errors).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.loggers import CSVLogger

from benchmark import quiet
from benchmark.errors import BenchmarkError, ConfigError
from benchmark.lightning.error_lines import one_line, parser_error_line, storage_error_line
from benchmark.lightning.preflight import (check_accelerator, check_trainer_options, check_wandb_online, launched_rank,
                                           prepare_out_dir, remove_empty_folders)
from benchmark.lightning.run_config import fingerprint_config, resolved_config, wandb_run_id
from benchmark.lightning.runlog import close_run_log, open_run_log, say
from benchmark.lightning.stopping import EXIT_CODES, Interrupted, requeue_slurm_job, under_slurm
from benchmark.lightning.stopping import install as install_signal_handlers
from benchmark.results.journal import journalled_images
from benchmark.results.outdir import RunLock
from benchmark.lightning.attack_callback import AttackCallback
from benchmark.lightning.datamodule import SegmentationDataModule
from benchmark.lightning.logging import BackgroundWandbLogger
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


# Trainer options that only training uses, or that the benchmark sets or refuses itself: hidden from
# ``benchmark run --help`` (still settable; the refused ones fail in one line before any work).
HIDDEN_TRAINER_OPTIONS = (
    "max_epochs", "min_epochs", "max_steps", "min_steps", "max_time", "limit_train_batches", "limit_test_batches",
    "limit_predict_batches", "val_check_interval", "check_val_every_n_epoch", "num_sanity_val_steps",
    "log_every_n_steps", "enable_checkpointing", "accumulate_grad_batches", "gradient_clip_val",
    "gradient_clip_algorithm", "reload_dataloaders_every_n_epochs", "use_distributed_sampler", "detect_anomaly",
    "sync_batchnorm", "model_registry", "barebones", "inference_mode", "logger", "enable_model_summary",
    "fast_dev_run", "overfit_batches", "limit_val_batches", "profiler", "default_root_dir",
)


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    return [item.strip() for item in value.split(",") if item.strip()] if value else None


class BenchmarkCLI(LightningCLI):
    """Run a transfer benchmark: attack on the sources, evaluate every target (docs/how-to/run-experiments.md).
    Extra flags: --fresh (discard an interrupted run's journal), --takeover (take the out_dir
    lock of a run that is gone, e.g. on a lost node), --debug (tracebacks)."""

    prog = "benchmark run"
    fresh = False  # set by run_cli from --fresh
    takeover = False  # set by run_cli from --takeover
    finalize = False  # set by finalize_cli: write the result of a complete journal, attack nothing
    argv: list[str] = []  # the command line, for run.log
    lock: RunLock | None = None  # the out_dir lock of this run (the first process only)
    run_log = None  # the run.log handler (the first process only)

    def add_default_arguments_to_parser(self, parser) -> None:
        """No ``--seed_everything``: the attacks' seed is ``attack.seed`` / ``attack.seeds``, the only one."""

    def _set_seed(self) -> None:
        pass  # see add_default_arguments_to_parser: nothing random happens outside the seeded attacks

    def parse_arguments(self, parser, args) -> None:
        try:
            super().parse_arguments(parser, args)
        except argparse.ArgumentError as err:
            raise ConfigError(parser_error_line(err, parser)) from None

    def add_arguments_to_parser(self, parser) -> None:
        self.add_adversarial_arguments(parser)
        parser.add_lightning_class_args(ResultsWriter, "results")
        parser.add_lightning_class_args(BenchmarkProgressBar, "progress")
        parser.add_argument("--logger", choices=["wandb", "csv", "none"], default="wandb",
                            help="where metrics go besides results.json (W&B runs offline by default)")
        parser.add_argument("--wandb.project", default=os.environ.get("WANDB_PROJECT", "transegpgd-bench"),
                            help="W&B project (default: $WANDB_PROJECT or transegpgd-bench)")
        parser.add_argument("--wandb.mode", choices=["offline", "online"],
                            default="online" if os.environ.get("WANDB_MODE") == "online" else "offline",
                            help="offline (default; `wandb sync` later) or online (needs `wandb login`); $WANDB_MODE")
        parser.add_argument("--wandb.name", type=str | None, default=os.environ.get("WANDB_NAME"),
                            help="run name (default: $WANDB_NAME, else W&B's)")
        parser.add_argument("--wandb.group", type=str | None, default=os.environ.get("WANDB_RUN_GROUP"),
                            help="run group (default: $WANDB_RUN_GROUP)")
        parser.add_argument("--wandb.tags", type=list[str] | None, default=_env_list("WANDB_TAGS"),
                            help="run tags (default: $WANDB_TAGS, comma-separated)")
        parser.add_argument("--wandb.entity", type=str | None, default=os.environ.get("WANDB_ENTITY"),
                            help="team or user (default: $WANDB_ENTITY)")
        parser.add_argument("--wandb.quiet", type=bool, default=os.environ.get("WANDB_SILENT") == "true",
                            help="hide wandb's own messages (default: $WANDB_SILENT)")
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.ignore_index", "model.ignore_index", apply_on="instantiate")
        parser.link_arguments("results.num_logged_images", "model.num_examples")
        for action in parser._actions:
            name = action.dest.split(".", 1)[1] if action.dest.startswith("trainer.") else None
            if (name and name.split(".")[0] in HIDDEN_TRAINER_OPTIONS) or action.dest == "model.source_models":
                action.help = argparse.SUPPRESS
        # the benchmark's own groups first in --help, the Trainer's last
        trainer = [g for g in parser._action_groups if g.title.startswith("Customize every aspect of training")]
        for group in trainer:
            group.title = "Trainer (devices, nodes, strategy, precision; training-only options are hidden)"
        parser._action_groups = [g for g in parser._action_groups if g not in trainer] + trainer

    def add_adversarial_arguments(self, parser, group: str = "attack", cls=AttackCallback) -> None:
        """The group that fills ``batch["adv"]`` and its links into the module."""
        parser.add_lightning_class_args(cls, group)
        parser.link_arguments(group, "model.conditions", compute_fn=_attack_names, apply_on="instantiate")
        parser.link_arguments(group, "model.seeds", compute_fn=_attack_seeds, apply_on="instantiate")
        parser.link_arguments(group, "model.ensemble", compute_fn=_attack_ensemble, apply_on="instantiate")

    def instantiate_trainer(self, **kwargs):
        """Everything checkable is checked here, before the Trainer exists (preflight)."""
        config = self.config
        if config.trainer.get("logger") is not None:
            raise ConfigError("set the logger with --logger wandb|csv|none, not --trainer.logger")
        check_trainer_options(dict(config.trainer))
        check_accelerator(config.trainer.accelerator)
        if config.logger == "wandb" and config.wandb.mode == "online":
            check_wandb_online()
        writer = self._get(self.config_init, "results")
        writer.run_config = fingerprint_config(config)
        writer.finalize = self.finalize
        if launched_rank() == 0:  # DDP workers started by Lightning re-run this: only the first process
            self.lock = prepare_out_dir(config.results.out_dir, fresh=self.fresh, takeover=self.takeover)
            try:
                self.run_log = open_run_log(config.results.out_dir, [self.prog.split()[-1], *self.argv])
                (Path(config.results.out_dir) / "config.yaml").write_text(self.parser.dump(config, skip_none=False))
                self.datamodule.check_files()
                attacks = self._get(self.config_init, "attack")
                if isinstance(attacks, AttackCallback) and not self.finalize:  # the job's size (plan: its time)
                    from benchmark.lightning.plan import job_totals_line

                    say(job_totals_line(self.datamodule, attacks, config))
            except BaseException:  # refused at preflight: leave no lock (and no open log) behind
                self.release()
                raise
        try:
            kwargs["logger"] = self._logger()
            if under_slurm():  # our SIGUSR1 handling requeues; Lightning's would checkpoint every model first
                from lightning.fabric.plugins.environments import SLURMEnvironment

                kwargs["plugins"] = [SLURMEnvironment(auto_requeue=False)]
            return super().instantiate_trainer(**kwargs)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Close run.log and release the out_dir lock (every exit path the process controls)."""
        close_run_log(self.run_log)
        self.run_log = None
        if self.lock is not None:
            self.lock.release()
            remove_empty_folders(self.config.results.out_dir)

    def _logger(self):
        config = self.config
        out_dir = str(config.results.out_dir)
        if config.logger == "none":
            return False
        if config.logger == "csv":
            return CSVLogger(save_dir=out_dir, name="csv")
        if config.wandb.quiet:
            os.environ["WANDB_SILENT"] = "true"
        return BackgroundWandbLogger(save_dir=out_dir, project=config.wandb.project,
                                     offline=config.wandb.mode == "offline", id=wandb_run_id(out_dir), resume="allow",
                                     name=config.wandb.name, group=config.wandb.group, tags=config.wandb.tags,
                                     entity=config.wandb.entity, config=resolved_config(config))


def _saved_sources(callback: SavedSetCallback) -> list[list[str]]:
    return callback.source_specs


def _saved_models(callback: SavedSetCallback) -> list[dict]:
    return callback.source_models


class EvaluateCLI(BenchmarkCLI):
    """``benchmark evaluate``: ``benchmark run`` with the saved-set reader in place of the attacks;
    the sources and their provenance come from the set's manifest."""

    prog = "benchmark evaluate"

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
    quiet.install()  # the known-harmless warnings and Lightning's litlogger tip, by message and module
    return cli_class(TransferModule, SegmentationDataModule, args=argv, run=False,
                     trainer_defaults=TRAINER_DEFAULTS, save_config_callback=None,
                     parser_kwargs={"prog": cli_class.prog, "exit_on_error": False, "description": cli_class.__doc__},
                     auto_configure_optimizers=False,
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
    if adv is None and ("--help" in argv or "-h" in argv):
        return run_cli(argv, EvaluateCLI)
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


def check_config(argv: list[str], cli_class: type[ConfigCheckCLI] = ConfigCheckCLI) -> ConfigCheckCLI:
    """Validate ``benchmark run`` arguments (e.g. ``["--config", path]``) without running anything
    (``cli_class``: a subclass with more options, e.g. ``benchmark plan``'s)."""
    return _make(cli_class, argv)


def run_cli(argv: list[str], cli_class: type[BenchmarkCLI] | None = None) -> int:
    """Parse, preflight (every setting and the data validated before any work), validate, clean up.

    ``--fresh`` discards an interrupted run's journal in ``out_dir`` instead of resuming it;
    ``--takeover`` takes the out_dir lock of a run that is gone (another node's, say);
    ``--debug`` shows tracebacks. Exit status: 0 done, 2 refused input, 130/143 stopped by
    SIGINT/SIGTERM (resumable), 1 any other failure."""
    argv = list(argv)
    flags = {flag: flag in argv for flag in ("--fresh", "--debug", "--takeover")}
    argv = [a for a in argv if a not in flags]
    cli_class = cli_class or BenchmarkCLI
    cli_class.fresh, cli_class.takeover, cli_class.argv = flags["--fresh"], flags["--takeover"], argv
    install_signal_handlers()
    cli, status = None, 0
    try:
        cli = _make(cli_class, argv)
        cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
        cli._get(cli.config_init, "results").finish_from_journal(cli.trainer, cli.model)  # nothing was left to attack
    except (SIGTERMException, Interrupted) as err:
        name = "SIGTERM" if isinstance(err, SIGTERMException) else err.signal_name
        out = cli.config.results.out_dir if cli is not None else "the out_dir"
        resume = requeue_slurm_job() if name == "SIGUSR1" else "rerun the same command to resume"
        say(f"error: stopped by {name} after the batch in flight; {journalled_images(out)} images are journalled in "
            f"{out}: {resume}", sys.stderr)
        status = EXIT_CODES[name]
    except BenchmarkError as err:
        say(f"error: {one_line(err)}", sys.stderr)
        status = 2
    except OSError as err:  # the storage: name the file and say what is kept
        if flags["--debug"]:
            raise
        say(f"error: {storage_error_line(err, cli)}", sys.stderr)
        status = 1
    except Exception as err:  # anything else: one line unless --debug
        if flags["--debug"]:
            raise
        say(f"error: {type(err).__name__}: {one_line(err)} (rerun with --debug for the traceback)", sys.stderr)
        status = 1
    finally:
        if cli is not None:
            cli.release()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return status


_FINALIZE_NAMES = ("FINALIZE_USAGE", "FinalizeCLI", "FinalizeEvaluateCLI", "finalize_cli")


def __getattr__(name: str):
    """The finalize command's names, from :mod:`benchmark.lightning.finalize` (which imports this module)."""
    if name in _FINALIZE_NAMES:
        from benchmark.lightning import finalize

        return getattr(finalize, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
