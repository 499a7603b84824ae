"""The project's one visual style: seaborn theme, role colours, baseline line styles."""

import matplotlib

matplotlib.use("Agg")  # figures are files and notebook outputs, never windows

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

_palette = sns.color_palette("colorblind")
ROLE_COLORS = {"qkv": _palette[0], "attn_out": _palette[1], "mlp_in": _palette[2], "mlp_out": _palette[4]}
ROLE_LABELS = {"qkv": "attention QKV", "attn_out": "attention output", "mlp_in": "MLP in", "mlp_out": "MLP out"}
RUN_STYLES = {"raw": {"linestyle": "-"}, "deduped": {"linestyle": "--"}}
BASELINES = {
    "gaussian": {"color": "0.15", "linestyle": "-", "linewidth": 1.2, "label": "Gaussian fit, sampled"},
    "logistic": {"color": "0.45", "linestyle": "--", "linewidth": 1.2, "label": "logistic fit, sampled"},
    "mp": {"color": "#b2182b", "linestyle": ":", "linewidth": 1.6, "label": "Marchenko-Pastur"},
}
DPI = 96  # with the figure sizes below, frame sizes are multiples of 16 (video codecs)


def theme() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind", font_scale=0.9)
    plt.rcParams.update({"figure.dpi": DPI, "savefig.dpi": DPI, "axes.titleweight": "bold"})


def figure(nrows=1, ncols=1, width=10.0, height=7.0, **kw):
    """A themed figure and its axes (always a 2-D array of axes)."""
    theme()
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained", **kw)
    return fig, axes
