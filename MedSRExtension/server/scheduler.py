"""The FIFO queue: at most ``slots`` jobs run at once, each in its own worker process, the oldest
queued job starts first; results expire ``keep_hours`` after their job ended."""
from __future__ import annotations

import json
import signal
import threading
import time
from typing import Optional

from MedSRExtension.core import atomic

from .jobstore import Job, JobStore
from .worker_job import WorkerJob

TICK_S = 0.1
EXPIRE_EVERY_S = 60.0


class Scheduler:
    """Starts queued jobs when a slot is free. ``devices``: one device per slot (one per GPU)."""

    def __init__(self, store: JobStore, devices: list[str], max_queue: int):
        self.store, self.devices, self.max_queue = store, list(devices), int(max_queue)
        self.running: dict[str, tuple[WorkerJob, int]] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def slots(self) -> int:
        return len(self.devices)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="medsr-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop starting jobs and end the running workers (the server is shutting down)."""
        self._stop.set()
        self._wake.set()
        with self.store.lock:
            running = [w for w, _ in self.running.values()]
        for worker in running:
            worker.on_end = None
            worker._signal(signal.SIGKILL)

    def queue_full(self) -> bool:
        return len(self.store.queued()) >= self.max_queue

    def submit(self, job: Job) -> None:
        self.store.add(job)
        self._wake.set()

    def cancel(self, job: Job) -> None:
        """Cancel a queued job at once, a running one by ending its worker."""
        with self.store.lock:
            entry = self.running.get(job.id)
            if entry is None and job.state == "queued":
                job.info["state"] = "cancelled"  # taken off the queue under the lock
            elif entry is None:
                return
        if entry is None:
            self.store.finish(job, "cancelled", "cancelled before it started")
        else:
            with self.store.lock:
                job.info["message"] = "cancelling"
            entry[0].cancel()

    def _free_slot(self) -> Optional[int]:
        used = {slot for _, slot in self.running.values()}
        return next((s for s in range(self.slots) if s not in used), None)

    def _ended(self, worker: WorkerJob) -> None:
        with self.store.lock:
            self.running.pop(worker.job.id, None)
        self._wake.set()

    def _loop(self) -> None:
        last_expiry = 0.0
        while not self._stop.is_set():
            self._wake.wait(TICK_S * 10)
            self._wake.clear()
            if time.monotonic() - last_expiry > EXPIRE_EVERY_S:
                self.store.expire()
                last_expiry = time.monotonic()
            self._start_queued()

    def _start_queued(self) -> None:
        for job in self.store.queued():
            with self.store.lock:
                slot = self._free_slot()
                if slot is None or job.state != "queued" or self._stop.is_set():
                    return
                job.info["options"]["device"] = self.devices[slot]
                worker = WorkerJob(self.store, job, on_end=self._ended)
                self.running[job.id] = (worker, slot)
            try:
                _set_device(job, self.devices[slot])
                worker.start()
            except Exception as exc:  # a worker that cannot start fails its job, not the server
                with self.store.lock:
                    self.running.pop(job.id, None)
                self.store.finish(job, "failed", f"the worker process could not start: {exc}")


def _set_device(job: Job, device: str) -> None:
    """Point the job's worker request at its slot's device."""
    path = job.work / "request.json"
    request = json.loads(path.read_text(encoding="utf-8"))
    request["options"]["device"] = device
    atomic.write_text(path, json.dumps(request))
