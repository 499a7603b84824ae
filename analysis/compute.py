"""How each named table of the results is made: a function of the Results object
(settings, runs, other tables) returning a DataFrame, records or arrays. `results.Results`
asks for a table and caches it; nothing here reads or writes the cache."""

import numpy as np
import pandas as pd

from . import activations as act
from . import audit, dynamics, experiments, extract, inits, measures, published, residual, verdicts, weight_stats
from .architectures import resolve_block, tensor_names
from .backend import array_module
from .checkpoints import describe, first_readable

NEAR_ZERO_Q = 0.1  # "near zero": below the Gaussian draws' 10th percentile


def _audit(r):
    def tensors_for(run):
        ck = first_readable(run)  # a broken first step is the audit's to flag, not a reason to stop
        block = resolve_block(r.cfg["block"], ck.n_layers)
        return [n for role in r.cfg["roles"] for n in tensor_names(ck.architecture, role, block, ck.n_layers)]

    return audit.audit(r.runs, tensors_for)


def spectra_plan(r) -> dict:
    """{run: {step: [blocks]}}: the configured block at every analysed step, every block at
    the depth steps."""
    every = list(range(r.n_layers))
    return {name: {s: every if s in set(r.depth_steps[name]) else [r.block] for s in steps} for name, steps in r.steps.items()}


def _spectra(r):
    """The matrices of spectra_plan, every run, with their draws."""
    return extract.spectra(r.cfg, r.runs, spectra_plan(r), r.progress)


def _once(r, name: str, make):
    """make(), computed once per Results object: one pass that gives two tables."""
    if name not in r.__dict__:
        r.__dict__[name] = make()
    return r.__dict__[name]


_MEASURED = {}  # (run, its records' keys) -> (measures, draws): views that share a run (Results.architecture) measure it once


def _measure_tables(r):
    """measures.tables of r.spectra, made run by run (records come grouped by run, so the rows
    keep their order) and each run's taken from _MEASURED when another view measured it."""
    def make():
        by_run = {}
        for x in r.spectra:
            by_run.setdefault(x["run"], []).append(x)
        keys = {run: (run, tuple(x["key"] for x in records)) for run, records in by_run.items()}
        missing = [run for run in by_run if keys[run] not in _MEASURED]
        if missing:  # one call: its processes start once for all the runs
            m, d = measures.tables([x for run in missing for x in by_run[run]], NEAR_ZERO_Q)
            for run in missing:
                _MEASURED[keys[run]] = (m[m["run"] == run].reset_index(drop=True), d[d["run"] == run].reset_index(drop=True))
        parts = [_MEASURED[keys[run]] for run in by_run]
        return tuple(pd.concat([p[i] for p in parts], ignore_index=True) for i in (0, 1))

    return _once(r, "_measure_tables", make)


def _measures(r):
    return _measure_tables(r)[0]


def _draws(r):
    return _measure_tables(r)[1]


def _run_distances(r):
    return experiments.run_distances(r.runs, r.spectra, r.reference, r.block)


def _toy(r):
    p = r.cfg["residual"]
    aspects = {min(x["rows"], x["cols"]) / max(x["rows"], x["cols"]) for x in r.spectra}
    sim = residual.simulate(r.toy_width, p["depth"], p["seeds"], p["sigma2"], p["n_inputs"], p["seed"],
                            array_module(r.cfg["backend"]), sorted(aspects | {1.0}))
    return {**sim, "sigma2": np.float64(p["sigma2"]), "width": np.int64(r.toy_width)}


def _toy_curves(r):
    return residual.depth_curves(r.toy, r.toy_width, r.cfg["residual"]["alpha_seeds"])


def _last_block_records(r):
    last = {name: steps[-1] for name, steps in r.steps.items()}
    return [x for x in r.spectra if x["block"] == r.block and x["step"] == last[x["run"]]]


def _toy_tables(r):
    return _once(r, "_toy_tables", lambda: experiments.toy_against_controls(
        r.runs, _last_block_records(r), r.toy, r.toy_width, r.cfg["verdicts"]["draws"], r.cfg["seed"]))


def _toy_fit(r):
    return _toy_tables(r)[0]


def _toy_depth(r):
    return _toy_tables(r)[1]


def _effective_depths(r):
    last = {name: steps[-1] for name, steps in r.steps.items()}
    picked = [x for x in r.spectra if x["block"] == r.block or x["step"] == last[x["run"]]]
    return experiments.effective_depths(picked, r.toy, r.toy_width)


