"""Singular values of pythia-shaped matrices: ours against the best peer, timed the same way.

CPU: analysis.spectra.singular_values vs numpy.linalg.svd(compute_uv=False), and (when
installed) WeightWatcher's per-layer analyze() vs ours plus the same power-law fit; each with
its share of this machine's roofline (float64 GEMM rate and copy bandwidth, measured here).
GPU (when CuPy sees a device; `--dry-run` runs the same code on the CPU with NumPy and CPU
torch at a small scale, to check it): per pythia-1b role shape, every eigensolver route of ours
and every peer (torch.linalg.svdvals with each driver, torch Gram + eigvalsh, CuPy Gram + 2-D
eigvalsh per matrix, cusolverDnXsyevBatched where present), each warmed up on the same batch at
the real shape and timed best of 3 with the device synchronised; ms a matrix, ratio to the best
peer, error against float64 LAPACK, and share of the roofline: a Gram product by syrk (max side
* k^2 flops at the device's FP64 peak) plus a one-stage tridiagonal reduction (k^3 / 6 float64
reads at its memory bandwidth). Then the pythia-1b sweep (154 steps x 16 blocks x 4 roles, each
matrix with `verdicts.draws` draws of 3 baseline kinds, as compute solves them) and the pythia-12b
middle-block sweep, a few steps each, extrapolated to 154.

    python benchmarks/spectra.py [--scale 0.25] [--repeats 3] [--no-weightwatcher] [--gpu-only]
                                 [--dry-run] [--batch 8] [--sweep-steps 1] [--json gpu.json]
"""

import argparse
import json
import time

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


def cpu_roofline(repeats=3):
    """This machine's float64 GEMM rate (flop/s, a 2048^2 matmul) and memory bandwidth (B/s, a
    256 MB copy: bytes read + written), measured now, best of `repeats`."""
    a = np.random.default_rng(0).standard_normal((2048, 2048))
    t, _ = best_time(lambda: a @ a, repeats)
    src = np.ones(32 << 20)
    dst = np.empty_like(src)
    tc, _ = best_time(lambda: np.copyto(dst, src), repeats)
    return 2 * 2048**3 / t, 2 * src.nbytes / tc


def bound_s(m, n, flops, bandwidth):
    """Roofline time of one matrix's singular values by Gram + one-stage eigensolver: the syrk
    Gram (max side * k^2 flops) at `flops`, then the tridiagonal reduction's k^3 / 6 float64
    reads (each step's symv reads the trailing lower triangle) at `bandwidth`."""
    k = min(m, n)
    return max(m, n) * k * k / flops + 8 * k**3 / 6 / bandwidth


