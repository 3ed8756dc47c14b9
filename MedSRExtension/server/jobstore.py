"""The jobs on disk: one folder per job under ``DATA/jobs/<id>/``.

``job.json`` holds the record (state, owner key, options, times, message, the log's tail, the
result's exact geometry); ``work/`` is the worker's request folder; ``result.nrrd`` the finished
result with its provenance. A record is rewritten atomically at every change of state, so a server
killed at any moment leaves each record readable. On start (``JobStore.recover``) a finished result
stays served, a job that was queued or running is reported failed ("server restarted") and its
worker, if one survived, is ended; jobs older than ``keep_hours`` after they ended are deleted.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Optional

from MedSRExtension.core import atomic

STATES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
RESTARTED = "server restarted: the job was not finished when the server stopped; submit it again"
LOG_KEPT = 200
RECORD, RESULT, WORK, UPLOAD = "job.json", "result.nrrd", "work", "upload"
CONFIDENCE = "confidence.nrrd"


class Job:
    """One job: its record (``info``) and its folder. Change it under the store's lock."""

    def __init__(self, folder: Path, info: dict):
        self.folder, self.info = folder, info
        self.progress = (0, 0)
        self.cancel_requested = False

    @property
    def id(self) -> str:
        return self.info["id"]

    @property
    def state(self) -> str:
        return self.info["state"]

    @property
    def work(self) -> Path:
        return self.folder / WORK

    @property
    def result_path(self) -> Path:
        return self.folder / RESULT

    @property
    def confidence_path(self) -> Path:
        """The confidence map of a run that asked for one (``"confidence": true``)."""
        return self.folder / CONFIDENCE

    def add_log(self, line: str) -> None:
        log = self.info.setdefault("log", [])
        log.append(line)
        del log[:-LOG_KEPT]

    def public(self) -> dict:
        """What ``GET /api/v1/jobs/{id}`` answers."""
        done, total = self.progress
        fraction = 1.0 if self.state == "done" else (min(1.0, done / total) if total else 0.0)
        keys = ("id", "state", "message", "log", "created", "started", "finished", "source", "options",
                "chosen", "geometry", "shape")
        return {**{k: self.info.get(k) for k in keys}, "fraction": fraction, "progress": [done, total],
                "confidence": self.state == "done" and self.confidence_path.is_file()}


class JobStore:
    """Every job of the server, in memory and on disk under ``data/jobs``."""

    def __init__(self, data: Path, keep_hours: float):
        self.root = Path(data).resolve() / "jobs"  # absolute: a restart finds its workers by this path
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep_s = float(keep_hours) * 3600.0
        self.lock = threading.RLock()
        self.jobs: dict[str, Job] = {}

    def new(self, owner: str, source: str, options: dict, chosen: Optional[str]) -> Job:
        """A new job folder with its first record (state "queued" is set by ``save`` once ready)."""
        job_id = secrets.token_hex(8)
        folder = self.root / job_id
        (folder / UPLOAD).mkdir(parents=True)
        info = {"id": job_id, "owner": owner, "state": "queued", "message": "waiting in the queue",
                "log": [], "created": time.time(), "started": None, "finished": None, "source": source,
                "options": options, "chosen": chosen, "geometry": None, "shape": None, "pid": None}
        return Job(folder, info)

    def add(self, job: Job) -> None:
        with self.lock:
            self.jobs[job.id] = job
            self.save(job)

    def save(self, job: Job) -> None:
        """Write the job's record atomically."""
        atomic.write_text(job.folder / RECORD, json.dumps(job.info))

    def get(self, job_id: str, owner: str) -> Optional[Job]:
        """The job ``job_id`` when ``owner`` made it, else None (another token's job is not shown)."""
        with self.lock:
            job = self.jobs.get(job_id)
        return job if job is not None and job.info.get("owner") == owner else None

    def finish(self, job: Job, state: str, message: str) -> None:
        """End the job in ``state`` with ``message``; its work folder is removed."""
        with self.lock:
            job.info.update(state=state, message=message, finished=time.time(), pid=None)
            self.save(job)
        shutil.rmtree(job.work, ignore_errors=True)
        shutil.rmtree(job.folder / UPLOAD, ignore_errors=True)

    def remove(self, job: Job) -> None:
        with self.lock:
            self.jobs.pop(job.id, None)
        shutil.rmtree(job.folder, ignore_errors=True)

    def recover(self) -> list[Job]:
        """Read the jobs a previous run left: finished ones kept, unfinished ones failed (see above)."""
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            try:
                info = json.loads((folder / RECORD).read_text(encoding="utf-8"))
            except (OSError, ValueError):  # a job folder whose record was never written: a half-made upload
                shutil.rmtree(folder, ignore_errors=True)
                continue
            job = Job(folder, info)
            self.jobs[job.id] = job
            if job.state not in FINISHED:
                _end_stale_worker(info.get("pid"), job.work)
                self.finish(job, "failed", RESTARTED)
            elif job.state == "done" and not job.result_path.is_file():
                self.finish(job, "failed", "the result file is missing from the server's data folder")
        self.expire()
        return list(self.jobs.values())

    def expire(self, now: Optional[float] = None) -> int:
        """Delete the jobs that ended more than ``keep_hours`` ago; returns how many."""
        now = time.time() if now is None else now
        with self.lock:
            old = [j for j in self.jobs.values() if j.state in FINISHED and now - (j.info.get("finished") or now) > self.keep_s]
        for job in old:
            self.remove(job)
        return len(old)

    def queued(self) -> list[Job]:
        """The queued jobs, oldest first (FIFO)."""
        with self.lock:
            return sorted((j for j in self.jobs.values() if j.state == "queued"), key=lambda j: j.info["created"])


def _end_stale_worker(pid, work: Path) -> None:
    """End the worker a killed server left running, when ``pid`` is still that worker (its command
    line names the job's work folder: a reused pid of another program is left alone)."""
    if not isinstance(pid, int) or pid <= 0:
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
    except OSError:
        return
    if str(work) in cmdline.split("\0"):
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
