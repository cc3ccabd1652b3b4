"""benchmark.attacks imports only torch and the standard library."""

import json
import os
import subprocess
import sys

from benchmark.attacks import build_attack

SCRIPT = """
import json, sys
import benchmark.attacks as A
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'mmseg', 'mmengine', 'mmcv'))
print(json.dumps({"heavy": heavy, "hash": A.build_attack("transegpgd+mi", steps=7).settings_hash}))
"""


def test_fresh_import_is_light_and_hash_is_stable_across_processes():
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert report["hash"] == build_attack("transegpgd+mi", steps=7).settings_hash
