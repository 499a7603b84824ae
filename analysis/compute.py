"""Fill and read the results cache for what the chapters show.

Chapters and `python -m analysis compute` (`fill`) call the same functions: `spectra`
(singular values with fitted baselines, keyed by the checkpoint's content hash),
`measures`, `audit_table`, the residual toy (`residual_simulation`, `residual_curves`,
`effective_depths`), `activations`, `qkv_parts` and `baselines_vs_mp`. Each is cached in
the store, so a warm chapter only reads.
"""

import io
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm  # plain: the notebook widget variant needs ipywidgets

from . import audit as audit_mod
from . import residual, shape
from .architectures import tensor_names
from .backend import array_module, memory_budget
from .checkpoints import Checkpoint, CheckpointError, formats, open_runs, select_steps
from .spectra import BASELINES, with_baselines, with_baselines_batch
from .store import Store, key_digest

SPECTRUM_VERSION = 3  # bump when what `spectrum` computes changes (3: baselines drawn on the device)
MEASURES_VERSION = 1  # bump when `shape_measures` changes
NEAR_ZERO_Q = 0.1  # "near zero": below the Gaussian baseline's 10th percentile


def resolve_block(cfg: dict, run) -> int:
    return run.middle_block() if cfg["block"] == "middle" else int(cfg["block"])


def spectrum_key(ckpt: Checkpoint, role: str, block: int, seed: int) -> dict:
    return {"kind": "spectrum", "version": SPECTRUM_VERSION, "weights": ckpt.content_hash,
            "tensor": ckpt.tensor_name(role, block), "seed": seed}


def spectrum_records(ws, seed: int, xp=np, budget_bytes: int | None = None) -> list[dict]:
    """What is cached per matrix of ws: (b, out, in), same-shape matrices (NumPy): each one's
    spectrum, its baselines' and its entry statistics, computed on `xp` in batches that fit
    `budget_bytes`."""
    out = with_baselines_batch(ws, seed, xp, budget_bytes)
    for rec in out:  # the Gaussian fit's scale is the entries' std
        rec.update(std=rec["gaussian_scale"], rows=ws.shape[1], cols=ws.shape[2])
    return out


