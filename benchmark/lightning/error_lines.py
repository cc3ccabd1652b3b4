"""The one-line error messages of ``benchmark run`` / ``evaluate`` / ``finalize``: a parser error with
the closest option names, a storage error with what the run kept, any error on one line."""

from __future__ import annotations

import argparse
import errno
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.results.journal import journalled_images

if TYPE_CHECKING:
    from benchmark.lightning.cli import BenchmarkCLI


def parser_error_line(err: argparse.ArgumentError, parser) -> str:
    """A parser error on one line, with the closest option names for an unknown one."""
    import difflib

    text = " ".join(line.strip() for line in str(err).splitlines())
    unknown = [token for token in text.replace("unrecognized arguments:", "").split() if token.startswith("--")]
    if text.startswith("unrecognized arguments") and unknown:
        known = [option for option in parser._option_string_actions if option.startswith("--")]
        close = difflib.get_close_matches(unknown[0].split("=")[0], known, n=2, cutoff=0.6)
        if close:
            text += f" (did you mean {' or '.join(close)}?)"
    return f"{text}; see {parser.prog} --help"


def storage_error_line(err: OSError, cli: BenchmarkCLI | None) -> str:
    """An OSError on one line with the file it concerns and what the run kept: how many images the
    journal holds, and the command that continues from there."""
    what = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "the file system is read-only"}.get(err.errno, f"OSError: {err.strerror or err}")
    line = what + (f" writing {err.filename}" if err.filename else "")
    if cli is None or getattr(cli, "config", None) is None:
        return line + " (rerun with --debug for the traceback)"
    out = Path(cli.config.results.out_dir)
    total, kept = len(cli.datamodule.dataset), journalled_images(out)
    if kept >= total:
        written = "results.json was written, the other result files were not; " if (out / "results.json").is_file() \
            else ""
        return (f"{line}; {written}every image ({total}) is journalled in {out}: once the cause is fixed, "
                f"`benchmark finalize {out}` (or the same command) writes the result without attacking")
    return (f"{line}; {kept} of {total} images are journalled in {out}: once the cause is fixed, rerun the same "
            f"command to attack the other {total - kept}")


def one_line(err: BaseException) -> str:
    """An error's message on one line; for an error re-raised from a DataLoader worker (its message
    embeds the worker's traceback) the original message, from the traceback's last line."""
    text = str(err).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(text.split("\n")[:1]) if text else type(err).__name__
