"""python -m analysis {train-tiny, plan, compute, audit, report} [--profile NAME] [--debug]

An expected failure (bad settings, a checkpoint that cannot be read, no GPU for
`backend: cupy`) prints one line to stderr and exits non-zero: 2 for settings, 1 otherwise.
--debug, or ANALYSIS_DEBUG=1, shows its traceback instead."""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

from . import config
from .errors import AnalysisError


def _train_tiny(cfg, args) -> int:
    from .checkpoints.tiny.train import build

    start = time.time()
    folder = build(cfg["tiny"], Path(cfg["cache_dir"]))
    print(f"tiny suite ready in {folder} ({time.time() - start:.1f} s)")
    return 0


def _compute(cfg, args) -> int:
    from .results import CHAPTER_TABLES, Results

    chapter = getattr(args, "chapter", None)
    if chapter is not None and chapter not in CHAPTER_TABLES:
        raise config.ConfigError(f"--chapter {chapter!r}: expected one of {', '.join(CHAPTER_TABLES)}")
    start = time.time()
    done = Results(cfg, progress=True).fill(CHAPTER_TABLES[chapter] if chapter else None)
    print(f"{len(done)} tables ({', '.join(done)}) cached under {cfg['cache_dir']} ({time.time() - start:.1f} s)")
    return 0


def _plan(cfg, args) -> int:
    from . import plan

    print(plan.describe(*plan.plan(cfg)))
    return 0


def _audit(cfg, args) -> int:
    from . import audit
    from .results import Results

    if args.repos:
        from .checkpoints.hub import HubRun, rule_for

        runs = {r.name: r for r in (HubRun(repo, cfg["cache_dir"], rule=rule_for(repo, cfg["revisions"]))
                                    for repo in args.repos)}
        # Content hashes come from LFS metadata: no weights are downloaded.
        table = audit.audit(runs, tensors_for=lambda run: [])
    else:
        table = Results(cfg).audit
    flagged = table[table["flag"] != ""]
    print(table.assign(content_hash=table["content_hash"].str[:12]).to_string(index=False))
    print(f"{len(table)} steps audited, {len(flagged)} flagged")
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
    "plan": (_plan, "what compute would read and solve, from checkpoint metadata only (no tensor data)"),
    "compute": (_compute, "fill the results cache with everything the chapters read"),
    "audit": (_audit, "audit checkpoints: identical, missing, unreadable or non-finite steps"),
    "report": (_report, "render the book (Quarto if installed, else a Jupyter-executed HTML preview)"),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--profile", default=None, help="Quarto profile(s), comma-separated (default: $QUARTO_PROFILE)")
        p.add_argument("--debug", action="store_true", help="show the traceback of an error (or set ANALYSIS_DEBUG=1)")
        if name == "compute":
            p.add_argument("--chapter", default=None, help="only the tables this chapter reads (index, weight-distribution, ...)")
        if name == "audit":
            p.add_argument("repos", nargs="*", help="hub repo ids (default: the configured runs)")
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("ANALYSIS_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")
    try:
        with warnings.catch_warnings():  # a warning is one line too (restored on the way out)
            warnings.showwarning = lambda message, *_a, **_k: print(f"warning: {' '.join(str(message).split())}",
                                                                     file=sys.stderr)
            cfg = config.load(args.profile)
            return COMMANDS[args.command][0](cfg, args)
    except AnalysisError as e:
        if debug:
            raise
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)  # one line, whatever the message holds
        return 2 if isinstance(e, config.ConfigError) else 1