def _activation_steps(r, name) -> list[int]:
    steps, setting = r.steps[name], r.cfg["activation_steps"]
    if setting != "auto":
        return r.choose_steps(name, setting, "analysis.activation_steps")
    if r.cfg["suite"] != "hub":
        return steps
    picks = np.unique(np.geomspace(1, len(steps), 8).round().astype(int) - 1)  # full models are big
    return [steps[i] for i in picks]


def _activations(r):
    steps = {name: _activation_steps(r, name) for name in r.runs}
    return act.of_runs(r.runs, steps, r.store.url)


def _qkv_parts(r):
    run = r.runs[r.reference]
    parts = experiments.qkv_parts(run.checkpoint(r.steps[r.reference][-1]), r.block, r.cfg["seed"])
    return {f"{name}_{i}": v for name, pair in parts.items() for i, v in zip(("sv", "gaussian"), pair)}


def _baselines_vs_mp(r):
    return experiments.baselines_vs_mp(r.cfg["seed"])


def _verdicts(r):
    v, level = r.cfg["verdicts"], r.cfg["verdicts"]["level"]
    same_process = [r.reference, *r.of_role("replica")]
    parts = [verdicts.weight_distribution(r.measures, r.draws, r.block, level, v["formed_by"]),
             verdicts.residual_paths(r.toy_fit, r.toy_depth, r.n_layers, level, r.cfg["residual"]["sigma2"]),
             verdicts.depth_trends(r.measures, r.draws, same_process, level)]
    if r.of_role("treatment") and r.of_role("replica"):
        steps = r.shared_depth_steps  # per-block norms: the steps at which every run reads every block
        parts.append(verdicts.deduplication(r.measures, r.run_distances, r.activations, r.names, steps, level,
                                            v["bootstrap"], r.cfg["seed"], v["diverged"], v["alike_margin"])[0])
    return pd.concat(parts, ignore_index=True)


def _diverged(r):
    treatment = r.of_role("treatment")[0]
    curve = verdicts.divergence(r.run_distances, treatment)
    first = min(r.steps[r.reference]) + 1  # claim 4 compares trained steps only
    return {"step": np.int64(max(first, verdicts.diverged_from(r.run_distances, treatment, r.cfg["verdicts"]["diverged"]))),
            "steps": curve.index.to_numpy(), "distance": curve.to_numpy()}


def _run_info(r):
    return pd.DataFrame(describe(r.cfg))


def _baseline_agreement(r):
    return verdicts.baselines_agree(r.draws[r.draws.block == r.block], r.cfg["verdicts"]["level"])


def _architecture_runs(r):
    """Claims 1–3 for each architecture of `analysis.architectures`, each computed as the book
    computes them, on a view of the results whose run roles are that architecture's own (its
    first run the reference, the rest its replicas; no treatment). Claim 3 twice: pooled over
    the architecture's runs (scope "pooled", as the book states it) and per run (scope "run",
    whose spread over replicas is the noise the architectures are compared against)."""
    level, frames = r.cfg["verdicts"]["level"], []
    for label in r.cfg["architectures"]:
        a = r.architecture(label)
        rows = a.verdicts.assign(scope=np.where(a.verdicts["claim"] == 3, "pooled", "run"))
        per_run = [verdicts.depth_trends(a.measures, a.draws, [name], level).assign(scope="run") for name in a.runs]
        frames.append(pd.concat([rows, *per_run], ignore_index=True).assign(architecture=label))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _architecture_blocks(r):
    """Per architecture, run, block and role at the run's last step, the quantities claim 3
    takes slopes of: excess W1 to the Gaussian draws and σmax/rms over the draws' mean."""
    level, rows = r.cfg["verdicts"]["level"], []
    for label in r.cfg["architectures"]:
        a = r.architecture(label)
        m, d = a.measures, a.draws
        for name, role_of_run in a.names.items():
            last = a.last_step(name)
            for x in m[(m.run == name) & (m.step == last) & (m.measure == "tail")].itertuples():
                at = dict(run=name, step=last, block=x.block, role=x.role)
                g = d[(d.run == name) & (d.step == last) & (d.block == x.block) & (d.role == x.role) &
                      (d.kind == "gaussian") & (d.measure == "tail")]
                rows.append({"architecture": label, "run": name, "run_role": role_of_run, "block": x.block,
                             "role": x.role, "excess_w1": verdicts.excess_w1(m, d, level, **at)[0],
                             "tail_ratio": x.value / float(g["value"].mean())})
    return pd.DataFrame(rows)


