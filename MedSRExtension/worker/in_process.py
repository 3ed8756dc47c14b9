"""A ``Runner`` that runs the pipeline on a thread of this process, for scripts, tests and services
outside Slicer (inside Slicer the main thread holds the GIL while Qt idles, so use ``WorkerRunner``
there: DESIGN.md).

It follows the same contract as the worker process: the options arrive as ``InferenceOptions.to_dict()``,
progress reaches the caller's callback from ``poll()`` on the caller's thread, Cancel stops the run
between batches, and the result carries the whole ``meta`` the pipeline returned. No process, no
files: the input Volume is the caller's copy, never written.
"""
from __future__ import annotations

import os
import threading
import time
import traceback
from typing import Optional

from MedSRExtension.core.errors import Cancelled, MedSRError
from MedSRExtension.core.volume import Volume

from .runner import CANCELLED, PolledRunner, Progress, wait_for


class InProcessRunner(PolledRunner):
    """One run of ``pipeline.run_pipeline`` on a daemon thread, followed through ``poll()``."""

    def __init__(self, volume: Volume, options: dict, progress: Progress = None):
        self._volume, self._options, self._user_progress = volume, dict(options), progress
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._reported = (0, 0)     # written by the run's thread
        self._shown = (0, 0)        # what the caller has seen
        self._lines: list[str] = []  # written by the run's thread
        self._cancel = threading.Event()
        self._outcome: Optional[tuple[Optional[Volume], Optional[BaseException]]] = None
        self._finished = False
        self.log: list[str] = []
        self.result: Optional[Volume] = None
        self.error: Optional[BaseException] = None

    def start(self) -> "InProcessRunner":
        """Check the options (a bad one raises here, before any work) and start the run's thread."""
        if self._thread is not None:
            raise RuntimeError("this runner has already been started")
        from MedSRExtension.inference.options import InferenceOptions
        options = InferenceOptions.from_dict(self._options)
        self._thread = threading.Thread(target=self._run, args=(options,), name="MedSR-in-process", daemon=True)
        self._thread.start()
        return self

    def _run(self, options) -> None:
        from MedSRExtension.pipeline import run_pipeline
        start = time.perf_counter()
        self._say(f"in-process run (pid {os.getpid()}): model {options.model}, scale {options.scale}, "
                  f"mode {options.mode}")
        try:
            result = run_pipeline(self._volume, options, progress=self._on_progress, cancel=self._cancel.is_set)
            self._say(f"done in {time.perf_counter() - start:.1f} s: {'x'.join(map(str, result.shape_ijk))} voxels")
            outcome = (result, None)
        except Cancelled:
            outcome = (None, Cancelled(CANCELLED))
        except BaseException as exc:  # reported through ``error``, as a worker reports it
            if not isinstance(exc, MedSRError):
                for text in traceback.format_exc().splitlines():
                    self._say(text)
            outcome = (None, exc)
        with self._lock:
            self._outcome = outcome

    def _on_progress(self, done: int, total: int) -> None:
        with self._lock:
            self._reported = (int(done), int(total))

    def _say(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)

    # --- state, polled from the caller's thread -------------------------------------------------

    @property
    def where(self) -> str:
        return f"a thread of this process ({os.getpid()})"

    def poll(self) -> None:
        """Take what the run reported since the last poll; finish once its thread has ended."""
        if self._finished or self._thread is None:
            return
        with self._lock:
            reported, lines, outcome = self._reported, self._lines, self._outcome
            self._lines = []
        self.log.extend(lines)
        if reported != self._shown:
            self._shown = reported
            if self._user_progress is not None and not self._cancel.is_set():
                self._user_progress(*reported)
        if outcome is not None:
            self._thread.join()
            self.result, self.error = outcome
            if self._cancel.is_set() and self.error is None:  # finished before it saw the cancel
                self.result, self.error = None, Cancelled(CANCELLED)
            self._volume = None
            self._finished = True

    def _progress_now(self) -> tuple[int, int]:
        return self._shown

    def cancel(self) -> None:
        """Stop the run at its next batch; nothing reaches the caller's scene."""
        self._cancel.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Poll until the run ends (or ``timeout`` seconds pass); True when it has ended."""
        return wait_for(self, timeout)