def cpu(args):
    flops, bw = cpu_roofline(args.repeats)
    print(f"CPU roofline, measured in this run: float64 GEMM {flops / 1e9:.1f} GFLOP/s (2048^2 matmul), "
          f"memory {bw / 1e9:.1f} GB/s (256 MB copy, read + write)")
    print(f"CPU, scale {args.scale}: seconds per matrix (best of {args.repeats}); ratio = peer / ours; "
          f"roof = roofline time / measured")
    head = f"{'role':9s} {'shape':>11s} {'kind':7s} {'ours':>7s} {'numpy':>7s} {'ratio':>6s} {'err/σmax':>9s} {'bound':>7s} {'roof':>5s}"
    if args.weightwatcher:
        head += f" {'ours+α':>7s} {'ww':>7s} {'ratio':>6s} {'α ours':>7s} {'α ww':>7s}"
    print(head)
    totals = {"ours": 0.0, "numpy": 0.0, "ours_alpha": 0.0, "ww": 0.0, "bound": 0.0}
    for role, (m, n) in PYTHIA_1B.items():
        shp = (max(int(m * args.scale), 8), max(int(n * args.scale), 8))
        for kind in ("random", "heavy"):
            w = matrix(shp, kind, seed=0)
            t_ours, sv = best_time(lambda: spectra.singular_values(w), args.repeats)
            t_np, ref = best_time(lambda: np.linalg.svd(w, compute_uv=False), args.repeats)
            err = float(np.max(np.abs(sv - ref)) / ref[0])
            bound = bound_s(*shp, flops, bw)
            totals["ours"] += t_ours
            totals["numpy"] += t_np
            totals["bound"] += bound
            line = (f"{role:9s} {shp[0]:>5d}x{shp[1]:<5d} {kind:7s} {t_ours:7.3f} {t_np:7.3f} {t_np / t_ours:6.1f} "
                    f"{err:9.1e} {bound:7.3f} {bound / t_ours:5.0%}")
            if args.weightwatcher:
                t_oa, fit = best_time(lambda: measures.powerlaw_alpha(spectra.singular_values(w)), args.repeats)
                t_ww, details = weightwatcher_time(w, args.repeats)
                totals["ours_alpha"] += t_oa
                totals["ww"] += t_ww
                line += f" {t_oa:7.3f} {t_ww:7.3f} {t_ww / t_oa:6.1f} {fit['alpha']:7.3f} {float(details['alpha'].iloc[0]):7.3f}"
            print(line, flush=True)
    print(f"total: ours {totals['ours']:.2f} s, numpy {totals['numpy']:.2f} s, ratio {totals['numpy'] / totals['ours']:.1f}; "
          f"roofline {totals['bound']:.2f} s, ours at {totals['bound'] / totals['ours']:.0%} of it")
    if args.weightwatcher:
        print(f"total: ours+α {totals['ours_alpha']:.2f} s, weightwatcher {totals['ww']:.2f} s, "
              f"ratio {totals['ww'] / totals['ours_alpha']:.1f}")
    candidates(args)


def candidates(args):
    """The issue-16 eigensolver candidates on the CPU (their NumPy twins), n = 1024 * scale:
    time and accuracy; on the CPU the chosen route stays whatever measures fastest."""
    k = max(int(1024 * args.scale), 16)  # half pythia-1b's side: the float32 + refinement route is slow on 2 cores
    w = np.random.default_rng(0).standard_normal((2, k, 2 * k)) * 0.02
    gram = w @ np.swapaxes(w, -1, -2)
    ref = np.linalg.eigvalsh(gram)
    print(f"CPU eigensolver routes, 2 Gram matrices {k}x{k}: s a matrix (a warm-up, then best of {args.repeats}); "
          f"err = max|dlam| / lam_max vs LAPACK dsyevd")
    for route in spectra.EIGH_ROUTES:
        if route == "torch":
            continue
        spectra.eigvalsh(gram[:1], np, route)
        t, lam = best_time(lambda: spectra.eigvalsh(gram, np, route), args.repeats)
        print(f"  {route:10s} {t / 2:8.3f} {float(np.max(np.abs(lam - ref)) / ref.max()):9.1e}", flush=True)
    lb = spectra._to_band(gram[0], spectra.TWO_STAGE_BAND, np)
    import scipy.linalg
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        t2, _ = best_time(lambda: scipy.linalg.eig_banded(lb, lower=True, eigvals_only=True), args.repeats)
    print(f"  two-stage, stage 2 alone (dsbevd, band {spectra.TWO_STAGE_BAND}, one thread): {t2:.3f} s a matrix; "
          f"with 16 host threads that bounds the route at >= {t2 / 16 * 1e3:.0f} ms a matrix at this n")


# FP64 fused multiply-adds per clock per SM without tensor cores, by compute capability: CUDA C++
# Programming Guide, "Arithmetic Instructions" throughput table (A100: 32, H100/H200: 64). FP64
# tensor cores (DMMA) double it on 8.0 and 9.0 (NVIDIA A100 and H100 whitepapers: 19.5 / 67 TFLOPS).
FP64_FMA_PER_SM = {(8, 0): 32, (9, 0): 64, (10, 0): 64}
TENSOR_FP64 = {(8, 0), (9, 0)}


