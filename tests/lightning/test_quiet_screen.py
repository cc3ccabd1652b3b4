"""A quiet first screen: the default CLI prints no warning the project does not know to be harmless
(:mod:`benchmark.quiet`), and the known list hides exactly its messages, never a real warning."""

import logging
import os
import re
import subprocess
import sys
import warnings

import pytest

from benchmark import quiet
from benchmark.models.zoo import REPO_ROOT

# what a line that wants attention looks like: a warning, a tip, a deprecation, a traceback, an error
WARNING_LIKE = re.compile(r"warn|\btip\b|deprecat|will be removed|traceback|error|exception|^\s+File \"", re.I)

# each known warning as its library emits it: (message, category, module the warning is attributed to)
EMITTED = [
    ("Fail to import ``MultiScaleDeformableAttention`` from ``mmcv.ops.multi_scale_deform_attn``, You should "
     "install ``mmcv`` rather than ``mmcv-lite`` if you need this module. ", UserWarning,
     "mmcv.cnn.bricks.transformer"),
    ("pkg_resources is deprecated as an API. See https://setuptools.pypa.io/en/latest/pkg_resources.html.",
     UserWarning, "mmengine.utils.package_utils"),
    ("pkg_resources is deprecated as an API. See https://setuptools.pypa.io/en/latest/pkg_resources.html.",
     UserWarning, "importlib"),
    ("``build_loss`` would be deprecated soon, please use ``mmseg.registry.MODELS.build()`` ", UserWarning,
     "mmseg.models.builder"),
    ("Default ``avg_non_ignore`` is False, if you would like to ignore the certain label and average loss over "
     "non-ignore labels, ...", UserWarning, "mmseg.models.losses.cross_entropy_loss"),
    ("LightningCLI's args parameter is intended to run from within Python like if it were from the command line.",
     UserWarning, "lightning.pytorch.cli"),
    ("The 'val_dataloader' does not have many workers which may be a bottleneck.", UserWarning,
     "lightning.pytorch.trainer.connectors.data_connector"),
    ("Total length of `DataLoader` across ranks is zero. Please make sure this was your intention.", UserWarning,
     "lightning.pytorch.utilities.data"),
    ("Checkpoint directory /tmp/run exists and is not empty.", UserWarning,
     "lightning.pytorch.callbacks.model_checkpoint"),
    ("`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec) and treespec.is_leaf()` "
     "instead.", FutureWarning, "lightning.pytorch.utilities._pytree"),
]
TIP = ("💡 Tip: For seamless cloud logging and experiment tracking, try installing "
       "[litlogger](https://pypi.org/project/litlogger/) to enable LitLogger, which logs metrics and artifacts "
       "automatically to the Lightning Experiments platform.")


def _shown(*emit) -> list[str]:
    """The messages of ``(message, category, module)`` warnings that get through the known filters."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet.ignore_known_warnings()
        for message, category, module in emit:
            warnings.warn_explicit(message, category, f"/site-packages/{module.replace('.', '/')}.py", 1,
                                   module=module)
        return [str(w.message) for w in caught]


def test_every_known_warning_is_hidden_where_it_arises():
    assert _shown(*EMITTED) == []
    # every entry of the list is exercised here (a new entry comes with the message it hides)
    for known in quiet.KNOWN_WARNINGS:
        assert any(re.match(known.message, m, re.I) and re.fullmatch(known.source, mod) for m, _, mod in EMITTED)
    assert all(known.why for known in (*quiet.KNOWN_WARNINGS, *quiet.KNOWN_LOG_MESSAGES))


def test_real_warnings_still_get_through():
    # the same texts from the project's code or another module of the library are not hidden
    for message, category, _ in EMITTED:
        for module in ("benchmark.models.mmseg_adapter", "mmcv.cnn.bricks.wrappers", "lightning.pytorch.core",
                       "mmseg.models.builder_extra"):
            assert _shown((message, category, module)) == [message]
    # other warnings of the same modules, and of anything else, are not hidden
    others = [("Fail to load the checkpoint", UserWarning, "mmcv.cnn.bricks.transformer"),
              ("pretrained is deprecated, please use init_cfg", DeprecationWarning, "mmseg.models.builder"),
              ("``build_loss`` would be deprecated soon", DeprecationWarning, "mmseg.models.builder"),
              ("The number of training batches (1) is smaller than the logging interval", UserWarning,
               "lightning.pytorch.trainer.connectors.data_connector"),
              ("non-finite logits in batch 3", UserWarning, "benchmark.lightning.module"),
              ("something unrelated", RuntimeWarning, "numpy.core")]
    assert _shown(*others) == [message for message, _, _ in others]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet.ignore_known_warnings()
        warnings.warn("a real UserWarning from benchmark code", UserWarning)
    assert [str(w.message) for w in caught] == ["a real UserWarning from benchmark code"]


def test_lightning_tip_is_dropped_and_other_log_records_pass():
    import lightning.pytorch  # noqa: F401  (sets the logger Lightning's rank-zero helpers use)
    from lightning_utilities.core import rank_zero

    with warnings.catch_warnings():
        quiet.install()
    assert any(isinstance(f, quiet.KnownLogFilter) for f in rank_zero.log.filters)

    def passes(name, message):
        return quiet.KnownLogFilter().filter(logging.makeLogRecord({"name": name, "msg": message}))

    assert not passes(rank_zero.log.name, TIP)
    assert not passes("lightning.fabric.utilities.rank_zero", TIP)
    assert passes(rank_zero.log.name, "GPU available: False, used: False")
    assert passes(rank_zero.log.name, "Tip: set --trainer.devices 4 to use every GPU")
    assert passes("benchmark.lightning.cli", TIP)


def test_is_known_reads_printed_warnings():
    assert quiet.is_known("/x/mmcv/cnn/bricks/transformer.py:33: UserWarning: " + EMITTED[0][0])
    assert quiet.is_known(TIP)
    assert not quiet.is_known("/x/benchmark/lightning/module.py:12: UserWarning: non-finite logits")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from benchmark.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("data") / "synthetic-voc", layout="voc", n_train=0, n_val=1)


@pytest.mark.slow
def test_default_run_first_screen_is_quiet(data_root, tmp_path):
    """``make run`` in small: the default config end to end, with the user's warning settings (no PYTHONWARNINGS)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "BENCHMARK_HELP_CACHE")}
    args = ["--config", "configs/default.yaml", "--data.root", str(data_root), "--data.limit", "1",
            "--data.batch_size", "1", "--attack.steps", "1", "--logger", "none", "--results.out_dir",
            str(tmp_path / "run")]
    result = subprocess.run([sys.executable, "-m", "benchmark.cli", "run", *args], capture_output=True, text=True,
                            timeout=300, cwd=REPO_ROOT, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "results: " in result.stdout
    lines = [line for line in re.split(r"[\r\n]+", output) if line.strip()]
    unexpected = [line for line in lines if WARNING_LIKE.search(line) and not quiet.is_known(line)]
    assert unexpected == [], "\n".join(unexpected)
    for message in ("MultiScaleDeformableAttention", "mmcv-lite", "litlogger", "Tip:"):
        assert message not in output
