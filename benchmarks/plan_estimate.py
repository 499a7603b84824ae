"""The plan's CPU estimate against the time compute then takes, on a smoke-sized tiny suite of
a given width (trained first, in a cache of its own): prints both and their ratio.

    python benchmarks/plan_estimate.py [--width 128] [--cache /tmp/plan-estimate]

Run it right after benchmarks/matrix_cost.py, on the same machine and load: the estimate is
only as good as those measurements (a shared machine's load moves both).
"""

import argparse
import os
import time
from pathlib import Path

from analysis import config, plan
from analysis.checkpoints.tiny import corpus
from analysis.checkpoints.tiny.train import build
from analysis.results import Results


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=128, help="d_model of the tiny suite (the smoke profile's is 32)")
    p.add_argument("--cache", default="/tmp/plan-estimate")
    args = p.parse_args()
    cfg = config.load(profile="smoke")
    cfg["tiny"].update(d_model=args.width, n_head=max(2, args.width // 32))
    cfg["cache_dir"] = args.cache
    corpus.fetch(cfg["tiny"]["corpus"], Path(args.cache))
    build(cfg["tiny"], Path(args.cache))
    table, totals = plan.plan(cfg)
    print(plan.describe(table, totals))
    start = time.perf_counter()
    r = Results(cfg)
    views = [r] + [r.architecture(label) for label in cfg["architectures"]]  # what compute solves, each once
    done = len({(x["run"], x["step"], x["block"], x["role"]) for v in views for x in v.spectra})
    took = time.perf_counter() - start
    print(f"\nwidth {args.width}: {done} matrices; plan estimate {totals['CPU s (est.)']:.1f} s, compute took {took:.1f} s "
          f"(measured / estimate {took / totals['CPU s (est.)']:.2f}); load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
