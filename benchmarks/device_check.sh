#!/usr/bin/env bash
# One call on a lent GPU machine (see the device tool's README): build the CUDA module for the
# device, run the CUDA tests (including the compute-sanitizer run), then the GPU benchmarks.
# Logs and JSON land in $OUT (or ./device-out). Usage: bash benchmarks/device_check.sh [full|quick|smoke]
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-full}
OUT=${OUT:-$PWD/device-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv || true
  nvcc --version | tail -1
  python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"
} 2>&1 | tee "$OUT/env.txt"
t0=$(date +%s)
CONGRUENCE_CUDA=ON CUDAARCHS=${CUDAARCHS:-90} python3 -m pip install -q --no-build-isolation --no-deps -e . \
  > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
python3 -m congruence info > "$OUT/info.json" 2>&1
python3 -m pytest -q -x -m cuda tests 2>&1 | tee "$OUT/cuda-tests.log" | tail -15
python3 -m pytest -q tests/test_cuda_host.py 2>&1 | tail -3
python3 -m benchmarks.gpu $([ "$MODE" = full ] || echo "--$MODE") --out "$OUT" 2>&1 | tee "$OUT/gpu-bench.log" | tail -12