def _architecture_verdicts(r):
    if r.architecture_runs.empty:
        return pd.DataFrame()
    (_, first), (_, second) = r.cfg["architectures"].items()
    runs = r.architecture_runs
    # Measures read off a grid: the share of training on the checkpoint steps, the toy's integer depths.
    views = [r.architecture(label) for label in r.cfg["architectures"]]
    steps = {s / a.steps[n][-1] for a in views for n in a.runs for s in a.steps[n]}
    grids = {m: sorted(steps) for m in runs["measure"].unique() if m.startswith("share of training")}
    grids.update({m: range(1, r.cfg["residual"]["depth"] + 1) for m in runs["measure"].unique()
                  if m.startswith("toy depth")})
    return verdicts.architectures(runs, r.cfg["verdicts"]["level"], list(zip(first, second)), grids)


TABLES = {
    "run_info": _run_info, "baseline_agreement": _baseline_agreement, "audit": _audit, "spectra": _spectra, "measures": _measures, "draws": _draws, "run_distances": _run_distances,
    "toy": _toy, "toy_curves": _toy_curves, "toy_fit": _toy_fit, "toy_depth": _toy_depth,
    "effective_depths": _effective_depths, "activations": _activations, "qkv_parts": _qkv_parts,
    "baselines_vs_mp": _baselines_vs_mp, "verdicts": _verdicts, "diverged": _diverged,
    "architecture_runs": _architecture_runs, "architecture_verdicts": _architecture_verdicts,
    "architecture_blocks": _architecture_blocks,
}


# The study's published Pythia statistics (analysis.published) and the same statistics from
# the tensors this build reads (analysis.weight_stats).
def _published_audit(r):
    return published.audit(published.load())


def _published_usable(r):
    return published.usable(published.load(), r.published_audit)


def _weight_stats(r):
    return weight_stats.of_runs(r.runs, r.steps, r.cfg["roles"])


def _published_tail(r) -> pd.DataFrame:
    """Tail proxy of the published sizes and of this build's reference and replicas (averaged
    within each step and block: one model). -> (model, role, step, block, value)"""
    tail = published.tail_ratio(_published_usable(r))
    tail["model"] = tail["size"].map(lambda s: published.SIZES[s][0])
    tail = tail.sort_values("size", key=lambda c: c.map(list(published.SIZES).index), kind="stable")
    runs = [r.reference, *r.of_role("replica")]
    own = weight_stats.tail_ratio(r.weight_stats[r.weight_stats.run.isin(runs)], ["run", "role", "step", "block"])
    own = own.groupby(["role", "step", "block"], sort=False)["value"].mean().reset_index()
    own["model"] = f"this build: {'+'.join(runs)}"
    return pd.concat([tail.drop(columns="size"), own], ignore_index=True)[["model", "role", "step", "block", "value"]]


def _published_verdicts(r):
    v = r.cfg["verdicts"]
    tail = r.published_tail
    pythia = tail[~tail.model.str.startswith("this build")]
    own = tail[tail.model.str.startswith("this build")]
    return pd.concat([verdicts.published_depth_trends(pythia, v["level"], v["bootstrap"], r.cfg["seed"],
                                                      pooled_name=PUBLISHED_POOLED),
                      verdicts.published_depth_trends(own, v["level"], v["bootstrap"], r.cfg["seed"])],
                     ignore_index=True)


PUBLISHED_POOLED = "Pythia 70m–1.4b (5 sizes)"


def _published_slopes(r):
    """Per model, role and step: the tail proxy's OLS slope over relative depth with its
    Student-t interval. -> (model, role, step, slope, low, high)"""
    rows = []
    level = r.cfg["verdicts"]["level"]
    for (model, role, step), g in r.published_tail.groupby(["model", "role", "step"], sort=False):
        per_block = g.groupby("block")["value"].mean()
        x = per_block.index.to_numpy(dtype=float) / max(per_block.index.max(), 1)
        est, lo, hi, _ = verdicts.depth_slope(pd.DataFrame({"block": x, "value": per_block.to_numpy()}), level)
        rows.append({"model": model, "role": role, "step": int(step), "slope": est, "low": lo, "high": hi})
    return pd.DataFrame(rows)


PHASE_NULL_DRAWS = 200  # surrogate curves per block for the kink detector's null


