"""The resolved configuration of a run as data: its fingerprint (what a resumed run must repeat), the
W&B run config and the W&B run id kept beside the journal (:mod:`benchmark.lightning.cli`)."""

from __future__ import annotations

import json

from benchmark.lightning.preflight import launched_rank
from benchmark.results.journal import journal_dir

# Options that decide where results go or how they are shown, not what they are: left out of the
# fingerprint, so a resumed run may change them (the world size among them).
NOT_FINGERPRINTED = ("results.out_dir", "results.quiet", "results.num_logged_images", "results.per_class", "logger",
                     "wandb", "progress", "model.num_examples", "model.eval_batch_size",
                     "trainer.devices", "trainer.num_nodes", "trainer.strategy", "trainer.accelerator",
                     "trainer.enable_progress_bar", "data.num_workers", "data.preflight", "config")


def resolved_config(config) -> dict:
    """The whole resolved configuration as plain data (W&B's run config; config.yaml holds the same)."""
    plain = config.as_dict() if hasattr(config, "as_dict") else dict(config)
    plain.pop("config", None)  # the config file paths: the values themselves are here
    return json.loads(json.dumps(plain, default=str))


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
