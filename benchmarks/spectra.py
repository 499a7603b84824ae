"""Singular values of pythia-1b-shaped matrices: ours against peers, as ratios measured in one run.

CPU: analysis.spectra.singular_values vs numpy.linalg.svd(compute_uv=False), and (when
installed) WeightWatcher's per-layer analyze() vs ours plus the same power-law fit.
GPU (when CuPy sees a device): ours on CuPy vs torch.linalg.svdvals on the same GPU, and the
full pythia-1b sweep shape (154 steps x 16 blocks x 4 roles, plus one sampled baseline each)
from host memory.

    python benchmarks/spectra.py [--scale 0.25] [--repeats 3] [--no-weightwatcher] [--gpu-only]
                                 [--sweep-steps 154] [--json gpu.json]

The GPU part first times each eigensolver route (spectra.EIGH_ROUTES) and uses the fastest.
"""

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.stats

from analysis import backend, baselines, config, measures, spectra

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
                t_oa, fit = best_time(lambda: measures.powerlaw_alpha(spectra.singular_values(w)), args.repeats)
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
    import json

    import torch

    cp = backend.array_module("cupy")
    xp, sync, t0 = cp, cp.cuda.Device().synchronize, time.perf_counter()
    report = {"device": cp.cuda.runtime.getDeviceProperties(0)["name"].decode(), "cupy": cp.__version__,
              "torch": torch.__version__, "routes": {}, "roles": {}}
    print(f"GPU: {report['device']}, CuPy {cp.__version__}, torch {torch.__version__}")

    # 1. The eigensolver routes on one checkpoint's worth of k=2048 Gram matrices.
    k, b = max(int(2048 * args.gpu_scale), 8), args.route_batch
    w = cp.random.default_rng(0).standard_normal((b, k, 2 * k)) * 0.02
    gram = w @ cp.swapaxes(w, -1, -2)
    del w
    ref = np.linalg.eigvalsh(gram[0].get())
    print(f"eigensolver routes, {b} Gram matrices {k}x{k}: ms per matrix; err = max|dlam| / lam_max vs LAPACK")

    def route_time(name, route, workers=0, repeats=args.repeats):
        try:
            if workers:
                spectra.EIGH_THREADS["cupy"] = workers
            t_warm, _ = best_time(lambda: (spectra.eigvalsh(gram[:2], xp, route), sync()), 1)
            if t_warm / 2 > 1.0:  # too slow to time on the whole batch: the warm-up is the number
                per, lam = t_warm / 2, spectra.eigvalsh(gram[:1], xp, route)
            else:
                t, lam = best_time(lambda: (spectra.eigvalsh(gram, xp, route), sync())[0], repeats)
                per = t / b
            err = float(np.max(np.abs(lam[0].get() - ref)) / ref[-1])
            report["routes"][name] = {"ms": per * 1e3, "err": err}
            print(f"  {name:16s} {per * 1e3:9.1f} {err:9.1e}", flush=True)
        except Exception as e:  # a route that fails here is reported, not fatal
            print(f"  {name:16s} failed: {e!r}"[:300], flush=True)

    for route, workers in [("batched", 0), ("loop", 0), ("threads", 2), ("threads", 4), ("threads", 8),
                           ("threads", 16), ("torch", 0)]:
        route_time(f"{route}-{workers}" if workers else route, route, workers)
    best = min(report["routes"], key=lambda r: report["routes"][r]["ms"])
    route, _, workers = best.rpartition("-") if best[-1].isdigit() else (best, "", "")
    spectra.EIGH_ROUTE["cupy"] = route
    if workers:
        spectra.EIGH_THREADS["cupy"] = int(workers)
    report["route"] = best
    print(f"route used below: {best}")
    del gram

    # 2. Ours vs torch.linalg.svdvals (float64, same GPU), per pythia-1b role.
    print(f"{'role':9s} {'shape':>11s} {'batch':>5s} {'ours s':>8s} {'torch s':>8s} {'ratio':>6s} {'err/σmax':>9s}")
    torch.linalg.svdvals(torch.ones((64, 64), device="cuda", dtype=torch.float64))  # cuSOLVER handle, kernels
    shapes = {role: (max(int(m * args.gpu_scale), 8), max(int(n * args.gpu_scale), 8)) for role, (m, n) in PYTHIA_1B.items()}
    for role, (m, n) in shapes.items():
        tb = args.torch_batch
        host = np.stack([matrix((m, n), "random", seed=s).astype(np.float32) for s in range(tb)])
        dev = cp.asarray(host)
        tdev = torch.as_tensor(host, device="cuda", dtype=torch.float64)
        spectra.singular_values(dev[:1], xp)
        sync()
        t_ours, sv = best_time(lambda: (spectra.singular_values(dev, xp), sync())[0], args.repeats)
        t_torch, ref_t = best_time(lambda: (torch.linalg.svdvals(tdev), torch.cuda.synchronize())[0], 1)
        err = float(np.max(np.abs(sv.get() - ref_t.cpu().numpy())) / ref_t.max().item())
        report["roles"][role] = {"shape": [m, n], "batch": tb, "ours_s": t_ours, "torch_s": t_torch, "err": err}
        print(f"{role:9s} {m:>5d}x{n:<5d} {tb:5d} {t_ours:8.3f} {t_torch:8.3f} {t_torch / t_ours:6.1f} {err:9.1e}", flush=True)
        del dev, tdev
    tot = {k2: sum(r[k2] for r in report["roles"].values()) for k2 in ("ours_s", "torch_s")}
    print(f"total: ours {tot['ours_s']:.2f} s, torch {tot['torch_s']:.2f} s, ratio {tot['torch_s'] / tot['ours_s']:.1f}")

    # 3. The full sweep shape: per step and role, 16 blocks (fp16 in host memory, as read from
    # checkpoints) + one sampled Gaussian baseline each, through the memory-budget chunker;
    # copies to the device either inline or prefetched (the next stack copied while this one is solved).
    steps = args.sweep_steps
    host = {role: np.stack([matrix(shp, "random", seed=s).astype(np.float16) for s in range(16)])
            for role, shp in shapes.items()}
    items = [(step, role) for step in range(steps) for role in host]

    def solve(step, w16):
        w = w16.astype(cp.float64)
        base = cp.random.default_rng(step).standard_normal(w.shape) * w.std(axis=(1, 2), keepdims=True)
        spectra.singular_values_chunked(cp.concatenate([w, base]), xp)

    def copy(item):
        with cp.cuda.Stream(non_blocking=True) as stream:
            out = cp.asarray(host[item[1]])
            stream.synchronize()
        return out

    report["sweep"] = {}
    for mode in ("inline copies", "prefetched", "prefetched, 2 solvers"):
        sync()
        t = time.perf_counter()
        if mode == "inline copies":
            for step, role in items:
                solve(step, cp.asarray(host[role]))
        elif mode == "prefetched":
            with ThreadPoolExecutor(1) as pool:
                nxt = pool.submit(copy, items[0])
                for i, (step, role) in enumerate(items):
                    w16 = nxt.result()
                    if i + 1 < len(items):
                        nxt = pool.submit(copy, items[i + 1])
                    solve(step, w16)
        else:  # two role-steps in flight, each on its own stream: one's Gram overlaps the other's solves
            def work(item):
                with cp.cuda.Stream(non_blocking=False) as stream:
                    solve(item[0], copy(item))
                    stream.synchronize()

            with ThreadPoolExecutor(2) as pool:
                list(pool.map(work, items))
        sync()
        took = time.perf_counter() - t
        report["sweep"][mode] = {"steps": steps, "matrices": steps * 128, "s": took, "min_for_154": took * 154 / steps / 60}
        print(f"sweep ({mode}): {steps} steps x 16 blocks x 4 roles x (weights + baseline) = {steps * 128} "
              f"matrices in {took:.1f} s; 154 steps would take {took * 154 / steps / 60:.1f} min", flush=True)

    # 4. What compute does per matrix: the weights + `verdicts.draws` draws each of the
    # Gaussian, logistic and shuffled baselines on the device (the logistic fit runs on the
    # host, on 2e5 entries).
    draws = config.DEFAULTS["verdicts"]["draws"]
    report["with_draws"] = {"draws": draws}
    for role, (m, n) in shapes.items():
        dev = cp.asarray(matrix((m, n), "heavy", seed=1).astype(np.float32))
        t, _ = best_time(lambda: (baselines.with_draws(dev[None], [(role,)], 0, draws, xp), sync()), 1)
        report["with_draws"][role] = t
        print(f"with_draws ({draws}) {role:9s} {m:>5d}x{n:<5d}: {t:.2f} s", flush=True)
    print(f"GPU part took {time.perf_counter() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="shrink every side by this factor (CPU part)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-weightwatcher", dest="weightwatcher", action="store_false")
    p.add_argument("--gpu-only", action="store_true")
    p.add_argument("--sweep-steps", type=int, default=154, help="GPU sweep: steps to time (154 = all of pythia-1b)")
    p.add_argument("--route-batch", type=int, default=16, help="GPU: Gram matrices per eigensolver route")
    p.add_argument("--torch-batch", type=int, default=4, help="GPU: matrices per role against torch")
    p.add_argument("--gpu-scale", type=float, default=1.0, help="shrink every side by this factor (GPU part)")
    p.add_argument("--json", help="also write the GPU numbers here")
    args = p.parse_args()
    if args.weightwatcher:
        try:
            import weightwatcher  # noqa: F401
        except ImportError:
            print("weightwatcher is not installed (pip install weightwatcher==0.7.7): skipping that column")
            args.weightwatcher = False
    if not args.gpu_only:
        cpu(args)
    if backend.cupy_or_none() is not None:
        gpu(args)
    else:
        print("no CUDA device: GPU part skipped")


if __name__ == "__main__":
    main()