def prefetched(load, items):
    """Yield (item, load(item)), loading the next item in a thread while the caller works on
    the current one: reading tensors (disk or network) overlaps computing spectra."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(load, items[0]) if items else None
        for i, item in enumerate(items):
            value = future.result()
            if i + 1 < len(items):
                future = pool.submit(load, items[i + 1])
            yield item, value


def spectra(cfg: dict, progress: bool = True, blocks=None, steps=None) -> list[dict]:
    """Records {run, step, block, role, sv, gaussian, logistic, shuffled, fits, ..., key} for
    the configured runs and roles, in run, step, block, role order. Missing ones are computed
    a (run, step, role) batch at a time (reading the next batch while computing this one) and
    cached one record per matrix.

    blocks: None (the configured block), "all", or a list; steps: None (the configured
    steps), "last", or a list."""
    store, xp = Store(cfg["cache_dir"]), array_module(cfg["backend"])
    runs = open_runs(cfg)
    flagged = audit_mod.flagged_steps(audit_table(cfg, runs))
    jobs = []
    for run in runs.values():
        n_layers = run.checkpoint(run.steps[0]).n_layers
        block_list = ([resolve_block(cfg, run)] if blocks is None else
                      list(range(n_layers)) if blocks == "all" else list(blocks))
        step_list = select_steps(run, cfg["steps"])
        bad = sorted(flagged.get(run.name, set()) & set(step_list))
        if bad:
            action = "left out (exclude_flagged)" if cfg["exclude_flagged"] else "kept; set exclude_flagged to leave them out"
            warnings.warn(f"run {run.name!r}: the audit flags steps {bad}: {action}", stacklevel=2)
            if cfg["exclude_flagged"]:
                step_list = [s for s in step_list if s not in bad]
        if steps == "last":
            step_list = step_list[-1:]
        elif steps is not None:
            step_list = select_steps(run, steps)
        for step in step_list:
            ckpt = run.checkpoint(step)
            for block in block_list:
                for role in cfg["roles"]:
                    jobs.append({"run": run.name, "step": step, "block": block, "role": role, "ckpt": ckpt,
                                 "key": spectrum_key(ckpt, role, block, cfg["seed"])})
    missing = [j for j in jobs if not store.has(j["key"])]
    # One batch per (run, step, role): the blocks of a role share a shape, so they and their
    # baselines go through the eigensolver together (what makes a GPU pay off).
    groups = {}
    for j in missing:
        groups.setdefault((j["run"], j["step"], j["role"]), []).append(j)
    load = lambda g: np.stack([j["ckpt"].matrix(j["role"], j["block"]) for j in g])  # noqa: E731
    bar = tqdm(total=len(missing), desc="spectra", unit="matrix", disable=not progress or not missing)
    moved = formats.bytes_read()
    budget = memory_budget(xp, cfg["memory"]["device_fraction"], int(cfg["memory"]["host_gib"] * 2**30))
    for group, ws in prefetched(load, list(groups.values())):
        for job, record in zip(group, spectrum_records(ws, cfg["seed"], xp, budget)):
            store.put(job["key"], record)
        bar.set_postfix_str(f"{(formats.bytes_read() - moved) / 1e6:.1f} MB read", refresh=False)
        bar.update(len(group))
    bar.close()
    return [{**{k: j[k] for k in ("run", "step", "block", "role")}, **store.get(j["key"]), "key": key_digest(j["key"])}
            for j in jobs]


def audit_table(cfg: dict, runs: dict | None = None) -> pd.DataFrame:
    """The audit of the configured runs (every step; the configured block's tensors hashed),
    cached under the runs' content hashes."""
    runs = runs if runs is not None else open_runs(cfg)

    def tensors_for(run):
        ck = run.checkpoint(run.steps[0])
        block = resolve_block(cfg, run)
        return [n for role in cfg["roles"] for n in tensor_names(ck.architecture, role, block, ck.n_layers)]

    hashes = {}
    for run in runs.values():
        for step in run.steps:
            try:
                hashes[f"{run.name}/{step}"] = run.checkpoint(step).content_hash
            except CheckpointError as e:
                hashes[f"{run.name}/{step}"] = f"error: {e}"
    key = {"kind": "audit", "version": audit_mod.AUDIT_VERSION, "hashes": hashes,
           "tensors": {name: tensors_for(run) for name, run in runs.items()}}
    store = Store(cfg["cache_dir"])
    cached = store.get(key)
    if cached is not None:
        return pd.read_json(io.StringIO(cached["table"]), orient="records", dtype=False)
    table = audit_mod.audit(runs, tensors_for)
    store.put(key, {"table": table.to_json(orient="records")})
    return table


def qkv_parts(cfg: dict, run_name: str | None = None) -> dict:
    """Singular values of the configured block's fused QKV matrix at the last step and of the
    Q, K and V split out of it, each with a sampled Gaussian baseline. -> {name: (sv, gaussian)}"""
    from .architectures import split_qkv

    runs = open_runs(cfg)
    run = runs[run_name] if run_name else next(iter(runs.values()))
    ck = run.checkpoint(select_steps(run, cfg["steps"])[-1])
    block = resolve_block(cfg, run)
    key = {"kind": "qkv-parts", "version": 1, "weights": ck.content_hash, "block": block, "seed": cfg["seed"]}

    def compute():
        w = ck.matrix("qkv", block).astype(np.float64)
        mats = {"fused": w, **dict(zip("qkv", split_qkv(w, ck.n_heads, ck.architecture.qkv_layout)))}
        out = {}
        for name, m in mats.items():
            r = with_baselines(m, cfg["seed"])
            out[f"{name}_sv"], out[f"{name}_gaussian"] = r["sv"], r["gaussian"]
        return out

    got = Store(cfg["cache_dir"]).cached(key, compute)
    return {name: (got[f"{name}_sv"], got[f"{name}_gaussian"]) for name in ("fused", "q", "k", "v")}


def baselines_vs_mp(cfg: dict, sizes=(32, 64, 128, 256, 512, 1024)) -> pd.DataFrame:
    """KS distance to Marchenko-Pastur of sampled Gaussian and logistic (size, 2*size)
    matrices: both converge by universality. Rows (size, kind, ks), cached."""
    import scipy.stats

    from .spectra import mp_cdf, sample_baseline, singular_values

    def compute():
        rows = []
        for size in sizes:
            for kind, params in (("gaussian", {"loc": 0.0, "scale": 1.0}), ("logistic", {"loc": 0.0, "scale": np.sqrt(3) / np.pi})):
                sv = singular_values(sample_baseline(kind, params, (size, 2 * size), cfg["seed"]))
                ks = scipy.stats.kstest(sv, lambda s: mp_cdf(s, size, 2 * size, 1.0)).statistic
                rows.append((size, kind, ks))
        return {"size": np.array([r[0] for r in rows]), "kind": np.array([r[1] for r in rows]),
                "ks": np.array([r[2] for r in rows])}

    key = {"kind": "baselines-vs-mp", "version": 1, "sizes": list(sizes), "seed": cfg["seed"]}
    return pd.DataFrame(Store(cfg["cache_dir"]).cached(key, compute))


def _activation_steps(cfg: dict, run) -> list[int]:
    steps = select_steps(run, cfg["steps"])
    if cfg["activation_steps"] == "auto":
        if cfg["suite"] != "hub":
            return steps
        picks = np.unique(np.geomspace(1, len(steps), 8).round().astype(int) - 1)  # full models are big
        return [steps[i] for i in picks]
    return select_steps(run, cfg["activation_steps"])


def _model_and_tokenizer(run, ck):
    """A transformers model for a checkpoint, and its run's tokenizer as text -> ids."""
    from transformers import AutoModelForCausalLM

    if getattr(run, "repo", None):  # hub: whole weights are needed for a forward pass
        from transformers import AutoTokenizer

        repo, commit = ck.cache_id.split("@")
        tok = AutoTokenizer.from_pretrained(repo)
        return AutoModelForCausalLM.from_pretrained(repo, revision=commit).eval(), lambda t: tok(t)["input_ids"]
    from tokenizers import Tokenizer

    path = Path(run.folder).parent / "tokenizer.json"
    if not path.is_file():
        raise CheckpointError(f"run {run.name!r}: no tokenizer.json beside its folder ({path})")
    tok = Tokenizer.from_file(str(path))
    return AutoModelForCausalLM.from_pretrained(ck.folder).eval(), lambda t: tok.encode(t).ids


def activations(cfg: dict, progress: bool = False) -> list[dict]:
    """Per run and step: histograms of the residual stream after each block on the held-out
    text (analysis/data/heldout.txt), cached. -> [{run, step, hist, kurtosis, std}]"""
    from . import activations as act

    store, records = Store(cfg["cache_dir"]), []
    text = act.HELDOUT.read_text()
    for run in open_runs(cfg).values():
        for step in tqdm(_activation_steps(cfg, run), desc=f"activations {run.name}", disable=not progress):
            ck = run.checkpoint(step)
            key = {"kind": "activations", "version": act.ACTIVATIONS_VERSION, "weights": ck.content_hash,
                   "text": key_digest({"text": text})}

            def compute():
                model, tokenize = _model_and_tokenizer(run, ck)
                seq = min(128, int(getattr(model.config, "max_position_embeddings", 128)))
                return act.histograms(act.block_outputs(model, act.token_batch(tokenize, text, seq)))

            records.append({"run": run.name, "step": step, **store.cached(key, compute)})
    return records


def residual_simulation(cfg: dict, aspects) -> dict:
    """The toy residual network for the `residual` settings, cached: {sv_<cols>, act}."""
    p = cfg["residual"]
    aspects = sorted({round(float(a), 6) for a in aspects} | {1.0})
    key = {"kind": "residual", "version": residual.SIMULATION_VERSION, "aspects": aspects,
           **{k: p[k] for k in ("width", "depth", "seeds", "sigma2", "n_inputs", "seed")}}
    xp = array_module(cfg["backend"])
    return Store(cfg["cache_dir"]).cached(key, lambda: residual.simulate(
        p["width"], p["depth"], p["seeds"], p["sigma2"], p["n_inputs"], p["seed"], xp, aspects))


def residual_curves(cfg: dict, sim: dict) -> dict:
    """Non-Gaussianity of the toy against depth (residual.depth_curves), cached."""
    p = cfg["residual"]
    key = {"kind": "residual-curves", "version": residual.SIMULATION_VERSION, "alpha_seeds": p["alpha_seeds"],
           **{k: p[k] for k in ("width", "depth", "seeds", "sigma2", "n_inputs", "seed")}}
    return Store(cfg["cache_dir"]).cached(key, lambda: residual.depth_curves(sim, p["width"], p["alpha_seeds"]))


def effective_depths(cfg: dict, records: list[dict], sim: dict) -> pd.DataFrame:
    """One row per record: the toy depth closest to its spectrum, with the seed band; cached
    per spectrum and toy configuration."""
    store, p = Store(cfg["cache_dir"]), cfg["residual"]
    toy = {k: p[k] for k in ("width", "depth", "seeds", "sigma2", "n_inputs", "seed")}
    rows = []
    for r in records:
        key = {"kind": "effective-depth", "version": residual.SIMULATION_VERSION, "spectrum": r["key"], "toy": toy}
        e = store.cached(key, lambda: residual.effective_depth(r["sv"], r["rows"], r["cols"], sim, p["width"]))
        rows.append({k: r[k] for k in ("run", "step", "block", "role")} |
                    {"effective_depth": e["depth"], "low": e["low"], "high": e["high"], "distance": e["distance"]})
    return pd.DataFrame(rows)


def shape_measures(r: dict) -> dict:
    """Every shape measure of one spectrum record (see analysis.shape). -> {measure: value}"""
    var = r["gaussian_scale"] ** 2
    out = {}
    for b in BASELINES:
        out[f"ks_{b}"] = shape.ks_distance(r["sv"], r[b])
        out[f"w1_{b}"] = shape.w1_distance(r["sv"], r[b])
        out[f"top_ratio_{b}"] = shape.top_ratio(r["sv"], r[b])
        out[f"near_zero_{b}"] = shape.near_zero_fraction(r["sv"], r[b], NEAR_ZERO_Q)
    out["near_zero_mp"] = shape.below_mp_edge(r["sv"], r["rows"], r["cols"], var)
    out["near_zero_median"] = shape.below_median_fraction(r["sv"])
    out["spikes"] = shape.spikes(r["sv"], r["rows"], r["cols"], var)
    fit = shape.powerlaw_alpha(r["sv"])
    out.update({f"alpha{'' if k == 'alpha' else '_' + k}": v for k, v in fit.items()})
    out["alpha_gaussian"] = shape.powerlaw_alpha(r["gaussian"])["alpha"]
    out.update(kurtosis=r["kurtosis"], std=r["std"], frobenius=float(np.sqrt(np.sum(r["sv"] ** 2))),
               spectral_norm=float(np.max(r["sv"])), stable_rank=shape.stable_rank(r["sv"]),
               n_singular_values=len(r["sv"]))
    return out


def measures(records: list[dict], cache_dir=None) -> pd.DataFrame:
    """Tidy table (run, step, block, role, measure, value) of the shape measures, each
    record's measures cached under its spectrum's key when `cache_dir` is given."""
    store = Store(cache_dir) if cache_dir else None
    rows = []
    for r in records:
        if store is None:
            values = shape_measures(r)
        else:
            key = {"kind": "measures", "version": MEASURES_VERSION, "spectrum": r["key"], "near_zero_q": NEAR_ZERO_Q}
            values = store.cached(key, lambda: shape_measures(r))
        ids = {"run": r["run"], "step": r["step"], "block": r["block"], "role": r["role"]}
        rows += [{**ids, "measure": k, "value": float(v)} for k, v in values.items()]
    return pd.DataFrame(rows)


CHAPTERS = ("weight-distribution", "residual-paths", "depth-trends", "deduplication", "methods", "audit")


def fill(cfg: dict, progress: bool = True, chapter: str | None = None) -> dict:
    """Everything the chapters read (or one chapter's part), computed and cached: the
    audit, spectra and measures of the configured block through training, of every block at
    the last step, and the toy model."""
    if chapter is not None and chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; expected one of {CHAPTERS}")
    want = set(CHAPTERS) if chapter is None else {chapter}
    done = {"spectra": 0, "measures": 0}
    audit_table(cfg)
    if want & {"weight-distribution", "residual-paths", "depth-trends", "deduplication"}:
        middle = spectra(cfg, progress)
        by_block = spectra(cfg, progress, blocks="all", steps="last") if "residual-paths" in want else []
        done["spectra"] = len(middle) + len(by_block)
        done["measures"] = len(measures(middle, cfg["cache_dir"]))
        if "deduplication" in want:
            activations(cfg, progress)
        if want & {"depth-trends", "deduplication"}:
            every = spectra(cfg, progress, blocks="all")
            done["spectra"] += len(every)
            done["measures"] += len(measures(every, cfg["cache_dir"]))
        if "residual-paths" in want:
            aspects = {min(r["rows"], r["cols"]) / max(r["rows"], r["cols"]) for r in middle + by_block}
            sim = residual_simulation(cfg, aspects)
            residual_curves(cfg, sim)
            effective_depths(cfg, middle + by_block, sim)
    if "methods" in want:
        qkv_parts(cfg)
        baselines_vs_mp(cfg)
    return done