def gpu_roofline(cp):
    """The device's FP64 peak (flop/s) and memory bandwidth (B/s) from its attributes, with the
    formula in the returned note."""
    dev = cp.cuda.Device()
    attr = cp.cuda.runtime.deviceGetAttribute
    sms = attr(16, dev.id)  # cudaDevAttrMultiProcessorCount
    clock = attr(13, dev.id) * 1e3  # cudaDevAttrClockRate, kHz -> Hz (max boost clock)
    mem_clock = attr(36, dev.id) * 1e3  # cudaDevAttrMemoryClockRate
    bus = attr(37, dev.id)  # cudaDevAttrGlobalMemoryBusWidth, bits
    cc = dev.compute_capability
    cc = (int(cc[:-1]), int(cc[-1]))
    fma = FP64_FMA_PER_SM.get(cc, 64)
    tensor = 2 if cc in TENSOR_FP64 else 1
    flops = sms * fma * 2 * tensor * clock
    bw = 2 * mem_clock * bus / 8
    note = (f"FP64 peak {flops / 1e12:.1f} TFLOP/s = {sms} SMs x {fma} FMA/clk x 2 x {tensor} (tensor cores) x "
            f"{clock / 1e9:.2f} GHz; memory {bw / 1e12:.2f} TB/s = 2 x {mem_clock / 1e9:.2f} GHz x {bus} bits / 8 "
            f"(device attributes; compute capability {cc[0]}.{cc[1]}; datasheets: H100 SXM 67 TFLOP/s FP64 tensor, "
            f"3.35 TB/s; H200 67 TFLOP/s, 4.8 TB/s)")
    return flops, bw, note


class Device:
    """What the GPU part runs on: CuPy + CUDA torch, or (dry run) NumPy + CPU torch."""

    def __init__(self, dry_run):
        import torch

        self.torch = torch
        if dry_run:
            self.xp, self.tdev, self.sync = np, "cpu", lambda: None
            flops, bw = cpu_roofline(1)
            self.name, self.flops, self.bw = "CPU (dry run)", flops, bw
            self.note = f"dry run on the CPU: GEMM {flops / 1e9:.1f} GFLOP/s, copy {bw / 1e9:.1f} GB/s, measured now"
        else:
            cp = backend.array_module("cupy")
            self.xp, self.tdev, self.sync = cp, "cuda", cp.cuda.Device().synchronize
            self.name = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
            self.flops, self.bw, self.note = gpu_roofline(cp)
            a = cp.ones(1 << 27)  # 1 GiB
            b = cp.empty_like(a)
            t, _ = best_time(lambda: (cp.copyto(b, a), self.sync()), 3)
            self.note += f"; measured copy {2 * a.nbytes / t / 1e12:.2f} TB/s"

    def timed(self, fn, repeats, cap_s):
        """Warm-up call, then best of `repeats` synchronised calls, fewer if they pass `cap_s`
        seconds in all (the same rule for every contender). -> (seconds, result, calls timed)."""
        t0 = time.perf_counter()
        fn()
        self.sync()
        best, out, n = float("inf"), None, 0
        while n < repeats and (n == 0 or time.perf_counter() - t0 < cap_s):
            t = time.perf_counter()
            out = fn()
            self.sync()
            best, n = min(best, time.perf_counter() - t), n + 1
        return best, out, n


