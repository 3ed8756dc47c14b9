"""Super-resolve a volume node: the entry point of the module's Logic, synchronous or in the background.

The work is split so that MRML is touched only on the caller's (main) thread:
``SuperResolveJob.__init__`` copies the input into an engine Volume, ``compute`` runs the engine on
that copy (safe on a worker thread), ``finish`` writes the output node. A cancelled or failed run
never reaches ``finish``, so it leaves the scene exactly as it was; the input node is never written.
"""
from __future__ import annotations

import threading
from typing import Callable, Optional

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.volume import Volume

from . import nodes

Progress = Optional[Callable[[int, int], None]]
Cancel = Optional[Callable[[], bool]]


class SuperResolveJob:
    """One super-resolution request for one input node.

    Construct it on the main thread (it reads the node), run ``compute`` anywhere, then call
    ``finish`` on the main thread to get the output node."""

    def __init__(self, input_node, model: str = "bicubic", scale=2.0, mode: str = "inplane", axis: str = "auto",
                 device: str = "auto", output_node=None, tile: Optional[int] = None, **engine_options):
        nodes.check_output_node(output_node, input_node)
        self.volume: Volume = nodes.volume_from_node(input_node)
        self.input_node = input_node
        self.input_name = input_node.GetName()
        self.scene = nodes.scene_of(input_node)
        if self.scene is None:
            raise MedSRError(f"'{self.input_name}' is not in a scene; add it to the scene first")
        self.output_node = output_node
        self.model, self.scale, self.mode, self.axis, self.device = model, scale, mode, axis, device
        self.tile = int(tile) if tile else None
        self.engine_options = engine_options
        self.result: Optional[Volume] = None

    @property
    def output_name(self) -> str:
        return nodes.output_name(self.input_name, self.scale, self.model)

    def compute(self, progress: Progress = None, cancel: Cancel = None) -> Volume:
        """Run the engine on the copied volume (no MRML access: safe off the main thread)."""
        from MedSRExtension.inference.engine import super_resolve
        self.result = super_resolve(self.volume, model=self.model, scale=self.scale, mode=self.mode,
                                    axis=self.axis, device=self.device, progress=progress, cancel=cancel,
                                    tile=self.tile, **self.engine_options)
        return self.result

    def finish(self):
        """Write the result into the output node (created now if none was given) and return it."""
        if self.result is None:
            raise MedSRError("super-resolution has not produced a result yet; nothing was added to the scene")
        return nodes.write_output_node(self.scene, self.result, self.output_name, like=self.input_node,
                                       output_node=self.output_node)


def superresolve_node(inputNode, model: str = "bicubic", scale=2.0, mode: str = "inplane", axis: str = "auto",
                      device: str = "auto", outputNode=None, progress: Progress = None, cancel: Cancel = None,
                      tile: Optional[int] = None, **engine_options):
    """Super-resolve ``inputNode`` and return the output volume node (new unless ``outputNode`` is given).

    ``progress(done, total)`` is called between batches; ``cancel()`` returning True stops the run
    with ``MedSRExtension.Cancelled``. ``engine_options`` go to ``super_resolve`` (batch, preset,
    weights, out_dtype, spacing). Runs on the calling thread; see ``BackgroundRunner`` for the GUI."""
    job = SuperResolveJob(inputNode, model=model, scale=scale, mode=mode, axis=axis, device=device,
                          output_node=outputNode, tile=tile, **engine_options)
    job.compute(progress=progress, cancel=cancel)
    return job.finish()


class BackgroundRunner:
    """Runs ``work(progress, cancel)`` on a daemon thread and keeps its state for polling.

    The GUI polls ``done``, ``progress`` and ``fraction`` from a timer and asks ``cancel()``; the
    work sees the request at its next ``cancel()`` check (between batches). ``error`` holds the
    exception the work raised (``Cancelled`` after a cancel), ``result`` its return value."""

    def __init__(self, work: Callable[[Progress, Cancel], object], progress: Progress = None):
        self._work = work
        self._user_progress = progress
        self._cancel_requested = threading.Event()
        self._finished = threading.Event()
        self._lock = threading.Lock()
        self._progress = (0, 0)
        self._thread: Optional[threading.Thread] = None
        self.result = None
        self.error: Optional[BaseException] = None

    def start(self) -> "BackgroundRunner":
        if self._thread is not None:
            raise RuntimeError("this runner has already been started")
        self._thread = threading.Thread(target=self._run, name="MedSR-worker", daemon=True)
        self._thread.start()
        return self

    def _report(self, done: int, total: int) -> None:
        with self._lock:
            self._progress = (int(done), int(total))
        if self._user_progress is not None:
            self._user_progress(done, total)

    def _run(self) -> None:
        try:
            self.result = self._work(self._report, self._cancel_requested.is_set)
        except BaseException as exc:  # handed to the main thread, which reports it
            self.error = exc
        finally:
            self._finished.set()

    def cancel(self) -> None:
        """Ask the work to stop at its next check; returns at once."""
        self._cancel_requested.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested.is_set()

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    @property
    def progress(self) -> tuple[int, int]:
        with self._lock:
            return self._progress

    @property
    def fraction(self) -> float:
        """Completed fraction in [0, 1] (0 until the first batch reports a total)."""
        done, total = self.progress
        return min(1.0, done / total) if total else 0.0

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the work ends (or ``timeout`` seconds pass); True when it has ended."""
        return self._finished.wait(timeout)


def start_superresolve(inputNode, outputNode=None, progress: Progress = None, **options) -> tuple[SuperResolveJob, BackgroundRunner]:
    """Start a background run: returns the job and its started runner. Poll ``runner.done`` on the
    main thread, then call ``finish_superresolve(job, runner)`` there to get the output node."""
    job = SuperResolveJob(inputNode, output_node=outputNode, **options)
    runner = BackgroundRunner(lambda report, cancel: job.compute(progress=report, cancel=cancel), progress=progress)
    return job, runner.start()


def finish_superresolve(job: SuperResolveJob, runner: BackgroundRunner):
    """On the main thread, after ``runner.done``: the output node, or the worker's exception raised
    again (``Cancelled``, ``MedSRError``, ...) with the scene unchanged."""
    if not runner.done:
        raise RuntimeError("the background run has not ended yet; wait for runner.done")
    if runner.error is not None:
        raise runner.error
    return job.finish()
