"""Super-resolve a volume node: the entry point of the module's Logic, in this process or in a worker.

The work is split so that MRML is touched only on the caller's (main) thread:
``SuperResolveJob.__init__`` copies the input into an engine Volume, ``compute`` runs the engine on
that copy in this process (scripts, tests), or ``start_superresolve`` hands the copy to a worker
process (the GUI: ``start_superresolve``, with any ``worker.runner.Runner``), and ``finish`` writes the output node. A cancelled or
failed run never reaches ``finish``, so it leaves the scene exactly as it was; the input node is
never written.
"""
from __future__ import annotations

from typing import Callable, Optional

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.volume import Volume

from MedSRExtension.worker.runner import Progress, Runner, RunnerFactory, WorkerRunner

from . import nodes
from .interpreter import worker_python
from .remote_run import RemoteRunner

Cancel = Optional[Callable[[], bool]]


def process_runner(volume: Volume, options: dict, progress: Progress = None) -> WorkerRunner:
    """The default ``RunnerFactory``: a worker process on ``PythonSlicer`` inside Slicer, on this
    interpreter elsewhere."""
    return WorkerRunner(volume, options, progress=progress, python=worker_python())


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
        self.confidence_node = None  # made by ``finish`` when the run returned a confidence map

    @property
    def output_name(self) -> str:
        return nodes.output_name(self.input_name, self.scale, self.model)

    def engine_call_options(self) -> dict:
        """The job's ``InferenceOptions`` as plain values (they travel to the worker as JSON); built
        here, on the main thread, so a bad option is refused before any worker starts."""
        from MedSRExtension.inference.options import InferenceOptions
        return InferenceOptions(model=self.model, scale=self.scale, mode=self.mode, axis=self.axis,
                                device=self.device, tile=self.tile, **self.engine_options).to_dict()

    def compute(self, progress: Progress = None, cancel: Cancel = None) -> Volume:
        """Run the engine on the copied volume in this process (no MRML access)."""
        from MedSRExtension.pipeline import super_resolve
        self.result = super_resolve(self.volume, progress=progress, cancel=cancel, **self.engine_call_options())
        return self.result

    def finish(self):
        """Write the result into the output node (created now if none was given) and return it; a
        confidence map the run made becomes its own node (``confidence_node``) beside it."""
        if self.result is None:
            raise MedSRError("super-resolution has not produced a result yet; nothing was added to the scene")
        out = nodes.write_output_node(self.scene, self.result, self.output_name, like=self.input_node,
                                      output_node=self.output_node, provenance=self.provenance())
        spread = self.result.meta.get("confidence")
        if isinstance(spread, Volume):
            from .confidence import write_confidence_node
            try:
                self.confidence_node = write_confidence_node(self.scene, spread, out)
            except Exception:
                if self.output_node is None:  # no half-made result: the new node goes with the failure
                    self.scene.RemoveNode(out)
                raise
        return out

    def provenance(self) -> dict:
        """What made the result (core.provenance keys), set on the output node as ``MedSR.*`` attributes."""
        from MedSRExtension.inference.provenance import describe_run
        return describe_run(self.volume, self.result, self.engine_call_options(), source=self.input_name)


def superresolve_node(inputNode, model: str = "bicubic", scale=2.0, mode: str = "inplane", axis: str = "auto",
                      device: str = "auto", outputNode=None, progress: Progress = None, cancel: Cancel = None,
                      tile: Optional[int] = None, **engine_options):
    """Super-resolve ``inputNode`` and return the output volume node (new unless ``outputNode`` is given).

    ``progress(done, total)`` is called between batches; ``cancel()`` returning True stops the run
    with ``MedSRExtension.Cancelled``. ``engine_options`` go to ``super_resolve`` (batch, preset,
    weights, out_dtype, spacing). Runs on the calling thread; see ``start_superresolve`` for the GUI."""
    job = SuperResolveJob(inputNode, model=model, scale=scale, mode=mode, axis=axis, device=device,
                          output_node=outputNode, tile=tile, **engine_options)
    job.compute(progress=progress, cancel=cancel)
    return job.finish()


def start_superresolve(inputNode, outputNode=None, progress: Progress = None,
                       runner_factory: RunnerFactory = process_runner, **options) -> tuple[SuperResolveJob, Runner]:
    """Start a run (in a worker process unless ``runner_factory`` makes another ``Runner``): returns
    the job and its started runner.

    The input is read now, on the calling (main) thread. Poll ``runner.done`` from the main thread (a
    QTimer in Slicer); ``progress(done, total)`` is called there, from inside ``runner.poll()``. Then
    call ``finish_superresolve(job, runner)`` there to get the output node. ``runner.cancel()`` ends
    the worker at once; ``runner.pid`` is its process id."""
    job = SuperResolveJob(inputNode, output_node=outputNode, **options)
    runner = runner_factory(job.volume, job.engine_call_options(), progress)
    return job, runner.start()


class RemoteJob(SuperResolveJob):
    """A run sent to a MedSR server: its provenance is the record the server wrote (what ran there:
    device, weights, sha256), naming the input node as a local run does."""

    def provenance(self) -> dict:
        record = dict(self.result.meta.get("provenance") or {}) if self.result is not None else {}
        if not record:
            raise MedSRError("the server's result has no provenance record; nothing was added to the scene")
        record["source"] = self.input_name
        return record


def start_superresolve_remote(inputNode, url: str, token: str, outputNode=None, progress: Progress = None,
                              **options) -> tuple[RemoteJob, RemoteRunner]:
    """``start_superresolve`` with the work done by the MedSR server at ``url`` (``token`` is passed to
    the worker process in its environment, never logged). Finish it with ``finish_superresolve``."""
    job = RemoteJob(inputNode, output_node=outputNode, **options)
    runner = RemoteRunner(job.volume, job.engine_call_options(), url, token, job.input_name, progress=progress)
    return job, runner.start()


def finish_superresolve(job: SuperResolveJob, runner: Runner):
    """On the main thread, after ``runner.done``: the output node, or the run's exception raised
    again (``Cancelled``, ``MedSRError``) with the scene unchanged."""
    if not runner.done:
        raise RuntimeError("the background run has not ended yet; wait for runner.done")
    if runner.error is not None:
        raise runner.error
    job.result = runner.result
    return job.finish()
