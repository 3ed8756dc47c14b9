"""Where batch tasks run: a Dask LocalCluster of ``workers`` processes on 127.0.0.1 (the default), or
an existing Dask cluster given by its scheduler address.

Each local worker is a process with one task slot and one torch thread (OMP/MKL pinned to one
thread too), so N workers use N cores without oversubscription. Where CUDA GPUs exist, every local
worker advertises the Dask resource ``GPU=1`` and takes GPU ``index % count``; tasks then ask for
``GPU=1``, so no two tasks share a GPU when there are as many workers as GPUs. On an existing
cluster, tasks ask for ``GPU=1`` when every worker advertises that resource (``dask worker
--resources GPU=1``), and torch keeps the worker's own thread setting.

Local workers ignore Ctrl-C (they are started with SIGINT ignored, and set it again when a worker is
restarted): a terminal's Ctrl-C reaches the whole process group, and the client, which records what
finished and closes the cluster, is the one that must handle it.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator, Optional

from MedSRExtension.batch.interrupts import ignore_interrupt
from MedSRExtension.core.errors import MedSRError

try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # pragma: no cover - medsr batch says how to install it
    WorkerPlugin = object


class MedSRWorkerSetup(WorkerPlugin):
    """Set up each worker process: torch threads, its own GPU where there are GPUs, and (a local
    worker) Ctrl-C ignored."""

    name = "medsr-worker-setup"

    def __init__(self, torch_threads: Optional[int] = 1, local: bool = False):
        self.torch_threads = torch_threads
        self.local = local

    def setup(self, worker) -> None:
        import torch
        if self.local:
            ignore_interrupt()
        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        if torch.cuda.is_available():
            name = str(worker.name)
            index = int(name) if name.isdigit() else abs(hash(name))
            torch.cuda.set_device(index % torch.cuda.device_count())


def gpu_count() -> int:
    """CUDA GPUs on this machine (0 without CUDA)."""
    import torch  # a core dependency; imported here so the Dask client side starts without it loaded
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def default_workers() -> int:
    """One worker per GPU, else one per CPU core (at most 8)."""
    return gpu_count() or max(1, min(8, os.cpu_count() or 1))


@contextmanager
def open_client(workers: Optional[int] = None, scheduler: Optional[str] = None) -> Iterator[tuple[object, dict]]:
    """A Dask client and the resources each task asks for; a local cluster is closed on exit."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise MedSRError("medsr batch needs Dask distributed; install it with pip install 'dask[distributed]'") \
            from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise MedSRError(f"cannot reach the Dask scheduler at {scheduler} ({exc.__class__.__name__}); "
                             "check the address (tcp://host:8786) and that `dask scheduler` runs") from None
        try:
            client.register_plugin(MedSRWorkerSetup(torch_threads=None))
            infos = client.scheduler_info().get("workers", {}).values()
            gpu = bool(infos) and all(w.get("resources", {}).get("GPU", 0) >= 1 for w in infos)
            yield client, ({"GPU": 1} if gpu else {})
        finally:
            client.close()
        return
    n = workers or default_workers()
    if n < 1:
        raise MedSRError(f"--workers must be at least 1, got {n}")
    gpus = gpu_count()
    one_thread = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None  # inherited by the workers
    try:
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                               scheduler_port=0, dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR,
                               resources={"GPU": 1} if gpus else None, env=one_thread)
    finally:
        if in_main and previous is not None:
            signal.signal(signal.SIGINT, previous)
    try:
        client = Client(cluster)
        try:
            client.register_plugin(MedSRWorkerSetup(torch_threads=1, local=True))
            yield client, ({"GPU": 1} if gpus else {})
        finally:
            client.close()
    finally:
        cluster.close()