def contenders(d, w, tw):
    """name -> (kind, fn), every fn: the batch's singular values from the float64 batch w
    (xp, (b, m, n)) or tw (torch, the same numbers)."""
    xp, torch = d.xp, d.torch
    out = {}
    for route, workers in [("batched", 0), ("loop", 0), ("threads", 4), ("threads", 8), ("torch", 0),
                           ("mixed", 0), ("two-stage", 0), ("xsyev", 0)]:
        def ours(route=route, workers=workers):
            spectra.EIGH_ROUTE[d.kind] = route
            if workers:
                spectra.EIGH_THREADS[d.kind] = workers
            return spectra.singular_values(w, xp)
        out[f"ours {route}{f'-{workers}' if workers else ''}"] = ("ours", ours)
    small = lambda t: torch.sqrt(torch.clamp(t, min=0)).flip(-1)  # noqa: E731
    for driver in ("gesvd", "gesvdj", "gesvda"):
        kw = {"driver": driver} if d.tdev == "cuda" else {}
        if d.tdev != "cuda" and driver != "gesvd":
            continue  # drivers exist only on CUDA; the CPU has one LAPACK gesdd
        out[f"torch svdvals {driver if kw else '(LAPACK)'}"] = ("peer", lambda kw=kw: torch.linalg.svdvals(tw, **kw))

    def torch_gram():
        g = tw @ tw.mT if tw.shape[-2] <= tw.shape[-1] else tw.mT @ tw
        return small(torch.linalg.eigvalsh(g))

    out["torch Gram + eigvalsh"] = ("peer", torch_gram)

    def xp_gram_2d():
        wt = xp.swapaxes(w, -1, -2)
        g = w @ wt if w.shape[-2] <= w.shape[-1] else wt @ w
        return xp.sqrt(xp.maximum(xp.stack([xp.linalg.eigvalsh(gi) for gi in g]), 0))[:, ::-1]

    out[f"{'CuPy' if d.kind == 'cupy' else 'NumPy'} Gram + 2-D eigvalsh"] = ("peer", xp_gram_2d)
    return out


