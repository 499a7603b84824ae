"""The machine's cores, and one function mapped over chunks of work in processes of their own.

For CPU work that holds the GIL (many small NumPy calls: the shape measures of thousands of
spectra), threads do not help; spawned processes do. Spawned, not forked: a forked child of
a process that has run torch's or BLAS's thread pools can hang.
"""

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import current_process, get_context


def cores() -> int:
    """The cores this process may run on (sched_getaffinity is Linux-only)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def chunks(n_items: int, n_chunks: int) -> list[range]:
    """range(n_items) cut into n_chunks contiguous pieces of near-equal length (none empty:
    fewer pieces where there are fewer items, none for none)."""
    n_chunks = max(min(n_chunks, n_items), 0)
    bounds = [n_items * i // n_chunks for i in range(n_chunks + 1)] if n_chunks else [0]
    return [range(a, b) for a, b in zip(bounds, bounds[1:])]


def map_chunks(fn, items: list, n_processes: int, *args, size: int | None = None) -> list:
    """[fn(items[chunk], *args) for each contiguous chunk], in order: n_processes chunks, or
    chunks of `size` items (the executor pickles only the chunks it is about to hand out, so
    small chunks bound the copies in flight), run in n_processes spawned processes, or here
    when n_processes <= 1 or this process may not have children (a daemon: a Dask worker's).
    fn must be a module-level function and items and args picklable; an exception in a chunk
    is raised here."""
    n = len(items)
    parts = chunks(n, n_processes) if size is None else [range(a, min(a + size, n)) for a in range(0, n, size)]
    if n_processes <= 1 or len(parts) <= 1 or current_process().daemon:
        return [fn(items[p.start : p.stop], *args) for p in parts] if parts else [fn(items, *args)]
    with ProcessPoolExecutor(max_workers=min(n_processes, len(parts)), mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(fn, items[p.start : p.stop], *args) for p in parts]
        return [f.result() for f in futures]
