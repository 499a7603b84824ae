"""Seconds per training step of the tiny suite's model, sequential residual against the
parallel (Pythia) baseline, timed in the same process, alternating, after a warm-up: the
same optimiser, batch and thread count as analysis/checkpoints/tiny/train.py. On a shared
machine absolute times vary with the load; the ratio is what carries over.

    python benchmarks/tiny_architectures.py [steps]
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from analysis import config  # noqa: E402
from analysis.checkpoints.tiny import train  # noqa: E402
from transformers import GPTNeoXForCausalLM  # noqa: E402


def step_seconds(model, opt, x) -> float:
    start = time.perf_counter()
    model(input_ids=x, labels=x).loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main(steps: int = 20):
    cfg = config.load()["tiny"]
    torch.set_num_threads(train.TORCH_THREADS)
    torch.manual_seed(0)
    x = torch.randint(0, cfg["vocab_size"], (cfg["batch_size"], cfg["seq_len"]))
    models = {arch: GPTNeoXForCausalLM(train.model_config(cfg, cfg["vocab_size"], arch)) for arch in ("parallel", "sequential")}
    opts = {a: torch.optim.AdamW(m.parameters(), lr=1e-4) for a, m in models.items()}
    times = {a: [] for a in models}
    for i in range(steps + 3):  # 3 warm-up steps each, then alternate
        for a in models:
            t = step_seconds(models[a], opts[a], x)
            if i >= 3:
                times[a].append(t)
    med = {a: float(np.median(t)) for a, t in times.items()}
    for a, t in med.items():
        print(f"{a:>10}: {t * 1000:.1f} ms/step (median of {steps}), {t * cfg['train_steps']:.0f} s for {cfg['train_steps']} steps")
    print(f"sequential / parallel: {med['sequential'] / med['parallel']:.3f}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
