"""One request's runs, start -> poll -> finish, in one place.

A request is one or more steps (the chosen model, then the comparison's baseline), each one
``worker.runner.Runner`` started after the one before it succeeded. ``RunSequence.poll()`` moves
it on from the main thread; at the end either ``nodes`` holds the output node of every step (made
only then, so a cancelled or failed request leaves the scene as it was) or ``error`` says why not.
The panel (``panel.SuperResolvePanel``) and the Logic's scripted background run (``start_single`` +
``follow``, the Logic passing a QTimer as ``schedule``) follow requests through this one sequence.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from MedSRExtension.core.errors import Cancelled
from MedSRExtension.worker.runner import CANCELLED, Progress, Runner, RunnerFactory

from . import process


@dataclass
class Step:
    """One run of a request: the chosen model (``role`` "result") or the comparison's baseline."""
    role: str
    model: str
    output_node: object
    job: object = None
    runner: Optional[Runner] = None
    log_seen: int = 0
    server_seen: tuple = ()  # the (state, job id) of a server run last shown


#: Starts one step: sets its ``job`` and (started) ``runner``; raises when the step is refused.
Launch = Callable[[Step], None]


class RunSequence:
    """The steps of one request, run one after another through ``launch``; ``log`` receives each
    runner's new lines as "[model] line"."""

    def __init__(self, steps: list[Step], launch: Launch, log: Optional[Callable[[str], None]] = None):
        self.steps, self._launch, self._log = steps, launch, log
        self.cancelled = False
        self.ended = False
        self.nodes: dict = {}
        self.error: Optional[BaseException] = None

    def begin(self) -> "RunSequence":
        """Start the first step (a refusal raises here, before any work)."""
        self._launch(self.steps[0])
        return self

    @property
    def started(self) -> list[Step]:
        return [s for s in self.steps if s.runner is not None]

    @property
    def current(self) -> Optional[Step]:
        """The step whose runner is still going, or None."""
        return next((s for s in self.steps if s.runner is not None and not s.runner.done), None)

    @property
    def fraction(self) -> float:
        """Progress over the whole request in [0, 1] (every step counts the same)."""
        done = sum(1 for s in self.steps if s.runner is not None and s.runner.done)
        current = self.current
        return min(1.0, (done + (current.runner.fraction if current is not None else 0.0)) / len(self.steps))

    def cancel(self) -> None:
        """Stop the runner that is going; no later step starts."""
        self.cancelled = True
        for step in self.steps:
            if step.runner is not None and not step.runner.done:
                step.runner.cancel()

    def poll(self) -> bool:
        """Move the request on; True while a step is still going or about to start."""
        if self.ended:
            return False
        current = self.current
        if current is not None:
            self._take_log(current)
            return True
        last = self.started[-1]
        self._take_log(last)
        if last.runner.error is not None:
            return self._end(last.runner.error)
        following = next((s for s in self.steps if s.runner is None), None)
        if following is not None:
            if self.cancelled:
                return self._end(Cancelled(CANCELLED))
            try:
                self._launch(following)
            except Exception as exc:
                return self._end(exc)
            return True
        try:
            self.nodes = {s.role: process.finish_superresolve(s.job, s.runner) for s in self.steps}
        except Exception as exc:
            return self._end(exc)
        return self._end(None)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop any runner now and wait for it (module reload, scene close); nothing is kept."""
        for step in self.steps:
            if step.runner is not None and not step.runner.done:
                step.runner.cancel()
                step.runner.wait(timeout)
        self.cancelled = self.ended = True

    def _end(self, error: Optional[BaseException]) -> bool:
        self.error, self.ended = error, True
        return False

    def _take_log(self, step: Step) -> None:
        lines = list(step.runner.log)
        if self._log is not None:
            for line in lines[step.log_seen:]:
                self._log(f"[{step.model}] {line}")
        step.log_seen = len(lines)


def start_single(input_node, output_node=None, progress: Progress = None,
                 runner_factory: RunnerFactory = process.process_runner,
                 log: Optional[Callable[[str], None]] = None, **options) -> RunSequence:
    """A started one-step request for ``input_node`` (the Logic's background run); ``options`` are
    ``process.SuperResolveJob``'s (model, scale, mode, axis, device, tile, engine options)."""
    def launch(step: Step) -> None:
        step.job, step.runner = process.start_superresolve(input_node, outputNode=output_node, progress=progress,
                                                           runner_factory=runner_factory, **options)
    return RunSequence([Step("result", str(options.get("model", "bicubic")), output_node)], launch, log).begin()


def follow(run: RunSequence, schedule: Callable[[Callable[[], None]], None],
           on_end: Callable[[object, Optional[BaseException]], None]) -> None:
    """Poll ``run`` whenever ``schedule`` calls back (Slicer: ``QTimer.singleShot``), and once it has
    ended call ``on_end(result node or None, error or None)``."""
    def tick() -> None:
        if run.poll():
            schedule(tick)
        else:
            on_end(run.nodes.get("result"), run.error)
    schedule(tick)
