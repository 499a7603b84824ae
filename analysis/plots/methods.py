"""Figures for the methods chapter: the fused QKV layout, Q/K/V spectra, baselines vs MP."""

import numpy as np
from matplotlib.patches import Rectangle
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from .. import measures
from . import style

PART_COLORS = {"q": "#4c72b0", "k": "#dd8452", "v": "#55a868"}


def qkv_layout(n_heads: int, head_size: int, show_heads: int = 4):
    """Rows of GPT-NeoX's fused (3·d, d) query_key_value matrix: per head, [q, k, v] blocks of
    head_size rows each (first `show_heads` heads drawn). -> Figure"""
    fig, axes = style.figure(1, 1, width=9.0, height=1.9)
    ax = axes[0, 0]
    shown = min(show_heads, n_heads)
    for h in range(shown):
        for i, part in enumerate("qkv"):
            start = (3 * h + i) * head_size
            ax.add_patch(Rectangle((start, 0), head_size, 1, color=PART_COLORS[part], alpha=0.85, linewidth=0))
            ax.text(start + head_size / 2, 0.5, f"{part}{h}", ha="center", va="center", fontsize="small", color="white")
        ax.axvline(3 * h * head_size, color="black", linewidth=1)
    ax.set_xlim(0, 3 * shown * head_size)
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    more = f" (first {shown} of {n_heads} heads)" if shown < n_heads else ""
    ax.set_xlabel(f"row of the fused matrix{more}; head_size = {head_size}")
    ax.grid(False)
    return fig


def qkv_spectra(parts: dict, bins: int = 30):
    """Histograms of σ / rms(σ) of the fused QKV matrix and of Q, K and V split out of it,
    each against its own sampled Gaussian matrix. parts: the results' qkv_parts table,
    {f"{name}_sv", f"{name}_gaussian"} for name in fused, q, k, v. -> Figure"""
    names = [k[: -len("_sv")] for k in parts if k.endswith("_sv")]
    pairs = {n: (parts[f"{n}_sv"], parts[f"{n}_gaussian"]) for n in names}
    fig, axes = style.figure(1, len(pairs), width=2.6 * len(pairs), height=2.6, sharey=True)
    top = max(max(measures.normalised(a).max(), measures.normalised(b).max()) for a, b in pairs.values())
    edges = np.linspace(0, 1.02 * top, bins + 1)
    for ax, (name, (sv, base)) in zip(axes[0], pairs.items()):
        ax.hist(measures.normalised(sv), edges, density=True, color=PART_COLORS.get(name, style.ROLE_COLORS["qkv"]),
                alpha=0.8, label="weights")
        dens, _ = np.histogram(measures.normalised(base), edges, density=True)
        ax.stairs(dens, edges, **{**style.BASELINES["gaussian"], "label": "Gaussian, sampled"})
        ax.set_title(f"{name}: KS {measures.ks_distance(sv, base):.2f}")
        ax.set_xlabel("σ / rms(σ)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize="small")
    return fig


def baselines_vs_mp(table):
    """KS distance of sampled Gaussian and logistic spectra to Marchenko-Pastur against
    matrix size. table: rows (size, kind, ks). -> Figure"""
    fig, axes = style.figure(1, 1, width=6.0, height=3.2)
    ax = axes[0, 0]
    for kind, g in table.groupby("kind"):
        ax.plot(g["size"], g["ks"], marker="o", label=style.BASELINES[kind]["label"],
                **{k: v for k, v in style.BASELINES[kind].items() if k not in ("label",)})
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))  # labelled 1-2-5 steps, plain numbers:
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))  # matplotlib's own minor labels collide
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("matrix rows (columns = 2 × rows)")
    ax.set_ylabel("KS distance to MP")
    ax.legend(fontsize="small")
    return fig
