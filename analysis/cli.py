"""python -m analysis {train-tiny, compute, report} [--profile NAME]"""

import argparse
import sys
import time
from pathlib import Path

from . import config


def _train_tiny(cfg, args) -> int:
    from .checkpoints.tiny.train import build

    start = time.time()
    folder = build(cfg["tiny"], Path(cfg["cache_dir"]))
    print(f"tiny suite ready in {folder} ({time.time() - start:.1f} s)")
    return 0


def _compute(cfg, args) -> int:
    from . import compute

    start = time.time()
    done = compute.fill(cfg)
    print(f"{done['spectra']} spectra, {done['measures']} measure values and the toy model cached under "
          f"{cfg['cache_dir']} ({time.time() - start:.1f} s)")
    return 0


def _report(cfg, args) -> int:
    from .report import render

    # Train and compute here, with progress bars on the terminal; the chapters then only
    # read the cache (under Quarto too).
    if cfg["suite"] == "tiny":
        _train_tiny(cfg, args)
    _compute(cfg, args)
    return render(Path(cfg["root"]), ",".join(cfg["profiles"]) or None)


COMMANDS = {
    "train-tiny": (_train_tiny, "train the tiny checkpoint suite (once; reused afterwards)"),
    "compute": (_compute, "fill the results cache with everything the chapters read"),
    "report": (_report, "render the book (Quarto if installed, else a Jupyter-executed HTML preview)"),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--profile", default=None, help="Quarto profile(s), comma-separated (default: $QUARTO_PROFILE)")
    args = parser.parse_args(argv)
    try:
        cfg = config.load(args.profile)
    except config.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return COMMANDS[args.command][0](cfg, args)
