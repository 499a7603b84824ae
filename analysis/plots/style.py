"""The project's one visual style: seaborn theme, role colours, baseline line styles."""

import os

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

_palette = sns.color_palette("colorblind")
ROLE_COLORS = {"qkv": _palette[0], "attn_out": _palette[1], "mlp_in": _palette[2], "mlp_out": _palette[4]}
ROLE_LABELS = {"qkv": "attention QKV", "attn_out": "attention output", "mlp_in": "MLP in", "mlp_out": "MLP out"}
TOY_COLOR = "0.35"
# Block wirings compared (analysis.architectures), by label; any other label gets a grey.
ARCH_COLORS = {"parallel": _palette[0], "sequential": _palette[3]}
# Initialisations compared (analysis.inits): colour by what is drawn, dashed when rescaled to
# the standard init's per-matrix Frobenius norm.
INIT_COLORS = {"standard": "0.15", "transplant": _palette[0], "shuffle": _palette[2], "toy": _palette[3]}


def init_style(kind: str) -> dict:
    """Line keywords for an init kind ('transplant', 'transplant-rescaled', ...)."""
    base = kind.removesuffix("-rescaled")
    return {"color": INIT_COLORS.get(base, "0.5"), "linestyle": "--" if kind != base else "-"}


# Line style by a run's declared role (analysis.runs), never by its name.
RUN_STYLES = {"reference": {"linestyle": "-"}, "treatment": {"linestyle": "--"}, "replica": {"linestyle": ":"}}
BAND_ALPHA = 0.2  # shaded noise bands (baseline draws, seeds, replicas)
# Three-valued verdicts (and a claim part whose rows disagree): a diverging palette, grey for
# what noise cannot decide.
VERDICT_COLORS = {"holds": "#4393c3", "does not hold": "#d6604d", "undecided": "0.8", "mixed": "#b8a0d0"}


def verdict_colors() -> dict:
    return dict(VERDICT_COLORS)


def wrap(text: str, width: int) -> str:
    """A long tick label on lines of at most `width` characters."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def run_style(role: str) -> dict:
    """Line keywords for a run of `role` (reference, treatment or replica)."""
    return RUN_STYLES[role]


def runs_legend(roles: dict) -> str:
    """'solid: raw (reference), dashed: deduped (treatment), ...' for captions and legend titles."""
    names = {"-": "solid", "--": "dashed", ":": "dotted"}
    return ", ".join(f"{names[RUN_STYLES[role]['linestyle']]}: {run} ({role})" for run, role in roles.items())
CONTROLS = {  # claim 2: the toy and the non-product models it must beat
    "toy": {"color": TOY_COLOR, "marker": "o"},
    "gaussian": {"color": "0.15", "marker": "s"},
    "logistic": {"color": "0.45", "marker": "^"},
    "scaled": {"color": _palette[3], "marker": "D"},
}
BASELINES = {
    "gaussian": {"color": "0.15", "linestyle": "-", "linewidth": 1.2, "label": "Gaussian fit, sampled"},
    "logistic": {"color": "0.45", "linestyle": "--", "linewidth": 1.2, "label": "logistic fit, sampled"},
    "mp": {"color": "#b2182b", "linestyle": ":", "linewidth": 1.6, "label": "Marchenko-Pastur"},
}
DPI = 96  # with the figure sizes below, frame sizes are multiples of 16 (video codecs)


def sequential(n: int) -> list:
    """n colours of one ordered palette (for a parameter such as depth)."""
    return sns.color_palette("crest", n)


def step_axis(ax) -> None:
    """Training steps on x: linear below 1, logarithmic above (step 0 is shown), from 0."""
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(left=0)


def theme() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind", font_scale=0.9)
    plt.rcParams.update({"figure.dpi": DPI, "savefig.dpi": DPI, "axes.titleweight": "bold",
                         "svg.hashsalt": "analysis"})  # fixed ids: the same figure gives the same SVG
    # matplotlib stamps SVG and PDF files with this date (else: now), so a re-render of an
    # unchanged chapter leaves the committed freezer's figures byte for byte as they were.
    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")


def figure(nrows=1, ncols=1, width=10.0, height=7.0, **kw):
    """A themed figure and its axes (always a 2-D array of axes).

    A bare Figure, outside pyplot's registry: notebooks show it once (as the cell's value),
    loops that make hundreds of frames leak nothing, and no GUI backend is ever needed."""
    theme()
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False, **kw))
    return fig, axes


def run_label(run: str, role: str, sep: str = " ") -> str:
    """A run as figures name it: without a hub owner prefix, with its role."""
    return f"{run.rsplit('/', 1)[-1]}{sep}({role})"


def run_handles(names: dict, color="0.3"):
    """Legend handles and labels for runs {name: role}, one line style per role. -> (handles, labels)"""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=color, **run_style(role)) for role in names.values()]
    return handles, [run_label(run, role) for run, role in names.items()]


def legend_columns(n: int) -> int:
    """Columns of a legend below the panels: one row up to three entries, then rows of three."""
    return min(n, 3)
