"""``benchmark run --help`` without importing Lightning: the text of the last identical call, kept.

The options of ``benchmark run`` and ``benchmark evaluate`` come from LightningCLI, which needs
``lightning`` (and through it ``torch._dynamo``): about 4 s of imports on a 2-core CPU before the
first line of help. The help text depends only on the code, the installed packages, a few
environment variables (the W&B defaults) and the terminal width, so the first call stores it under a
key made of all of those, and a later identical call prints it in a few tens of milliseconds. Any
change to the package's source files, the interpreter, the stack's versions, those variables or the
width makes a new key (the text is then produced and stored again). Only a bare ``--help`` / ``-h`` is
cached: with other arguments (``--config`` among them) the help is produced as before.

The cache lives in ``$XDG_CACHE_HOME/transegpgd-bench`` (default ``~/.cache/transegpgd-bench``);
``BENCHMARK_HELP_CACHE=0`` turns it off. A folder that cannot be written only means no cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
STACK = ("lightning", "jsonargparse", "torch", "torchmetrics", "wandb", "mmsegmentation", "mmengine")
HELP_FLAGS = (["--help"], ["-h"])


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "transegpgd-bench"


def help_key(command: str) -> str:
    """A digest of everything the help text of ``command`` depends on."""
    digest = hashlib.sha256()
    for part in (command, sys.version, sys.executable, str(shutil.get_terminal_size().columns)):
        digest.update(part.encode() + b"\0")
    for name in STACK:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "-"
        digest.update(f"{name}={version}\0".encode())
    for key in sorted(k for k in os.environ if k.startswith("WANDB_")):
        digest.update(f"{key}={os.environ[key]}\0".encode())
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:24]


def cached_help(command: str, argv: list[str], produce: Callable[[list[str]], int]) -> int | None:
    """Print the help of ``command`` from the cache, or produce it with ``produce(argv)`` and store it.

    Returns the exit status, or None when ``argv`` is not a bare help request (the caller runs it)."""
    if argv not in HELP_FLAGS or os.environ.get("BENCHMARK_HELP_CACHE", "1") == "0":
        return None
    path = cache_dir() / f"help-{command}-{help_key(command)}.txt"
    if path.is_file():
        sys.stdout.write(path.read_text(encoding="utf-8"))
        return 0
    buffer = io.StringIO()
    status = 0
    try:
        with contextlib.redirect_stdout(buffer):
            status = produce(argv)
    except SystemExit as done:  # argparse's help action exits
        status = done.code if isinstance(done.code, int) else 0
    text = buffer.getvalue()
    sys.stdout.write(text)
    if status == 0 and text.startswith("usage:"):
        _store(path, text, command)
    return status


def _store(path: Path, text: str, command: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob(f"help-{command}-*.txt"):  # one text per command: the current one
            old.unlink(missing_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.part")
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    except OSError:
        pass
