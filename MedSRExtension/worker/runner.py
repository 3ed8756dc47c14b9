"""The client half of the worker protocol: run one request in a worker process and follow it.

``Runner`` is what a GUI drives (the Slicer panel, the browser UI): start, poll, progress, cancel,
wait, and then ``result`` or ``error``. ``WorkerRunner`` is the real one: it writes the input to a
private temporary folder (``protocol``: exact geometry, no pickle), starts the worker
(``python -m MedSRExtension.worker.serve``; the caller names the interpreter: PythonSlicer inside
Slicer) in its own process group, and reads its event lines on a small reader thread into a queue.
Everything the caller sees (progress callback, log, result, error) is handled in ``poll()``, on the
caller's thread, so a timer poll is all a GUI needs (inside Slicer the main thread holds the GIL while
Qt idles, so work on a Python thread crawls: DESIGN.md).

Cancel ends the worker's whole process group at once (SIGTERM, then SIGKILL after
``KILL_AFTER_S``). A worker that dies (killed, out of memory, a crash in a GPU driver) ends the run
with a MedSRError naming the signal or exit status and the last lines of its log. In every case the
temporary folder is removed once the worker has ended. Imports neither torch nor the pipeline.
"""
from __future__ import annotations

import atexit
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Optional, Protocol, runtime_checkable

from MedSRExtension.core.errors import Cancelled, MedSRError
from MedSRExtension.core.volume import Volume

from . import protocol

Progress = Optional[Callable[[int, int], None]]

KILL_AFTER_S = 3.0
LOG_LINES_IN_ERRORS = 3
CANCELLED = "cancelled: the worker process was stopped; nothing was added to the scene"
_running: "set[WorkerRunner]" = set()


@runtime_checkable
class Runner(Protocol):
    """One run of a request, followed from the caller's (main) thread.

    ``done``, ``progress`` and ``fraction`` poll first, so reading them keeps the run moving; the
    ``progress`` callback given at construction is called from there. After ``done``: ``result`` (the
    output Volume) or ``error`` (``Cancelled`` after a cancel, ``MedSRError`` for bad input or a dead
    worker). ``log`` holds the run's messages; ``where`` says where it runs, for the log."""

    log: list[str]
    result: Optional[Volume]
    error: Optional[BaseException]

    def start(self) -> "Runner": ...

    def poll(self) -> None: ...

    @property
    def done(self) -> bool: ...

    @property
    def progress(self) -> tuple[int, int]: ...

    @property
    def fraction(self) -> float: ...

    @property
    def where(self) -> str: ...

    def cancel(self) -> None: ...

    def wait(self, timeout: Optional[float] = None) -> bool: ...


#: Makes an unstarted runner for (the input Volume, the options as ``InferenceOptions.to_dict()``, progress).
RunnerFactory = Callable[[Volume, dict, Progress], Runner]


class PolledRunner:
    """What a runner's state properties are once ``poll`` has caught up: ``done``, ``progress`` and
    ``fraction`` (subclasses set ``_finished`` in ``poll`` and say their ``_progress_now``)."""

    _finished = False

    def poll(self) -> None:  # pragma: no cover - every runner defines it
        raise NotImplementedError

    def _progress_now(self) -> tuple[int, int]:  # pragma: no cover
        raise NotImplementedError

    @property
    def done(self) -> bool:
        self.poll()
        return self._finished

    @property
    def progress(self) -> tuple[int, int]:
        self.poll()
        return self._progress_now()

    @property
    def fraction(self) -> float:
        """Completed fraction in [0, 1] (0 until the first batch reports a total)."""
        done, total = self.progress
        return min(1.0, done / total) if total else 0.0


