"""Run ``super_resolve`` in a separate worker process and follow it from the main thread.

Inside Slicer the main thread holds the GIL while Qt idles, so work on a Python thread crawls;
TotalSegmentator and MONAIAuto3DSeg run their inference in a process for the same reason. The
runner writes the input to a private temporary folder (``MedSRExtension.worker.serve``'s
protocol: exact geometry, no pickle), starts the worker (``PythonSlicer`` inside Slicer, this
interpreter elsewhere) in its own process group, and reads its event lines on a small reader thread
into a queue. Everything the caller sees (progress callback, log, result, error) is handled in
``poll()``, on the caller's thread, so a QTimer poll is all the GUI needs.

Cancel ends the worker's whole process group at once (SIGTERM, then SIGKILL after
``KILL_AFTER_S``). A worker that dies (killed, out of memory, a crash in a GPU driver) ends the run
with a MedSRError naming the signal or exit status and the last lines of its log. In every case the
temporary folder is removed once the worker has ended. Imports neither qt nor torch.
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
from typing import Callable, Optional

from MedSRExtension.core.errors import Cancelled, MedSRError
from MedSRExtension.core.volume import Volume
from MedSRExtension.worker import serve as protocol

Progress = Optional[Callable[[int, int], None]]

KILL_AFTER_S = 3.0
LOG_LINES_IN_ERRORS = 3
#: The folder holding the MedSRExtension package, put on the worker's PYTHONPATH (PythonSlicer does
#: not have the module folders of scripted modules on its path).
_ENGINE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(protocol.__file__))))
_running: "set[WorkerRunner]" = set()


def worker_python() -> str:
    """The interpreter for the worker: ``PythonSlicer`` inside the Slicer application (Slicer's own
    Python with its packages, as TotalSegmentator uses), else the current interpreter."""
    try:
        import slicer
        in_app = getattr(slicer, "app", None) is not None
    except ImportError:
        in_app = False
    if in_app:
        found = shutil.which("PythonSlicer")
        if found:
            return found
    return sys.executable


def _worker_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_ENGINE_PARENT, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (often the system running out of memory)" if -code == getattr(signal, "SIGKILL", 9) else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {code}"


class WorkerRunner:
    """One run of the engine in a worker process; poll it from the main thread.

    ``done``, ``progress``, ``fraction`` and ``wait()`` poll first, so reading them is enough to
    keep the run moving. ``result`` holds the output Volume after success, ``error`` the exception
    (``Cancelled`` after a cancel, ``MedSRError`` for bad input or a dead worker), ``log`` the
    worker's messages.

    Subclasses (``remote_run.RemoteRunner``) change what runs through the hooks ``_command``,
    ``_env``, ``_event`` and ``_read_result``; ``kill_after`` is how long Cancel waits before SIGKILL."""

    kill_after = KILL_AFTER_S

    def __init__(self, volume: Volume, options: dict, progress: Progress = None):
        self._volume, self._options, self._user_progress = volume, dict(options), progress
        self._events: "queue.Queue[Optional[str]]" = queue.Queue()
        self._process: Optional[subprocess.Popen] = None
        self._reader: Optional[threading.Thread] = None
        self._folder: Optional[str] = None
        self._cancel_at: Optional[float] = None
        self._killed = False
        self._got_result = False
        self._worker_error: Optional[tuple[str, str]] = None
        self._finished = False
        self._progress = (0, 0)
        self.log: list[str] = []
        self.result: Optional[Volume] = None
        self.error: Optional[BaseException] = None
        self.returncode: Optional[int] = None

    # --- starting ---------------------------------------------------------------------------

    def start(self) -> "WorkerRunner":
        if self._process is not None:
            raise RuntimeError("this runner has already been started")
        self._folder = tempfile.mkdtemp(prefix="MedSR-run-")
        try:
            protocol.write_request(self._folder, self._volume, self._options)
            self._volume = None  # the worker has its copy; do not keep a second one alive
            command = self._command()
            kwargs = {}
            if os.name == "nt":
                kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
            else:
                kwargs["start_new_session"] = True  # its own process group, so Cancel ends all of it
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, text=True, encoding="utf-8",
                                             errors="replace", bufsize=1, env=self._env(), **kwargs)
        except BaseException:
            self._remove_folder()
            raise
        self._reader = threading.Thread(target=self._read, name="MedSR-worker-reader", daemon=True)
        self._reader.start()
        _running.add(self)
        return self

    def _command(self) -> list[str]:
        """The worker's command line (never a secret: ``ps`` shows it)."""
        return [worker_python(), "-m", "MedSRExtension.worker.serve", self._folder]

    def _env(self) -> dict:
        return _worker_env()

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
    def done(self) -> bool:
        self.poll()
        return self._finished

    @property
    def progress(self) -> tuple[int, int]:
        self.poll()
        return self._progress

    @property
    def fraction(self) -> float:
        """Completed fraction in [0, 1] (0 until the first batch reports a total)."""
        done, total = self.progress
        return min(1.0, done / total) if total else 0.0

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
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def poll(self) -> None:
        """Handle what the worker reported since the last poll; finish the run once it has ended."""
        if self._finished or self._process is None:
            return
        output_ended = False
        while True:
            try:
                line = self._events.get_nowait()
            except queue.Empty:
                break
            if line is None:
                output_ended = True
                break
            self._handle(line)
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

    def _handle(self, line: str) -> None:
        event = protocol.parse_event(line)
        if event is None:
            if line.strip():
                self.log.append(line)
            return
        kind = event["event"]
        if kind == "progress":
            self._progress = (int(event.get("done", 0)), int(event.get("total", 0)))
            if self._user_progress is not None and self._cancel_at is None:
                self._user_progress(*self._progress)
        elif kind == "log":
            self.log.append(str(event.get("message", "")))
        elif kind == "result":
            self._got_result = True
        elif kind == "error":
            self._worker_error = (str(event.get("kind", "Error")), str(event.get("message", "")))
            self.log.append(f"error: {self._worker_error[1]}")
        else:
            self._event(event)

    def _event(self, event: dict) -> None:
        """An event the local worker does not send (a subclass's own); ignored here."""

    def _read_result(self) -> Volume:
        return protocol.read_result(self._folder)

    def _finish(self) -> None:
        try:
            if self._cancel_at is not None:
                self.error = Cancelled("cancelled: the worker process was stopped; nothing was added to the scene")
            elif self._got_result and self.returncode == 0:
                self.result = self._read_result()
            elif self._worker_error is not None and self._worker_error[0] == "MedSRError":
                self.error = MedSRError(self._worker_error[1])
            elif self._worker_error is not None:
                self.error = MedSRError(f"super-resolution failed in the worker: {self._worker_error[0]}: "
                                        f"{self._worker_error[1]} (see the log for details)")
            else:
                tail = " | ".join(list(self.log)[-LOG_LINES_IN_ERRORS:]) or "no output"
                self.error = MedSRError(f"the MedSR worker process {_describe_exit(self.returncode)} before "
                                        f"finishing; nothing was added to the scene. Last log lines: {tail}")
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


@atexit.register
def _stop_all() -> None:
    """When the application quits during a run, end every worker and remove its files."""
    runners = list(_running)
    for runner in runners:
        runner.cancel()
    for runner in runners:
        if runner.kill_after > KILL_AFTER_S and runner._process is not None:  # a remote run cancels its job
            try:
                runner._process.wait(timeout=KILL_AFTER_S)
            except subprocess.TimeoutExpired:
                pass
        runner._signal(getattr(signal, "SIGKILL", signal.SIGTERM))
        if runner._process is not None:
            try:
                runner._process.wait(timeout=KILL_AFTER_S)
            except subprocess.TimeoutExpired:
                pass
        runner._remove_folder()
