"""A reader of W&B's offline transaction log (``run-<id>.wandb``), for tests that check what was logged.

The file is wandb's LevelDB-style log: a 7-byte header (``:W&B``, magic, version), then 32 KiB blocks of
records, each with a 7-byte header (crc32, length, type: full / first / middle / last); every record is
a ``wandb_internal_pb2.Record`` protobuf. wandb 0.31 ships no Python reader for it, hence this one.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)  # name -> (type, [paths])
    history_keys: set = field(default_factory=set)


def _records(path: Path):
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        pos += HEADER
        chunk, pos = data[pos:pos + length], pos + length
        if kind == 0 and length == 0:
            break
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk


def read_offline_run(run_dir: Path) -> OfflineRun:
    from wandb.proto import wandb_internal_pb2

    (log,) = Path(run_dir).glob("*.wandb")
    run = OfflineRun()
    for raw in _records(log):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind in ("run", "config"):
            items = record.run.config.update if kind == "run" else record.config.update
            run.config.update({item.key: json.loads(item.value_json) for item in items})
        elif kind == "summary":
            run.summary.update({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                for item in record.summary.update})
        elif kind == "artifact":
            run.artifacts[record.artifact.name] = (record.artifact.type,
                                                   sorted(c.path for c in record.artifact.manifest.contents))
        elif kind == "history":
            run.history_keys.update(item.key or "/".join(item.nested_key) for item in record.history.item)
    return run
