"""What compute spends per matrix on the CPU, by shape: the plan's cost model (analysis/plan.py).

For GPT-NeoX role shapes (qkv (3d, d), attn_out (d, d), mlp_in (4d, d), mlp_out (d, 4d)) at
several widths d, times baselines.with_draws, the per-matrix work of compute's spectra table
(fit the Gaussian and logistic baselines, sample `draws` draws of each of the three kinds,
solve the matrix and every draw), on a batch of blocks as compute batches them; prints
seconds per matrix. Small matrices are dominated by fixed per-matrix costs (the fits, the
sampling, Python), which benchmarks/spectra.py (one solve, 2048-wide) does not see.

This is a cost measurement, not a comparison: benchmarks/spectra.py compares the solve
with its best peer.

    python benchmarks/matrix_cost.py [--widths 32 64 128 256 512 1024] [--draws 10] [--blocks 4]
"""

import argparse
import os
import time

import numpy as np

from analysis import baselines

ROLES = {"qkv": (3, 1), "attn_out": (1, 1), "mlp_in": (4, 1), "mlp_out": (1, 4)}


def per_matrix(shape: tuple, blocks: int, draws: int, repeats: int) -> float:
    """Best-of-`repeats` seconds per matrix of with_draws on `blocks` float32 matrices of `shape`."""
    rng = np.random.default_rng(0)
    ws = rng.normal(0, 0.02, (blocks, *shape)).astype(np.float32)  # checkpoints hold fp16/fp32
    ids = [("bench", 0, b, "role") for b in range(blocks)]
    baselines.with_draws(ws[:1], ids[:1], 0, draws)  # warm-up: imports, BLAS threads
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        baselines.with_draws(ws, ids, 0, draws)
        best = min(best, time.perf_counter() - t)
    return best / blocks


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128, 256, 512, 1024])
    p.add_argument("--draws", type=int, default=10, help="draws per baseline kind (settings: verdicts.draws)")
    p.add_argument("--blocks", type=int, default=4, help="matrices per batch (a role's blocks at one step)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(f"CPU, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; with_draws, draws {args.draws} "
          f"({1 + 3 * args.draws} solves a matrix), batches of {args.blocks}; seconds per matrix (best of {args.repeats})")
    print(f"{'role':9s} {'shape':>11s} {'s/matrix':>10s}")
    start = time.time()
    for d in args.widths:
        big = d >= 1024  # minutes a batch: one matrix, timed once
        for role, (a, b) in ROLES.items():
            shape = (a * d, b * d)
            s = per_matrix(shape, 1 if big else args.blocks, args.draws, 1 if big else args.repeats)
            print(f"{role:9s} {shape[0]:>5d}x{shape[1]:<5d} {s:10.5f}", flush=True)
    print(f"took {time.time() - start:.0f} s; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
