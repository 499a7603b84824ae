"""The machine's cores, and one function mapped over chunks of work in processes of their own.

For CPU work that holds the GIL (many small NumPy calls: the shape measures of thousands of
spectra), threads do not help; spawned processes do. Spawned, not forked: a forked child of
a process that has run torch's or BLAS's thread pools can hang.
"""

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context


def cores() -> int:
    """The cores this process may run on (sched_getaffinity is Linux-only)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def chunks(n_items: int, n_chunks: int) -> list[range]:
    """range(n_items) cut into n_chunks contiguous pieces of near-equal length (none empty:
    fewer pieces where there are fewer items, none for none)."""
    n_chunks = max(min(n_chunks, n_items), 0)
    bounds = [n_items * i // n_chunks for i in range(n_chunks + 1)] if n_chunks else [0]
    return [range(a, b) for a, b in zip(bounds, bounds[1:])]


def map_chunks(fn, items: list, n_processes: int, *args) -> list:
    """[fn(items[chunk], *args) for each contiguous chunk], in order, the chunks in
    n_processes processes (in this one when n_processes <= 1). fn must be a module-level
    function and items and args picklable; an exception in a chunk is raised here."""
    parts = chunks(len(items), n_processes)
    if len(parts) <= 1:
        return [fn(items, *args)]
    with ProcessPoolExecutor(max_workers=len(parts), mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(fn, items[p.start : p.stop], *args) for p in parts]
        return [f.result() for f in futures]