def _published_phase(r):
    """Per size and block: the QKV norm trajectory's sharpest kink and whether it is a phase
    shift against that block's smooth null (dynamics.phase_shift; the study's phase shift was
    in QKV). -> (size, role, block, step, before, after, acceleration, p, false_positive, shift)"""
    rows = []
    level = r.cfg["verdicts"]["level"]
    for (size, role, block), g in published.norms(_published_usable(r)).query("role == 'qkv'").groupby(["size", "role", "block"], sort=False):
        g = g.sort_values("step")
        ps = dynamics.phase_shift(g["step"].to_numpy(), g["value"].to_numpy(), PHASE_NULL_DRAWS,
                                  r.cfg["seed"] + int(block), level)
        rows.append({"size": size, "role": role, "block": int(block), **ps})
    return pd.DataFrame(rows)


def _published_fidelity(r):
    """This build's runs of a published size against the published table, per (step, block,
    role, statistic) both have (weight_stats.compare); no rows where no run is of a
    published size."""
    usable, parts = _published_usable(r), []
    for run in r.runs:
        size = published.size_of(run)
        if size is None:
            continue
        ours = r.weight_stats[r.weight_stats.run == run]
        cmp = weight_stats.compare(ours, usable[usable["size"] == size])
        parts.append(cmp.assign(run=run, size=size))
    cols = ["run", "size", "step", "block", "role", "statistic", "ours", "published", "scale", "relative", "agrees"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame({c: [] for c in cols})  # typed: reads back equal


def _published_std(r):
    """Entry std per matrix over its initial std: Pythia's over the documented init (its
    first published row is 1000 steps in), this build's runs over their own first
    checkpoint (reference and replicas averaged, as for the tail proxy).
    -> (model, role, step, block, value)"""
    pub = _published_usable(r)
    pub = pub[pub["statistic"] == "std"].copy()
    pub["value"] = pub["value"] / [published.init_std(s, role) for s, role in zip(pub["size"], pub["role"])]
    pub["model"] = pub["size"].map(lambda s: published.SIZES[s][0])
    runs = [r.reference, *r.of_role("replica")]
    own = r.weight_stats[r.weight_stats.run.isin(runs) & (r.weight_stats.statistic == "std")].copy()
    first = own[own.step == own.groupby("run")["step"].transform("min")].set_index(["run", "block", "role"])["value"]
    own["value"] = own["value"].to_numpy() / first.reindex(pd.MultiIndex.from_frame(own[["run", "block", "role"]])).to_numpy()
    own = own.groupby(["role", "step", "block"], sort=False)["value"].mean().reset_index()
    own["model"] = f"this build: {'+'.join(runs)}"
    cols = ["model", "role", "step", "block", "value"]
    return pd.concat([pub[cols], own[cols]], ignore_index=True)


TABLES.update({"published_std": _published_std,
    "published_audit": _published_audit, "weight_stats": _weight_stats, "published_tail": _published_tail,
    "published_verdicts": _published_verdicts, "published_slopes": _published_slopes,
    "published_phase": _published_phase, "published_fidelity": _published_fidelity,
})


# Initialising from the learned spectrum (report/init-spectrum.qmd): short tiny runs from the
# standard init and from inits drawn from the reference's last checkpoint.
def init_depths(r) -> dict:
    """{role: toy depth} for the toy inits: the reference run's best toy depth per matrix on
    the held-out seeds, at its last checkpoint (the residual-paths chapter's table)."""
    td = r.toy_depth[r.toy_depth["run"] == r.reference]
    return {row.role: int(round(row.heldout_depth)) for row in td.itertuples()}


def _init_folders(r) -> dict:
    """{(kind, seed): run folder}, every init run trained first where it is not cached; {}
    off the tiny suite (the runs train the suite's own model)."""
    def make():
        if r.cfg["suite"] != "tiny":
            return {}
        from .checkpoints.tiny import init_runs, suite_folder
        from .checkpoints.tiny.layout import run_spec

        tiny, init = r.cfg["tiny"], r.cfg["init"]
        spec = run_spec(tiny["runs"][r.reference])
        ck = r.runs[r.reference].checkpoint(r.last_step())
        trained = {tensor_names(ck.architecture, role, b, ck.n_layers)[0]: (role, ck.matrix(role, b))
                   for b in range(ck.n_layers) for role in r.cfg["roles"]}
        keep = {role: tensor_names(ck.architecture, role, r.block, ck.n_layers)[0] for role in r.cfg["roles"]}
        depths, sigma2 = init_depths(r), r.cfg["residual"]["sigma2"]
        suite, text = suite_folder(tiny, r.cfg["cache_dir"]), act.HELDOUT.read_text()
        jobs = {}
        for kind in inits.all_kinds():
            extra = {"roles": r.cfg["roles"], "block": r.block, "inits": inits.INITS_VERSION}
            if kind.startswith("toy"):
                extra.update(depths=depths, sigma2=sigma2)
            for seed in init["seeds"]:
                jobs[(kind, seed)] = (r.cfg["cache_dir"], tiny, init, suite, ck.content_hash, spec["arch"], spec["seed"],
                                      kind, seed, trained, depths, sigma2, extra, keep, text)
        return dict(zip(jobs, init_runs.train_all(list(jobs.values()))))

    return _once(r, "_init_folders", make)


def _init_runs(r):
    """Per init run: kind, seed, training seconds (as measured when it was trained)."""
    import json

    rows = [{"kind": k, "seed": s, "seconds": json.loads((f / "run.json").read_text())["seconds"]}
            for (k, s), f in _init_folders(r).items()]
    return pd.DataFrame(rows, columns=["kind", "seed", "seconds"])


def _init_curves(r):
    """Losses through training: (kind, seed, split (train, heldout), step, loss)."""
    import json

    rows = []
    for (k, s), f in _init_folders(r).items():
        log = json.loads((f / "log.json").read_text())
        rows += [{"kind": k, "seed": s, "split": split, "step": x["step"], "loss": x["loss"]}
                 for split in ("train", "heldout") for x in log[split]]
    return pd.DataFrame(rows, columns=["kind", "seed", "split", "step", "loss"])


def _init_measure_tables(r):
    """Shape measures of the init runs' kept matrices (configured block) and of their
    baseline draws, as measures.tables gives them for the suite, with kind and seed columns
    (the draws' baseline kind renamed draw_kind)."""
    def make():
        from .backend import memory_budget
        from .parallel import cores
        from .spectra import one_blas_thread

        by_role = {}  # role -> [(kind, seed, step, w)]: one shape, one batched solve
        for (k, s), f in _init_folders(r).items():
            with np.load(f / "matrices.npz") as z:
                for name in z.files:
                    step, role = name.split("/")
                    by_role.setdefault(role, []).append((k, s, int(step), z[name].astype(np.float64)))
        records = []
        for role, items in by_role.items():
            ids = [(f"init/{k}", s, step, r.block, role) for k, s, step, _ in items]
            with one_blas_thread():  # as the suite's spectra: the cores side by side, one BLAS thread each
                solved = extract.solve_batch(np.stack([x[3] for x in items]), ids, r.cfg, np, memory_budget(np), cores())
            for (k, s, step, w), rec in zip(items, solved):
                rec.update(run=f"{k}#{s}", step=step, block=r.block, role=role, std=rec["gaussian_scale"],
                           rows=w.shape[0], cols=w.shape[1])
                records.append(rec)
        m, d = measures.tables(records, NEAR_ZERO_Q)

        def split(t):
            parts = t["run"].str.rsplit("#", n=1, expand=True)
            return t.drop(columns="run").assign(kind=parts[0], seed=parts[1].astype(int))

        return split(m), split(d.rename(columns={"kind": "draw_kind"}))

    if not _init_folders(r):
        return pd.DataFrame(), pd.DataFrame()
    return _once(r, "_init_measure_tables", make)


def _init_measures(r):
    return _init_measure_tables(r)[0]


def _init_draws(r):
    return _init_measure_tables(r)[1]


def init_grid(r) -> list[int]:
    """The evenly spaced evaluation steps after step 0: where the loss curves are averaged."""
    i = r.cfg["init"]
    return list(range(i["eval_every"], i["train_steps"] + 1, i["eval_every"]))


def _init_verdicts(r):
    if r.init_curves.empty:
        return pd.DataFrame()
    level = r.cfg["verdicts"]["level"]
    held = r.init_curves[r.init_curves["split"] == "heldout"]
    return pd.concat([verdicts.init_faster(held, init_grid(r), level),
                      verdicts.init_shape(r.init_measures, r.init_draws, level)], ignore_index=True)


def _init_steps(r):
    if r.init_curves.empty:
        return pd.DataFrame()
    table, target = verdicts.init_steps(r.init_curves[r.init_curves["split"] == "heldout"], r.cfg["verdicts"]["level"])
    return table.assign(target=target)


TABLES.update({"init_runs": _init_runs, "init_curves": _init_curves, "init_measures": _init_measures,
               "init_draws": _init_draws, "init_verdicts": _init_verdicts, "init_steps": _init_steps})
