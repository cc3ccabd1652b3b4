"""TranSegPGD Bench: transfer attacks on semantic segmentation, measured with PyTorch Lightning.

Importing the package is cheap: it imports nothing heavy. It only registers the lazy stand-in for
compiled ``mmcv.ops`` (see :mod:`benchmark.models.mmcv_ops_stub`), which acts when, and only when,
something imports ``mmcv.ops`` in a process whose mmcv has no compiled extension. Registering it here
means every process that imports ``benchmark`` -- DDP workers included -- has it before mmseg loads.
"""

__version__ = "0.1.0"

import time as _time

IMPORTED_AT = _time.monotonic()  # the fallback clock of benchmark.lightning.runlog.seconds_since_start

from benchmark.models.mmcv_ops_stub import install as _install_mmcv_ops_stub

_install_mmcv_ops_stub()
del _install_mmcv_ops_stub
