#!/usr/bin/env bash
# Fetch, on a machine with pip and the package index, the Python 3.12 wheels that a GPU machine with
# its own CUDA torch, lightning, torchmetrics, numpy, OpenCV, matplotlib, scikit-image and safetensors
# lacks, at the versions of configs/constraints.txt, into .whl/ (git-ignored through .git/info/exclude).
# benchmarks/gpu_check.sh installs them with --no-deps into /tmp/site. W&B is not needed (--logger none).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
names=(mmsegmentation mmengine mmcv-lite addict yapf platformdirs termcolor prettytable wcwidth ftfy
       jsonargparse docstring-parser typeshed-client)
specs=()
for name in "${names[@]}"; do
  pin=$(grep -i -E "^${name//-/[-_]}==" configs/constraints.txt) || { echo "error: $name is not in configs/constraints.txt" >&2; exit 2; }
  specs+=("$pin")
done
rm -rf .whl && mkdir .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d .whl "${specs[@]}"
du -sh .whl && ls .whl
