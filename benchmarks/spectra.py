"""Singular values of pythia-1b-shaped matrices: ours against peers, as ratios measured in one run.

CPU: analysis.spectra.singular_values vs numpy.linalg.svd(compute_uv=False), and (when
installed) WeightWatcher's per-layer analyze() vs ours plus the same power-law fit.
GPU (when CuPy sees a device): ours on CuPy vs torch.linalg.svdvals on the same GPU, and the
full pythia-1b sweep shape (154 steps x 16 blocks x 4 roles, plus one sampled baseline each)
from host memory.

    python benchmarks/spectra.py [--scale 0.25] [--repeats 1] [--no-weightwatcher] [--gpu-only]
"""

import argparse
import time

import numpy as np
import scipy.stats

from analysis import shape, spectra

PYTHIA_1B = {"qkv": (6144, 2048), "attn_out": (2048, 2048), "mlp_in": (8192, 2048), "mlp_out": (2048, 8192)}


def matrix(shape_, kind, seed):
    rng = np.random.default_rng(seed)
    m, n = shape_
    if kind == "random":
        return rng.normal(0, 0.02, (m, n))
    # Heavy-tailed: Student-t entries (df=3) times a low-rank boost, like a trained weight.
    w = scipy.stats.t.rvs(3, size=(m, n), random_state=rng) * 0.01
    k = 8
    return w + rng.normal(0, 0.05, (m, k)) @ rng.normal(0, 0.05, (k, n))


def best_time(fn, repeats):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def weightwatcher_time(w, repeats):
    import logging

    import torch
    import weightwatcher as ww

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    layer = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
    model = torch.nn.Sequential(layer)
    watcher = ww.WeightWatcher(model=model)
    return best_time(lambda: watcher.analyze(plot=False, randomize=False, mp_fit=False), repeats)


def cpu(args):
    print(f"CPU, scale {args.scale}: seconds per matrix (best of {args.repeats}); ratio = peer / ours")
    head = f"{'role':9s} {'shape':>11s} {'kind':7s} {'ours':>7s} {'numpy':>7s} {'ratio':>6s} {'err/σmax':>9s}"
    if args.weightwatcher:
        head += f" {'ours+α':>7s} {'ww':>7s} {'ratio':>6s} {'α ours':>7s} {'α ww':>7s}"
    print(head)
    totals = {"ours": 0.0, "numpy": 0.0, "ours_alpha": 0.0, "ww": 0.0}
    for role, (m, n) in PYTHIA_1B.items():
        shp = (max(int(m * args.scale), 8), max(int(n * args.scale), 8))
        for kind in ("random", "heavy"):
            w = matrix(shp, kind, seed=0)
            t_ours, sv = best_time(lambda: spectra.singular_values(w), args.repeats)
            t_np, ref = best_time(lambda: np.linalg.svd(w, compute_uv=False), args.repeats)
            err = float(np.max(np.abs(sv - ref)) / ref[0])
            totals["ours"] += t_ours
            totals["numpy"] += t_np
            line = f"{role:9s} {shp[0]:>5d}x{shp[1]:<5d} {kind:7s} {t_ours:7.3f} {t_np:7.3f} {t_np / t_ours:6.1f} {err:9.1e}"
            if args.weightwatcher:
                t_oa, fit = best_time(lambda: shape.powerlaw_alpha(spectra.singular_values(w)), args.repeats)
                t_ww, details = weightwatcher_time(w, args.repeats)
                totals["ours_alpha"] += t_oa
                totals["ww"] += t_ww
                line += f" {t_oa:7.3f} {t_ww:7.3f} {t_ww / t_oa:6.1f} {fit['alpha']:7.3f} {float(details['alpha'].iloc[0]):7.3f}"
            print(line, flush=True)
    print(f"total: ours {totals['ours']:.2f} s, numpy {totals['numpy']:.2f} s, ratio {totals['numpy'] / totals['ours']:.1f}")
    if args.weightwatcher:
        print(f"total: ours+α {totals['ours_alpha']:.2f} s, weightwatcher {totals['ww']:.2f} s, "
              f"ratio {totals['ww'] / totals['ours_alpha']:.1f}")


def gpu(args):
    import cupy as cp
    import torch

    xp = cp
    print(f"GPU: {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}")
    print(f"{'role':9s} {'shape':>11s} {'batch':>5s} {'ours':>8s} {'torch':>8s} {'ratio':>6s} {'err/σmax':>9s}")
    for role, (m, n) in PYTHIA_1B.items():
        batch = 16  # one checkpoint's blocks
        host = np.stack([matrix((m, n), "random", seed=s).astype(np.float32) for s in range(batch)])
        dev = cp.asarray(host)
        tdev = torch.as_tensor(host, device="cuda", dtype=torch.float64)

        def ours():
            out = spectra.singular_values(dev, xp)
            cp.cuda.Device().synchronize()
            return out

        def peer():
            out = torch.linalg.svdvals(tdev)
            torch.cuda.synchronize()
            return out

        ours(), peer()  # warm-up: plans, handles, kernels
        t_ours, sv = best_time(ours, args.repeats)
        t_torch, ref = best_time(peer, args.repeats)
        err = float(np.max(np.abs(sv.get() - ref.cpu().numpy())) / ref.max().item())
        print(f"{role:9s} {m:>5d}x{n:<5d} {batch:5d} {t_ours:8.3f} {t_torch:8.3f} {t_torch / t_ours:6.1f} {err:9.1e}", flush=True)
    # The full sweep shape: per step and role, 16 blocks + one sampled baseline each, from host memory.
    steps = args.sweep_steps
    host = {role: np.stack([matrix(shp, "random", seed=s).astype(np.float16) for s in range(16)]) for role, shp in PYTHIA_1B.items()}
    cp.cuda.Device().synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        for role, stack in host.items():
            w = cp.asarray(stack).astype(cp.float64)
            base = cp.random.default_rng(0).standard_normal(w.shape) * w.std(axis=(1, 2), keepdims=True)
            spectra.singular_values_chunked(cp.concatenate([w, base]), xp)  # chunks fit free GPU memory
    cp.cuda.Device().synchronize()
    took = time.perf_counter() - t
    print(f"sweep: {steps} steps x 16 blocks x 4 roles x (weights + baseline) = {steps * 128} matrices "
          f"in {took:.1f} s; 154 steps would take {took * 154 / steps / 60:.1f} min")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="shrink every side by this factor (CPU part)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--no-weightwatcher", dest="weightwatcher", action="store_false")
    p.add_argument("--gpu-only", action="store_true")
    p.add_argument("--sweep-steps", type=int, default=154)
    args = p.parse_args()
    if args.weightwatcher:
        try:
            import weightwatcher  # noqa: F401
        except ImportError:
            print("weightwatcher is not installed (pip install weightwatcher==0.7.7): skipping that column")
            args.weightwatcher = False
    if not args.gpu_only:
        cpu(args)
    try:
        import cupy

        has_gpu = cupy.cuda.is_available()
    except Exception:
        has_gpu = False
    if has_gpu:
        gpu(args)
    else:
        print("no CUDA device: GPU part skipped")


if __name__ == "__main__":
    main()
