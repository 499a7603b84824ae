"""Where compute's tasks run when the `cluster` setting names a Dask cluster: a LocalCluster
started here (a LocalCUDACluster where dask_cuda is installed and a GPU is usable), or a
running scheduler by its address (one that dask-jobqueue, dask-kubernetes or a cloud
service started). Dask schedules the tasks, runs a dead worker's tasks again elsewhere and
serves the dashboard; a task is a plain function of plain values (settings, one unit of
work), so it computes on a worker exactly what it computes in this process."""

import sys
import uuid
from contextlib import contextmanager, nullcontext

from tqdm import tqdm

from .spectra import one_blas_thread

CONNECT_TIMEOUT = "30s"  # how long a scheduler named by address may take to answer


def _gpu_workers(backend: str) -> bool:
    """Whether a local cluster should be one worker per GPU: dask_cuda installed and CuPy able
    to compute here (unless the settings ask for NumPy)."""
    if backend == "numpy":
        return False
    try:
        import dask_cuda  # noqa: F401
    except ImportError:
        return False
    from .backend import cupy_or_none

    return cupy_or_none() is not None


@contextmanager
def client(setting, backend: str = "auto"):
    """A dask.distributed Client for the `cluster` setting ("local", a local map or an address);
    a cluster started here is closed on the way out."""
    from distributed import Client, LocalCluster

    if isinstance(setting, str) and setting != "local":
        from .config import ConfigError

        # No wait for workers here: adaptive clusters (dask-jobqueue adapt(minimum=0), Kubernetes)
        # start them only once tasks are queued; the bar then stays at 0 until one joins.
        try:
            c = Client(setting, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as e:
            raise ConfigError(f"analysis.cluster: cannot reach the scheduler at {setting!r} ({type(e).__name__}: {e}); "
                              f"expected a running scheduler answering within {CONNECT_TIMEOUT}") from e
        with c:
            yield c
        return
    opts = {} if setting == "local" else setting
    kw = {k: opts[s] for k, s in (("n_workers", "workers"), ("threads_per_worker", "threads_per_worker"))
          if opts.get(s) is not None}
    processes = opts.get("processes", True)
    if processes and _gpu_workers(backend):
        from dask_cuda import LocalCUDACluster

        cluster = LocalCUDACluster(**kw)  # one worker per visible GPU unless `workers` says otherwise
    else:
        cluster = LocalCluster(processes=processes, **kw)
    # Threads in this process: the BLAS limit is held from here (spectra.one_blas_thread says why).
    with (nullcontext() if processes else one_blas_thread()), cluster, Client(cluster) as c:
        yield c


def run(setting, backend: str, fn, tasks: list[tuple], progress: bool = True, desc: str = "tasks",
        names: list[str] | None = None) -> list:
    """fn(*args) for each args in `tasks` on the cluster -> their results, in task order. A bar
    counts finished tasks; the dashboard's address is printed first. `names`: one per task,
    the task keys the dashboard and Dask's errors (e.g. KilledWorker) show. A task's error is
    raised here (its type kept); closing the client then drops the tasks still queued."""
    from distributed import as_completed

    with client(setting, backend) as c:
        if progress:
            print(f"Dask dashboard: {c.dashboard_link} ({len(c.scheduler_info()['workers'])} workers)", file=sys.stderr)
        # pure=False: each submission runs (an idempotent task finds its records and returns 0)
        # Unique on a shared scheduler too: another driver's job of the same runs is other tasks.
        token = uuid.uuid4().hex[:8]
        keys = None if names is None else [f"{n} #{i} {token}" for i, n in enumerate(names)]
        futures = c.map(fn, *zip(*tasks), key=keys, pure=False) if tasks else []
        with tqdm(total=len(futures), desc=desc, unit="task", disable=not progress) as bar:
            for done in as_completed(futures):
                done.result()  # raises the task's error
                bar.update(1)
        return c.gather(futures)
