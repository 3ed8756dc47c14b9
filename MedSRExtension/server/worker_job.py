"""One job's run in MedSR's worker process (``python -m MedSRExtension.worker.serve FOLDER``).

The same request folder, event lines and result files as the Slicer module's worker runner
(``MedSRExtension.worker.protocol``); this side follows the worker on a thread of its own and writes
what it reports into the job store. The worker runs in its own process group so a cancel ends all of it (SIGTERM,
then SIGKILL after ``KILL_AFTER_S``). When it ends, the result is written as ``result.nrrd`` with
the provenance a local ``medsr run`` records, and the job's record says done, failed or cancelled.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Optional

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.volume import Volume
from MedSRExtension.worker import protocol

from .jobstore import Job, JobStore

KILL_AFTER_S = 3.0


class WorkerJob:
    """Run ``job`` (its work folder holds the request) in a worker; ``on_end()`` is called when done."""

    def __init__(self, store: JobStore, job: Job, on_end=None):
        self.store, self.job, self.on_end = store, job, on_end
        self.process: Optional[subprocess.Popen] = None
        self._report = protocol.Report()
        self._thread = threading.Thread(target=self._run, name=f"medsr-job-{job.id}", daemon=True)

    def start(self) -> "WorkerJob":
        command = protocol.serve_command(sys.executable, str(self.job.work))
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace",
                                        bufsize=1, env=protocol.worker_env(), start_new_session=True)
        with self.store.lock:
            self.job.info.update(state="running", started=time.time(), pid=self.process.pid,
                                 message="running in a worker process")
            self.store.save(self.job)
        self._thread.start()
        return self

    def cancel(self) -> None:
        """End the worker's process group now (SIGKILL follows if it lingers)."""
        self.job.cancel_requested = True
        self._signal(signal.SIGTERM)
        timer = threading.Timer(KILL_AFTER_S, self._signal, (signal.SIGKILL,))
        timer.daemon = True
        timer.start()

    def _signal(self, sig) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def _run(self) -> None:
        try:
            for line in self.process.stdout:
                self._handle(line.rstrip("\n"))
            code = self.process.wait()
            self._end(code)
        except Exception as exc:  # a failure here must end the job, never the server
            self.store.finish(self.job, "failed", f"the server could not finish the job: {exc}")
        finally:
            if self.on_end is not None:
                self.on_end(self)

    def _handle(self, line: str) -> None:
        with self.store.lock:
            seen = len(self._report.log)
            self._report.take(line)
            for text in self._report.log[seen:]:
                self.job.add_log(text)
            self.job.progress = self._report.progress

    def _end(self, code: int) -> None:
        if self.job.cancel_requested:
            return self.store.finish(self.job, "cancelled", "cancelled: the worker process was stopped")
        if self._report.got_result and code == 0:
            try:
                self._write_result()
            except MedSRError as exc:
                return self.store.finish(self.job, "failed", str(exc))
            return self.store.finish(self.job, "done", "done")
        message = self._report.failure() or f"the worker process {protocol.describe_exit(code)} before finishing"
        self.store.finish(self.job, "failed", message)

    def _write_result(self) -> None:
        """``result.nrrd`` with the provenance a local run records; the exact geometry in the record."""
        from MedSRExtension.core.volume_io import save_volume
        from MedSRExtension.inference.provenance import describe_run
        result = protocol.read_result(str(self.job.work))
        volume, options = protocol.read_request(str(self.job.work))
        record = describe_run(volume, result, options, source=self.job.info["source"])
        save_volume(result, self.job.result_path, provenance=record)
        if isinstance(result.meta.get("confidence"), Volume):  # asked for, and the run made one
            from MedSRExtension.pipeline.files import save_confidence
            save_confidence(result.meta["confidence"], str(self.job.confidence_path), record)
        with self.store.lock:
            self.job.info["geometry"] = protocol.geometry(result)
            self.job.info["shape"] = list(result.shape_ijk)