def gpu(args):
    d = Device(args.dry_run)
    d.kind = "numpy" if d.xp is np else "cupy"
    xp, torch = d.xp, d.torch
    scale = args.gpu_scale if not args.dry_run else min(args.gpu_scale, 1 / 16)
    report = {"device": d.name, "roofline": d.note, "torch": torch.__version__, "shapes": {}}
    print(f"GPU part on {d.name}, torch {torch.__version__}{', CuPy ' + xp.__version__ if d.kind == 'cupy' else ''}")
    print(f"roofline: {d.note}")
    routes0 = dict(spectra.EIGH_ROUTE), dict(spectra.EIGH_THREADS)
    for role, (m, n) in PYTHIA_1B.items() if not args.sweeps_only else ():
        m, n = max(int(m * scale), 8), max(int(n * scale), 8)
        if args.roles and role not in args.roles:
            continue
        host = np.stack([matrix((m, n), "random", seed=s) for s in range(args.batch)])
        w, tw = xp.asarray(host), torch.as_tensor(host, device=d.tdev)
        ref = np.linalg.svd(host[0], compute_uv=False)
        bound = bound_s(m, n, d.flops, d.bw)
        print(f"{role} {m}x{n}, batch {args.batch}: ms a matrix (warm-up, then best of {args.repeats}, synchronised); "
              f"ratio = best peer / this; roofline {bound * 1e3:.2f} ms a matrix")
        print(f"  {'contender':28s} {'ms':>9s} {'ratio':>6s} {'err/σmax':>9s} {'roof':>6s}")
        rows = {}
        for name, (kind, fn) in contenders(d, w, tw).items():
            try:
                t, sv, calls = d.timed(fn, args.repeats, args.cap_s)
                sv0 = sv[0].cpu().numpy() if hasattr(sv, "cpu") else backend.to_numpy(sv[0])
                rows[name] = {"kind": kind, "ms": t / args.batch * 1e3, "calls": calls,
                              "err": float(np.max(np.abs(sv0 - ref)) / ref[0])}
            except Exception as e:  # a contender that fails here is reported, not fatal
                rows[name] = {"kind": kind, "failed": f"{type(e).__name__}: {e}"[:200]}
        spectra.EIGH_ROUTE.update(routes0[0]), spectra.EIGH_THREADS.update(routes0[1])
        peers = [r["ms"] for r in rows.values() if r["kind"] == "peer" and "ms" in r]
        best_peer = min(peers) if peers else float("nan")
        for name, r in rows.items():
            if "ms" in r:
                r["ratio"], r["roof"] = best_peer / r["ms"], bound * 1e3 / r["ms"]
                fewer = "" if r["calls"] == args.repeats else f"  (best of {r['calls']}: past --cap-s)"
                print(f"  {name:28s} {r['ms']:9.2f} {r['ratio']:6.2f} {r['err']:9.1e} {r['roof']:6.1%}{fewer}", flush=True)
            else:
                print(f"  {name:28s} failed: {r['failed']}", flush=True)
        report["shapes"][role] = {"shape": [m, n], "batch": args.batch, "bound_ms": bound * 1e3, "rows": rows}
        del w, tw
    sweeps(args, d, scale, report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


PYTHIA_12B = {"qkv": (15360, 5120), "attn_out": (5120, 5120), "mlp_in": (20480, 5120), "mlp_out": (5120, 20480)}


def sweeps(args, d, scale, report):
    """The sweeps as compute runs them: per (step, role), the blocks' matrices (fp16 in host
    memory, as read from checkpoints) through baselines.with_draws (the weights and `verdicts.draws`
    draws of each baseline kind), `steps` steps timed and extrapolated to Pythia's 154."""
    draws = config.DEFAULTS["verdicts"]["draws"]
    xp = d.xp
    if args.dry_run:
        scale /= 2
    for model, shapes, blocks, steps in (("pythia-1b", PYTHIA_1B, 16, args.sweep_steps),
                                         ("pythia-12b middle block", PYTHIA_12B, 1, args.sweep_steps_12b)):
        if steps <= 0:
            continue
        host = {role: np.stack([matrix((max(int(m * scale), 8), max(int(n * scale), 8)), "random", seed=s)
                                .astype(np.float16) for s in range(blocks)]) for role, (m, n) in shapes.items()}
        with_draws = lambda step, role: baselines.with_draws(  # noqa: E731
            xp.asarray(host[role]), [(step, b, role) for b in range(blocks)], step, draws, xp)
        with_draws(0, "attn_out")  # warm-up
        d.sync()
        t = time.perf_counter()
        for step in range(steps):
            for role in host:
                with_draws(step, role)
        d.sync()
        took = time.perf_counter() - t
        solves = steps * len(host) * blocks * (1 + 3 * draws)
        est = took * 154 / steps / 60
        report[f"sweep {model}"] = {"steps": steps, "solves": solves, "s": took, "min_for_154": est}
        print(f"sweep {model}: {steps} step(s) x {blocks} block(s) x {len(host)} roles x (weights + 3 kinds x {draws} "
              f"draws) = {solves} solves in {took:.1f} s; 154 steps would take {est:.1f} min (extrapolated)", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="shrink every side by this factor (CPU part)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-weightwatcher", dest="weightwatcher", action="store_false")
    p.add_argument("--gpu-only", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="run the GPU part's code on the CPU (NumPy, CPU torch), 1/16 scale")
    p.add_argument("--batch", type=int, default=8, help="GPU: matrices per role shape, the same for every contender")
    p.add_argument("--roles", nargs="*", help="GPU: only these roles (default all four)")
    p.add_argument("--cap-s", type=float, default=20.0, help="GPU: stop repeating a contender after this many seconds")
    p.add_argument("--sweeps-only", action="store_true", help="GPU: skip the contenders, time only the sweeps")
    p.add_argument("--sweep-steps", type=int, default=1, help="pythia-1b sweep: steps to time (0: skip)")
    p.add_argument("--sweep-steps-12b", type=int, default=1, help="pythia-12b middle-block sweep: steps to time (0: skip)")
    p.add_argument("--gpu-scale", type=float, default=1.0, help="shrink every side by this factor (GPU part)")
    p.add_argument("--json", help="also write the GPU numbers here")
    args = p.parse_args()
    if args.weightwatcher and not args.dry_run:
        try:
            import weightwatcher  # noqa: F401
        except ImportError:
            print("weightwatcher is not installed (pip install weightwatcher==0.7.7): skipping that column")
            args.weightwatcher = False
    if not args.gpu_only and not args.dry_run:
        cpu(args)
    if args.dry_run or backend.cupy_or_none() is not None:
        gpu(args)
    else:
        print("no CUDA device: GPU part skipped (--dry-run runs its code on the CPU)")


if __name__ == "__main__":
    main()