class WorkerRunner(PolledRunner):
    """A ``Runner`` in a worker process; ``python`` is its interpreter (default: this one).

    Subclasses (``MedSRLib.remote_run.RemoteRunner``) change what runs through the hooks ``_command``,
    ``_env``, ``_event`` and ``_read_result``; ``kill_after`` is how long Cancel waits before SIGKILL."""

    kill_after = KILL_AFTER_S

    def __init__(self, volume: Volume, options: dict, progress: Progress = None, python: Optional[str] = None):
        self._volume, self._options, self._user_progress = volume, dict(options), progress
        self.python = python or sys.executable
        self._events: "queue.Queue[Optional[str]]" = queue.Queue()
        self._process: Optional[subprocess.Popen] = None
        self._reader: Optional[threading.Thread] = None
        self._folder: Optional[str] = None
        self._cancel_at: Optional[float] = None
        self._killed = False
        self._report = protocol.Report()
        self._finished = False
        self.result: Optional[Volume] = None
        self.error: Optional[BaseException] = None
        self.returncode: Optional[int] = None

    # --- starting ---------------------------------------------------------------------------

    def start(self) -> "WorkerRunner":
        """Write the request and start the worker; returns self."""
        if self._process is not None:
            raise RuntimeError("this runner has already been started")
        self._folder = tempfile.mkdtemp(prefix="MedSR-run-")
        try:
            protocol.write_request(self._folder, self._volume, self._options)
            self._volume = None  # the worker has its copy; do not keep a second one alive
            self._process = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, text=True, encoding="utf-8",
                                             errors="replace", bufsize=1, env=self._env(), **_new_group())
        except BaseException:
            self._remove_folder()
            raise
        self._reader = threading.Thread(target=self._read, name="MedSR-worker-reader", daemon=True)
        self._reader.start()
        _running.add(self)
        return self

    def _command(self) -> list[str]:
        """The worker's command line (never a secret: ``ps`` shows it)."""
        return protocol.serve_command(self.python, self._folder)

    def _env(self) -> dict:
        return protocol.worker_env()

    def _read(self) -> None:
        """Reader thread: forwards each output line to the queue; None marks the end of output."""
        try:
            for line in self._process.stdout:
                self._events.put(line.rstrip("\n"))
        finally:
            self._events.put(None)

    # --- state, polled from the main thread --------------------------------------------------

    @property
    def folder(self) -> Optional[str]:
        """The run's private temporary folder (None once removed)."""
        return self._folder

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self._process is not None else None

    @property
    def where(self) -> str:
        return f"worker process {self.pid}"

    @property
    def log(self) -> list[str]:
        """The worker's messages so far."""
        return self._report.log

    def _progress_now(self) -> tuple[int, int]:
        return self._report.progress

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_at is not None

    def cancel(self) -> None:
        """End the worker now (its whole process group); returns at once, nothing reaches the scene."""
        if self._cancel_at is None:
            self._cancel_at = time.monotonic()
            self._signal(signal.SIGTERM)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Poll until the run ends (or ``timeout`` seconds pass); True when it has ended."""
        return wait_for(self, timeout)

    def poll(self) -> None:
        """Handle what the worker reported since the last poll; finish the run once it has ended."""
        if self._finished or self._process is None:
            return
        output_ended = self._take_lines()
        if self._cancel_at is not None and not self._killed and time.monotonic() - self._cancel_at > self.kill_after:
            self._killed = True
            self._signal(getattr(signal, "SIGKILL", signal.SIGTERM))
        if output_ended or (self._reader is not None and not self._reader.is_alive() and self._events.empty()):
            try:
                self.returncode = self._process.wait(timeout=KILL_AFTER_S)
            except subprocess.TimeoutExpired:  # output closed but the process lingers: end it
                self._signal(getattr(signal, "SIGKILL", signal.SIGTERM))
                self.returncode = self._process.wait()
            self._finish()

    def _take_lines(self) -> bool:
        """Handle the queued output lines; True once the output has ended."""
        while True:
            try:
                line = self._events.get_nowait()
            except queue.Empty:
                return False
            if line is None:
                return True
            event = self._report.take(line)
            kind = event["event"] if event is not None else None
            if kind == "progress" and self._user_progress is not None and self._cancel_at is None:
                self._user_progress(*self._report.progress)
            elif kind is not None and kind not in protocol.EVENTS:
                self._event(event)

    def _event(self, event: dict) -> None:
        """An event the local worker does not send (a subclass's own); ignored here."""

    def _read_result(self) -> Volume:
        return protocol.read_result(self._folder)

    def _finish(self) -> None:
        try:
            if self._cancel_at is not None:
                self.error = Cancelled(CANCELLED)
            elif self._report.got_result and self.returncode == 0:
                self.result = self._read_result()
            elif self._report.error is not None:
                message = self._report.failure()
                self.error = MedSRError(message if self._report.error[0] == "MedSRError"
                                        else f"{message} (see the log for details)")
            else:
                tail = " | ".join(list(self.log)[-LOG_LINES_IN_ERRORS:]) or "no output"
                self.error = MedSRError(f"the MedSR worker process {protocol.describe_exit(self.returncode)} "
                                        f"before finishing; nothing was added to the scene. Last log lines: {tail}")
        except Exception as exc:  # an unreadable result is a failure of the run, not of the GUI
            self.error = MedSRError(f"the worker's result could not be read: {exc}")
        finally:
            self._remove_folder()
            self._finished = True
            _running.discard(self)

    # --- helpers ------------------------------------------------------------------------------

    def _signal(self, sig) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        try:
            if os.name == "nt":
                process.kill() if sig != signal.SIGTERM else process.terminate()
            else:
                os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _remove_folder(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def wait_for(runner: Runner, timeout: Optional[float] = None) -> bool:
    """Poll ``runner`` until it ends (or ``timeout`` seconds pass); True when it has ended."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not runner.done:
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _new_group() -> dict:
    """Popen keywords that start the worker in a process group of its own, so Cancel ends all of it."""
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)}
    return {"start_new_session": True}


def _wait_quietly(process: Optional[subprocess.Popen]) -> None:
    if process is not None:
        try:
            process.wait(timeout=KILL_AFTER_S)
        except subprocess.TimeoutExpired:
            pass


@atexit.register
def _stop_all() -> None:
    """When the application quits during a run, end every worker and remove its files."""
    runners = list(_running)
    for runner in runners:
        runner.cancel()
    for runner in runners:
        if runner.kill_after > KILL_AFTER_S:  # a remote run cancels its job
            _wait_quietly(runner._process)
        runner._signal(getattr(signal, "SIGKILL", signal.SIGTERM))
        _wait_quietly(runner._process)
        runner._remove_folder()
