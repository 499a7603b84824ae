"""Training runs side by side, one process and one torch thread each.

A run's float reductions depend on its torch thread count, so every run trains on exactly
one thread (train.TORCH_THREADS): its checkpoint bits then depend neither on the machine's
core count nor on which runs train beside it. Throughput comes from running several such
processes at once. On this project's 2-core machine (2026-12-05) one-thread processes gave
8.35 steps/s together with 2 at once, 8.1 with 3 and 7.8 with 5, against 5.4-6.0 for one
2-thread process: a few processes more than cores cost ~5%, while a last round with idle
cores costs much more (5 runs on 2 cores in rounds of 2: the third round leaves a core idle).
"""

import math
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from ...parallel import cores

MAX_PER_CORE = 4  # processes per core at most (each holds torch and a model: ~0.4 GB)


def processes(n_jobs: int, n_cores: int) -> int:
    """How many of n equal jobs to run at once on n_cores: the cores if the jobs fill whole
    rounds of them, else as few processes as finish in the fewest rounds of at most
    MAX_PER_CORE × n_cores (5 jobs on 2 cores: 5 at once, not rounds of 2, 2, 1)."""
    if n_jobs <= 1 or n_jobs % n_cores == 0:
        return max(min(n_jobs, n_cores), 1)
    rounds = math.ceil(n_jobs / (MAX_PER_CORE * n_cores))
    return math.ceil(n_jobs / rounds)


_SLOT = 0  # this worker's place among the progress bars


def _take_slot(slots) -> None:
    global _SLOT
    _SLOT = slots.get()


def slot() -> int:
    """The progress-bar line of this process (0 outside a pool)."""
    return _SLOT


def run_all(fn, jobs: list[tuple], labels: list[str]) -> list:
    """[fn(*job) for job in jobs], each in its own process when there are several (spawned:
    a forked child of a process that has run torch's thread pool can hang). fn must be a
    module-level function and its arguments picklable. A job that raises is re-raised here
    with its label, after the other jobs finish (their results are cached by fn itself)."""
    if len(jobs) <= 1:
        return [fn(*job) for job in jobs]
    n = processes(len(jobs), cores())
    ctx = get_context("spawn")
    slots = ctx.Queue()  # handed to each worker as it starts
    for i in range(n):
        slots.put(i)
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_take_slot, initargs=(slots,)) as pool:
        futures = [pool.submit(fn, *job) for job in jobs]
        errors = [(label, f.exception()) for label, f in zip(labels, futures) if f.exception() is not None]
    if errors:
        label, e = errors[0]
        if _rebuildable(e):
            raise type(e)(f"{label}: {e}") from e
        raise e
    return [f.result() for f in futures]


def _rebuildable(e: BaseException) -> bool:
    """Whether type(e)(message) makes an error of the same type (not so for every exception)."""
    try:
        type(e)("x")
        return True
    except Exception:
        return False
