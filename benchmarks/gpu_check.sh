#!/usr/bin/env bash
# The prepared GPU check (docs/how-to/gpu-check.md, "GPU check"): on a machine with CUDA, its own torch and the project's
# other dependencies (or their wheels in .whl/, made by benchmarks/gpu_wheels.sh), run
#   1. tests/gpu (every attack on CUDA in fp32 and bf16, slide mode, the CLI on a GPU),
#   2. benchmarks/gpu_check.py: PSPNet-R50 and DeepLabV3-R50 (random weights), PGD and TranSegPGD at
#      512x512, fp32 vs bf16 vs bf16 + channels_last: seconds per step and the adversarial-mIoU
#      difference; torch.compile of PSPNet-R50 (compile seconds, compiled step),
#   3. a DDP run of the embedded default over all visible GPUs,
#   4. benchmarks/buckets.py: VOC-sized images of mixed sizes (random-weight PSPNet-R50), batch 1 against
#      data.bucket_by_size with batch 8: images/s and whether the records agree,
# and print one summary table. Budget: under 10 minutes on one H200. Files go to $OUT (or /tmp/gpu_check).
# Smoke mode on a CPU (what tests/test_gpu_check.py runs): DEVICE=cpu SMOKE=1 bash benchmarks/gpu_check.sh
# On the lent device:  bash benchmarks/gpu_wheels.sh  here, then  run(carry=[".whl"], command="OUT=$OUT bash benchmarks/gpu_check.sh")
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-/tmp/gpu_check}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled
start=$(date +%s)

WHEELS=${WHEELS:-.whl}
if [ -d "$WHEELS" ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl \
    || { echo "error: installing .whl/ failed" >&2; exit 2; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

if [ "${SMOKE:-0}" = 1 ]; then
  bench_args=(--size 64 64 --batch 1 --steps 2 --repeats 1 --models pspnet-r50)
  ddp_args=(--trainer.accelerator cpu --trainer.devices 2 --data.limit 4 --data.batch_size 2 --attack.steps 2)
  bucket_args=(--device cpu --images 4 --batch 2 --steps 1 --resize none --scale 0.2)
else
  bench_args=(--size 512 512 --batch 2 --steps 10 --repeats 3 --compile)
  ddp_args=(--trainer.accelerator gpu --trainer.devices -1 --data.limit 40 --attack.steps 10)
  bucket_args=(--device cuda --images 48 --batch 8 --steps 5)
fi

environment=$($PY - <<'EOF' 2>/dev/null
import platform, torch
gpus = torch.cuda.device_count()
name = torch.cuda.get_device_name(0) if gpus else "no CUDA device"
print(f"{name} x{gpus}, torch {torch.__version__}, CUDA {torch.version.cuda}, Python {platform.python_version()}")
EOF
) || environment="python or torch missing"

t0=$(date +%s)
timeout 260 $PY -m pytest tests/gpu -q -p no:cacheprovider --color=no -o addopts="" > "$OUT/tests_gpu.log" 2>&1
tests_rc=$?
tests_line=$(grep -E "passed|failed|skipped|error" "$OUT/tests_gpu.log" | tail -1)
tests_s=$(( $(date +%s) - t0 ))

t0=$(date +%s)
timeout 300 $PY benchmarks/gpu_check.py --device "$DEVICE" "${bench_args[@]}" --json "$OUT/gpu_check.json" \
  > "$OUT/gpu_check.log" 2>&1
bench_rc=$?
bench_s=$(( $(date +%s) - t0 ))

t0=$(date +%s)
timeout 150 $PY -m benchmark.cli run --config configs/default.yaml --data.root /tmp/gpu_check_data \
  --trainer.strategy ddp --logger none --results.out_dir "$OUT/ddp" "${ddp_args[@]}" > "$OUT/ddp.log" 2>&1
ddp_rc=$?
ddp_s=$(( $(date +%s) - t0 ))
processes=$(grep -o "MEMBER: [0-9]*/[0-9]*" "$OUT/ddp.log" | head -1 | cut -d/ -f2)
ddp_line=$($PY - "$OUT/ddp/results.json" <<'EOF' 2>/dev/null
import json, sys
r = json.load(open(sys.argv[1]))
white = {m["condition"]: m["miou"] for m in r["metrics"] if m["target"] == r["sources"][0]["models"][0]}
pgd = f", white-box PGD {100 * white['pgd']:.2f}" if "pgd" in white else ""
print(f"{r['dataset']['num_images']} images, clean mIoU {100 * white['clean']:.2f}{pgd}")
EOF
) || ddp_line="no results.json"
ddp_line="${processes:-?} processes, $ddp_line"

t0=$(date +%s)
timeout 150 $PY benchmarks/buckets.py "${bucket_args[@]}" > "$OUT/buckets.log" 2>&1
bucket_rc=$?
bucket_s=$(( $(date +%s) - t0 ))

echo
echo "== GPU check summary ($(( $(date +%s) - start )) s) =="
printf '%-22s %s\n' "machine" "$environment"
printf '%-22s %s (exit %s, %s s)\n' "tests/gpu" "${tests_line:-no output}" "$tests_rc" "$tests_s"
printf '%-22s exit %s, %s s\n' "attack speed, bf16" "$bench_rc" "$bench_s"
grep -E "^(model|pspnet|deeplabv3|compile)" "$OUT/gpu_check.log" | sed 's/^/    /'
printf '%-22s %s (exit %s, %s s)\n' "DDP, all devices" "$ddp_line" "$ddp_rc" "$ddp_s"
printf '%-22s exit %s, %s s\n' "size buckets" "$bucket_rc" "$bucket_s"
grep -E "^(batch|per-image)" "$OUT/buckets.log" | sed 's/^/    /'
[ "$tests_rc" = 0 ] && [ "$bench_rc" = 0 ] && [ "$ddp_rc" = 0 ] && [ "$bucket_rc" = 0 ]
