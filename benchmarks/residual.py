"""The residual-path toy: batched over seeds vs a per-seed Python loop doing the same products.

Default: d=512, D=32, 64 seeds on the CPU (every intermediate depth kept, activations of
Gaussian inputs at each depth). Also times the batched run with the spectra of M_L at every
depth, which is what the chapter caches. On a GPU (CuPy): d=2048, D=32, 64 seeds.

    python benchmarks/residual.py [--width 512] [--depth 32] [--seeds 64]
"""

import argparse
import time

import numpy as np

from analysis import backend, residual


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--depth", type=int, default=32)
    p.add_argument("--seeds", type=int, default=64)
    p.add_argument("--gpu-width", type=int, default=2048)
    p.add_argument("--gpu-depth", type=int, default=None, help="default: --depth")
    p.add_argument("--gpu-seeds", type=int, default=None, help="default: --seeds")
    p.add_argument("--gpu-only", action="store_true")
    a = p.parse_args()
    if not a.gpu_only:
        cpu(a)
    gpu(a)


def cpu(a):
    print(f"CPU: width {a.width}, depth {a.depth}, {a.seeds} seeds")
    t_batch, ours = timed(lambda: residual.simulate(a.width, a.depth, a.seeds, spectra=False))
    t_loop, ref = timed(lambda: residual.simulate_per_seed_loop(a.width, a.depth, a.seeds))
    same = np.allclose(ours["act"], ref["act"], rtol=1e-9, atol=1e-12)
    print(f"  products + activations: batched {t_batch:.2f} s, per-seed loop {t_loop:.2f} s, "
          f"ratio {t_loop / t_batch:.2f}, same result: {same}")
    t_spec, _ = timed(lambda: residual.simulate(a.width, a.depth, a.seeds))
    print(f"  with the spectrum of M_L at every depth: {t_spec:.2f} s")


def gpu(a):
    cp = backend.cupy_or_none()
    if cp is None:
        print("no CUDA device: GPU part skipped")
        return
    depth, seeds = a.gpu_depth or a.depth, a.gpu_seeds or a.seeds
    residual.simulate(64, 2, 2, xp=cp)  # warm-up
    t, _ = timed(lambda: (residual.simulate(a.gpu_width, depth, seeds, xp=cp, spectra=False), cp.cuda.Device().synchronize()))
    print(f"GPU: width {a.gpu_width}, depth {depth}, {seeds} seeds, products + activations: {t:.2f} s")
    t, _ = timed(lambda: (residual.simulate(a.gpu_width, depth, seeds, xp=cp), cp.cuda.Device().synchronize()))
    print(f"GPU: width {a.gpu_width}, depth {depth}, {seeds} seeds, spectra at every depth: {t:.2f} s")


if __name__ == "__main__":
    main()
