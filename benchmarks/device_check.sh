#!/usr/bin/env bash
# The one prepared run for a lent CUDA machine (no network, its own python3 with CuPy and
# torch): GPU tests, the fair spectra benchmark (every route of ours and every peer, warmed up
# and timed alike, with roofline shares), the pythia-1b and pythia-12b middle-block sweeps (one
# step each, extrapolated to 154), then the residual benchmark. Logs and JSON go to $OUT
# (default ./device-out). Each part has its own cap; the caps sum to 480 s (8 min).
#
#     bash benchmarks/device_check.sh            # on the GPU machine
#     bash benchmarks/device_check.sh --dry-run  # here: the same steps on the CPU, tiny, to check the script
set -u
OUT=${OUT:-device-out}
DRY=""
[ "${1:-}" = "--dry-run" ] && DRY="--dry-run"
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
{ git rev-parse --short HEAD 2>/dev/null
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
  $PY -c "import torch, numpy, scipy; print('torch', torch.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__)"
  $PY -c "import cupy; print('cupy', cupy.__version__, 'CUDA runtime', cupy.cuda.runtime.runtimeGetVersion())"
} 2>&1 | tee "$OUT/device.txt"
timeout 90 $PY -m pytest -q -p no:cacheprovider -m gpu tests/gpu 2>&1 | tee "$OUT/gpu-tests.log"
if [ -n "$DRY" ]; then  # tiny shapes, one role: checks that every contender and the sweep code run
  timeout 240 $PY benchmarks/spectra.py --dry-run --batch 2 --roles attn_out --repeats 1 \
    --sweep-steps 0 --sweep-steps-12b 0 --json "$OUT/spectra-gpu.json" 2>&1 | tee "$OUT/spectra-gpu.log"
  timeout 120 $PY benchmarks/spectra.py --dry-run --sweeps-only --sweep-steps 1 --sweep-steps-12b 1 \
    --json "$OUT/spectra-sweeps.json" 2>&1 | tee "$OUT/spectra-sweeps.log"
  exit 0
fi
timeout 240 $PY benchmarks/spectra.py --gpu-only --batch 8 --cap-s 6 --sweep-steps 0 --sweep-steps-12b 0 \
  --json "$OUT/spectra-gpu.json" 2>&1 | tee "$OUT/spectra-gpu.log"
timeout 120 $PY benchmarks/spectra.py --gpu-only --sweeps-only --sweep-steps 1 --sweep-steps-12b 1 \
  --json "$OUT/spectra-sweeps.json" 2>&1 | tee "$OUT/spectra-sweeps.log"
timeout 30 $PY benchmarks/residual.py --gpu-only --gpu-depth 16 --gpu-seeds 16 2>&1 | tee "$OUT/residual-gpu.log"
