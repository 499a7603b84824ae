#!/usr/bin/env bash
# The one prepared run for a lent CUDA machine (no network, its own python3 with CuPy and
# torch): GPU tests, then the GPU parts of the spectra and residual benchmarks. Logs and
# the benchmark's JSON go to $OUT (default ./device-out). Each part has its own time cap, so
# one slow part cannot eat the others' time.
#
#     bash benchmarks/device_check.sh [SWEEP_STEPS]
set -u
OUT=${OUT:-device-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import cupy, torch, numpy, scipy; print('cupy', cupy.__version__, 'torch', torch.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__)"
} 2>&1 | tee "$OUT/device.txt"
timeout 120 python3 -m pytest -q -p no:cacheprovider -m gpu tests/gpu 2>&1 | tee "$OUT/gpu-tests.log"
timeout 200 python3 benchmarks/spectra.py --gpu-only --sweep-steps "${1:-3}" --json "$OUT/spectra-gpu.json" 2>&1 \
  | tee "$OUT/spectra-gpu.log"
timeout 60 python3 benchmarks/residual.py --gpu-only --gpu-depth 16 --gpu-seeds 16 2>&1 | tee "$OUT/residual-gpu.log"
