"""The MedSR panel as a Qt-free model: what it offers, what it shows, and what a click does.

The Slicer widget (MedSR.py) and the browser UI bind their controls to one ``SuperResolvePanel``;
neither holds behaviour of its own. The panel reads and writes a parameter object with the fields of
``PanelParameters`` (in Slicer: the module's parameter node, which has the same fields), runs the
engine through runners (``worker.runner.Runner``: by default a worker process, ``process.process_runner``;
any other ``runner_factory`` may be given) and follows them from ``poll()``, which the GUI calls from a
timer on the main thread; the start -> poll -> finish of a request's runs is ``run_sequence.RunSequence``.

Run states: idle -> (installing ->) running -> cancelling -> done | failed | idle (cancelled).
Run on: this computer (``run_on = "local"``) or a MedSR server (``"server"``, with ``server_url`` and
``token``, which the GUI keeps in its own settings: the token never enters the parameters, the scene,
the log or the provenance). A server run goes queued (sending, waiting in the server's queue) ->
running -> ..., through the same states, its worker process uploading, polling and downloading
(``remote_run``); its result node is made exactly as a local run's, with the server's provenance.
A run with Compare on is two worker runs (the chosen model, then the baseline); no node is added to
the scene until both succeeded, so a cancelled or failed run leaves the scene as it was.
"""
from __future__ import annotations

import enum
import traceback
from dataclasses import dataclass, fields
from typing import Callable, Optional

from MedSRExtension.core import run_progress
from MedSRExtension.core.errors import Cancelled, MedSRError
from MedSRExtension.worker.runner import RunnerFactory

from . import choices, device_info
from .run_sequence import RunSequence, Step

#: Called with (inputNode, outputNode, referenceNode, mode, axis, plan) to show the result.
ShowCallback = Callable[..., None]


@dataclass
class PanelParameters:
    """The panel's settings outside Slicer (tests, the browser UI); the same fields, names and
    defaults as ``MedSRParameterNode`` in MedSR.py (a static test keeps them in step)."""
    inputVolume: object = None
    outputVolume: object = None
    model: str = ""
    scale: float = 2.0
    mode: str = "inplane"
    axis: str = "auto"
    adapt: bool = False
    confidence: bool = False
    sliceThickness: float = 0.0
    bestQuality: bool = False
    trainedOn: str = "bicubic"
    device: str = "auto"
    tileSize: int = 0
    customWeights: str = ""
    showSideBySide: bool = True
    compareEnabled: bool = False
    baselineModel: str = "bicubic"
    referenceVolume: object = None
    referenceSegmentation: object = None
    segmentationMethod: str = "otsu3"


PARAMETER_NAMES = tuple(f.name for f in fields(PanelParameters))
#: "Best quality": the network averaged over the 8 flips/transposes of the volume (README: +0.1-0.4 dB at
#: 8x the time; off by default on the CPU). Not with adaptation, which runs its tuned network once.
BEST_QUALITY_ENSEMBLE = 8


class State(str, enum.Enum):
    IDLE = "idle"
    INSTALLING = "installing"
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    DONE = "done"
    FAILED = "failed"


BUSY = (State.INSTALLING, State.QUEUED, State.RUNNING, State.CANCELLING)
ACTIVE = (State.QUEUED, State.RUNNING)  # a run the Cancel button can stop


@dataclass(frozen=True)
class Button:
    text: str
    enabled: bool
    tooltip: str


@dataclass
class Outcome:
    """What the last run left in the scene."""
    output_node: object = None
    baseline_node: object = None
    comparison: Optional[dict] = None
    adapt: Optional[dict] = None  # what an adapted run used (the worker's ``result.meta["adapt"]``)
    confidence_node: object = None  # the result's confidence map, when asked for
    error: Optional[BaseException] = None
    detail: str = ""           # a traceback, for errors that are not MedSRError
    reported: bool = False     # set by a GUI once it has shown ``detail`` (a dialog shows once)


class SuperResolvePanel:
    """The behaviour of the MedSR panel, bound to a parameter object and a scene.

    Args:
        params: the parameter node (Slicer) or a ``PanelParameters``.
        scene: the MRML scene the nodes live in.
        show: called to show the result side by side (the Logic's ``showSideBySide``); None: don't.
        records: the model records (default: the engine's ``list_models()``), for tests.
        torch_ready: whether PyTorch can be imported (default: checked without importing it).
        adapt_budget: the ``adapt`` option of an adapted run: True (the engine's default budget: a few
            minutes on a CPU, under one on a GPU), minutes, or ``AdaptOptions`` fields as a dict.
        runner_factory: makes the runner of each local run (default ``process.process_runner``, a worker
            process); server runs always go through ``remote_run.RemoteRunner``.
    """

    def __init__(self, params, scene, show: Optional[ShowCallback] = None, records: Optional[list] = None,
                 torch_ready: Optional[Callable[[], bool]] = None, adapt_budget=True,
                 runner_factory: Optional[RunnerFactory] = None):
        self.params, self.scene, self._show = params, scene, show
        self._runner_factory = runner_factory
        self.adapt_budget = adapt_budget
        self._records = records
        self._torch_ready = torch_ready or device_info.torch_installed
        self.state = State.IDLE
        self.status = ""
        self.log: list[str] = []
        self.outcome = Outcome()
        self.run: Optional[RunSequence] = None  # the request in progress, or the last one
        self._device_line: Optional[tuple[str, str]] = None
        self.model_choices: list[choices.ModelChoice] = []
        self._input_seen: Optional[str] = None
        self.run_on = "local"      # "local" | "server" (remote_run.RUN_ON)
        self.server_url = ""
        self.token = ""            # set by the GUI from its settings; never stored in ``params``
        self._server: Optional[tuple[str, str]] = None  # (url, token) of the run in progress, taken at apply
        self.refresh_models()

    # --- what the panel offers ------------------------------------------------------------------

    def follow_input(self) -> Optional[str]:
        """When another input volume is chosen, set the mode its geometry asks for (thick slices ->
        through-plane along the thick axis, else in-plane: ``core.geometry.default_mode_for``) and say
        so in the status; returns that line, or None when the input did not change."""
        node = self.params.inputVolume
        key = node.GetID() if node is not None else None
        if key == self._input_seen or self.busy:
            return None
        self._input_seen = key
        if node is None or node.GetImageData() is None:
            return None
        from MedSRExtension.core.geometry import default_mode_for
        mode, axis, why = default_mode_for(node.GetSpacing(), node.GetImageData().GetDimensions())
        self.params.mode = mode
        if mode == "throughplane":
            self.params.axis = axis
        along = f" along {axis}" if mode == "throughplane" else ""
        self.status = f"'{node.GetName()}': {why}, so the mode is {mode}{along}; change it if you need another."
        return self.status

    def refresh_models(self) -> None:
        """Fill the model list from the engine (empty until PyTorch is installed)."""
        self.model_choices = [c for c in choices.model_choices(self._records) if c.usable] \
            if self._torch_ready() else []
        self.ensure_model()

    @property
    def models_available(self) -> bool:
        return bool(self.model_choices)

    def model_items(self) -> list[tuple[str, str]]:
        """(label, name) per offered model; a single placeholder before PyTorch is installed."""
        if not self.model_choices:
            return [("(models appear once PyTorch is installed)", "")]
        return [(c.label, c.name) for c in self.model_choices]

    def ensure_model(self) -> None:
        """An empty or unavailable model becomes the default one, and the scale one it supports."""
        if not self.model_choices:
            return
        if choices.find(self.model_choices, self.params.model) is None:
            self.params.model = choices.default_model(self.model_choices, float(self.params.scale))
            if self.params.model == "bicubic":  # never a silent fallback
                self.status = (f"No shipped network serves x{float(self.params.scale):g}: bicubic interpolation is "
                               "selected; choose a model to change it.")
        self._follow_scale()

    def choose_model(self, name: str) -> None:
        if self.busy or choices.find(self.model_choices, name) is None:
            return
        self.params.model = name
        self._follow_scale()

    @property
    def current_choice(self) -> Optional[choices.ModelChoice]:
        return choices.find(self.model_choices, self.params.model)

    def _follow_scale(self) -> None:
        choice = self.current_choice
        if choice is not None:
            wanted = choices.pick_scale(choice, self.params.scale)
            if wanted != self.params.scale:
                self.params.scale = wanted

    def scale_items(self) -> tuple[list[str], bool]:
        """(scales to list, whether another factor may be typed) for the chosen model."""
        choice = self.current_choice
        if choice is None:
            return [f"{self.params.scale:g}"], False
        scales, editable = choices.scale_options(choice)
        return [f"{s:g}" for s in scales], editable

    def set_scale_text(self, text: str) -> Optional[str]:
        """Take a typed or chosen scale; returns the reason it was refused, or None."""
        try:
            value = choices.parse_scale(text)
        except ValueError as exc:
            return str(exc)
        choice = self.current_choice
        if choice is not None and choice.scales is not None and value not in choice.scales:
            return f"{choice.name} runs at x{', x'.join(f'{s:g}' for s in choice.scales)} only"
        self.params.scale = value
        return None

    @property
    def scale_text(self) -> str:
        return f"{self.params.scale:g}"

    @property
    def summary(self) -> str:
        choice = self.current_choice
        return choice.summary if choice is not None else ""

    @property
    def axis_visible(self) -> bool:
        return choices.axis_applies(self.params.mode)

    @property
    def adapt_visible(self) -> bool:
        """"Adapt to this volume" applies to through-plane runs only."""
        return self.params.mode == "throughplane"

    @staticmethod
    def run_on_items() -> list[tuple[str, str]]:
        """(label, value) of the "Run on" choices."""
        from .remote_run import RUN_ON, RUN_ON_LABELS
        return [(RUN_ON_LABELS[v], v) for v in RUN_ON]

    @property
    def remote(self) -> bool:
        return self.run_on == "server"

    @property
    def server_fields_visible(self) -> bool:
        """The server URL and token apply to server runs only."""
        return self.remote

    @property
    def run_on_enabled(self) -> bool:
        """Run on, URL and token are fixed while a run is in progress (its steps all go to one place)."""
        return not self.busy

    @property
    def compare_options_enabled(self) -> bool:
        return bool(self.params.compareEnabled)

    def device_line(self) -> str:
        """The device a run would use (cached per device choice: probing CUDA takes a moment)."""
        if self.remote:
            return "The MedSR server's device (its GPU when it has one)"
        if self._device_line is None or self._device_line[0] != self.params.device:
            self._device_line = (self.params.device, device_info.device_status(self.params.device))
        return self._device_line[1]

    # --- validation and the Apply button ------------------------------------------------------

    def validation_message(self) -> Optional[str]:
        """Why Super-resolve cannot run now, or None. Checked again when it is clicked."""
        p = self.params
        if not p.inputVolume:
            return "Select an input volume"
        if p.outputVolume and p.outputVolume is p.inputVolume:
            return "The output is the input volume: choose another output or 'Create new volume'"
        if self.model_choices and self.current_choice is None:
            return f"Model '{p.model}' is not available; choose another"
        if p.compareEnabled and p.baselineModel == p.model:
            return "The baseline is the chosen model: choose another baseline to compare against"
        problem = self._remote_problem()
        if problem is None and self.current_choice is not None:
            problem = self._options_problem()
        return problem

    def _options_problem(self) -> Optional[str]:
        """What ``InferenceOptions`` (the engine's own checks, written once) refuses in the options of
        the chosen run, or None; the custom weights' fit is checked when the run starts."""
        from MedSRExtension.inference.options import InferenceOptions
        try:
            InferenceOptions(**self.options_for(Step("result", self.params.model, None), check_weights=False))
        except MedSRError as exc:
            return str(exc)
        return None

    def _remote_problem(self) -> Optional[str]:
        from .remote_run import RUN_ON, server_problem
        if self.run_on not in RUN_ON:
            return f"Run on '{self.run_on}' is unknown; choose this computer or MedSR server"
        if not self.remote:
            return None
        if self.params.customWeights:
            return "Custom weights are not sent to a MedSR server: clear them or run on this computer"
        return server_problem(self.server_url, self.token)

    @property
    def busy(self) -> bool:
        return self.state in BUSY

    def button(self) -> Button:
        if self.state == State.RUNNING:
            return Button("Cancel", True, "Stop the run now; nothing is added to the scene")
        if self.state == State.QUEUED:
            return Button("Cancel", True, "Cancel the job on the MedSR server; nothing is added to the scene")
        if self.state == State.CANCELLING:
            return Button("Cancelling...", False, "Stopping the worker process")
        if self.state == State.INSTALLING:
            return Button("Installing...", False, "Installing the packages MedSR needs")
        problem = self.validation_message()
        return Button("Super-resolve", problem is None, problem or "Super-resolve the input volume")

    @property
    def progress_visible(self) -> bool:
        return self.state in (State.QUEUED, State.RUNNING, State.CANCELLING)

    @property
    def progress_percent(self) -> int:
        """Progress over the whole request (both runs when comparing)."""
        return int(round(100 * self.run.fraction)) if self.run is not None else 0

    @property
    def steps(self) -> list[Step]:
        """The steps of the request in progress (or the last one): their jobs and runners."""
        return self.run.steps if self.run is not None else []

    # --- dependencies ---------------------------------------------------------------------------

    def begin_install(self) -> None:
        self.state = State.INSTALLING
        self.status = "Installing PyTorch and the packages MedSR needs..."

    def end_install(self, installed: bool, message: str = "") -> None:
        """After the install step: declined or failed gives a calm one-line status, no dialog."""
        self.state = State.IDLE
        if not installed:
            self.status = message or "PyTorch is needed to run the models; nothing was installed or changed."
            return
        self.refresh_models()
        self._device_line = None
        self.status = "PyTorch is ready. Check the model and scale, then click Super-resolve."

    # --- running --------------------------------------------------------------------------------

    def apply(self) -> State:
        """The Apply button: start a run, or cancel the one in progress. Returns the new state."""
        if self.state in ACTIVE:
            return self.cancel()
        if self.busy:
            return self.state
        problem = self.validation_message()
        if problem is not None:
            self.status = problem
            return self.state
        p = self.params
        self.outcome = Outcome()
        self._server = (self.server_url, self.token) if self.remote else None
        self.log = []
        steps = [Step("result", p.model, p.outputVolume)]
        if p.compareEnabled:
            steps.append(Step("baseline", p.baselineModel, None))
        self.run = RunSequence(steps, self._start, self._log)
        try:
            self.run.begin()
        except Exception as exc:  # refused before any work: nothing was added
            self._fail(exc)
            return self.state
        self.state = State.QUEUED if self._server else State.RUNNING
        return self.state

    @staticmethod
    def _is_network(model: str) -> bool:
        from MedSRExtension.models.registry import get_spec
        return get_spec(model).kind == "network"

    def options_for(self, step: Step, check_weights: bool = True) -> dict:
        """The engine options of one run, from the parameters (``check_weights``: check that the custom
        weights fit the model, reading them, and take their preset)."""
        p = self.params
        options = dict(model=step.model, scale=float(p.scale), mode=p.mode,
                       axis=choices.effective_axis(p.mode, p.axis), device=p.device, tile=int(p.tileSize) or None)
        if step.role == "result" and p.adapt and p.mode == "throughplane":
            options["adapt"] = self.adapt_budget
        if step.role == "result" and p.confidence and p.mode == "throughplane":
            options["confidence"] = True
        if step.role == "result" and p.trainedOn != "bicubic" and self._is_network(step.model):
            options["trained_on"] = p.trainedOn
        if step.role == "result" and p.bestQuality and not options.get("adapt") and self._is_network(step.model):
            options["ensemble"] = BEST_QUALITY_ENSEMBLE
        if p.mode == "throughplane" and float(p.sliceThickness) > 0:  # the user's protocol wins over the header
            options["thickness_mm"] = float(p.sliceThickness)
        if step.role == "result" and p.customWeights:
            if check_weights:
                from MedSRExtension.zoo.custom_weights import check_custom_weights
                options["preset"] = check_custom_weights(p.customWeights, step.model, float(p.scale))
            options["weights"] = p.customWeights
        return options

    def _start(self, step: Step) -> None:
        from . import process
        options = self.options_for(step)
        name = self.params.inputVolume.GetName()
        self._log(f"Starting {step.model} x{options['scale']:g} ({options['mode']}) on '{name}'")
        if self._server is not None:
            url, token = self._server
            step.job, step.runner = process.start_superresolve_remote(
                self.params.inputVolume, url, token, outputNode=step.output_node, **options)
            self._log(f"{step.runner.where} sends it to the MedSR server at {step.runner.url}")
            self.status = f"Sending '{name}' to the MedSR server at {step.runner.url}..."
            step.server_seen = (step.runner.remote_state, None)
            return
        step.job, step.runner = process.start_superresolve(self.params.inputVolume, outputNode=step.output_node,
                                                           runner_factory=self._runner_factory or process.process_runner,
                                                           **options)
        self._log(f"{step.runner.where} started")
        self.status = f"Running {step.model} on {self.device_line()}..."

    def _follow_server(self, step: Step) -> None:
        """Queued until the server runs the step's job, then running (a remote step only)."""
        remote_state = getattr(step.runner, "remote_state", None)
        if remote_state is None or self.state not in ACTIVE:
            return
        url, job_id = step.runner.url, step.runner.job_id
        if step.server_seen == (remote_state, job_id):
            return
        step.server_seen = (remote_state, job_id)
        wanted = State.RUNNING if remote_state == "running" else State.QUEUED
        self.state = wanted
        if wanted == State.RUNNING:
            self.status = f"Running {step.model} on the MedSR server at {url}..."
        elif job_id is None:
            self.status = f"Sending '{self.params.inputVolume.GetName()}' to the MedSR server at {url}..."
        else:
            self.status = f"Queued on the MedSR server at {url} (job {job_id})..."
        self._log(self.status)

    def cancel(self) -> State:
        if self.state in ACTIVE:
            self.run.cancel()
            self.state = State.CANCELLING
            self.status = "Cancelling..."
        return self.state

    def poll(self) -> bool:
        """Move the run on (call from a timer on the main thread); True while it is still busy."""
        if self.state not in (*ACTIVE, State.CANCELLING):
            return self.busy
        if self.run.poll():
            current = self.run.current
            if current is not None:
                self._follow_server(current)
                self._show_progress(current)
            return True
        if self.run.error is not None:
            self._end_with_error(self.run.error)
        else:
            self._finish_all()
        return False

    def _show_progress(self, step: Step) -> None:
        if self.state == State.RUNNING:
            done, total = step.runner.progress
            if total:
                adapting = step.role == "result" and self.params.adapt and self.params.mode == "throughplane"
                self.status = run_progress.describe(step.model, done, total, bool(adapting))

    def _finish_all(self) -> None:
        """Every run succeeded: create the nodes, compare, show. The result node is kept even if the
        comparison fails (it is a finished result); the failure is reported."""
        nodes_made, first = self.run.nodes, self.run.steps[0]
        self.outcome = Outcome(output_node=nodes_made["result"], baseline_node=nodes_made.get("baseline"),
                               confidence_node=first.job.confidence_node)
        out = self.outcome.output_node
        self.state = State.DONE
        self.status = f"Created '{out.GetName()}'."
        self.outcome.adapt = self._adapt_of(first)
        adapted = self._adapt_line(self.outcome.adapt)
        if adapted:
            self.status = f"Created '{out.GetName()}', adapted to the volume: {adapted}."
        gate = self._meta_of(first, "gate")
        if gate:
            self.status += f" Do-no-harm {gate}."
        self._log(self.status)
        p = self.params
        plan = None
        if self.outcome.baseline_node is not None:
            try:
                self.outcome.comparison = self._compare()
                plan = self.outcome.comparison.get("plan")
                self.status = f"Created '{out.GetName()}' and its comparison table. {self.outcome.comparison['against']}"
            except Exception as exc:
                self.outcome.error = exc
                self.outcome.detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                self.status = f"The comparison failed ({exc}); '{out.GetName()}' was kept."
            self._log(self.status)
        if p.showSideBySide and self._show is not None:
            if plan is not None:
                self._show(self.outcome.baseline_node, out, plan=plan)
            else:
                self._show(p.inputVolume, out, p.referenceVolume, mode=p.mode, axis=p.axis)
            if self.outcome.confidence_node is not None:
                from .confidence import overlay
                overlay(self.scene, out, self.outcome.confidence_node)

    @staticmethod
    def _adapt_of(step: Step) -> Optional[dict]:
        result = step.runner.result if step.runner is not None else None
        adapt = result.meta.get("adapt") if result is not None else None
        return adapt if isinstance(adapt, dict) else None

    @staticmethod
    def _meta_of(step: Step, key: str):
        result = step.runner.result if step.runner is not None else None
        return result.meta.get(key) if result is not None else None

    @staticmethod
    def _adapt_line(adapt: Optional[dict]) -> str:
        """What an adapted run used (its slice profile, where the thickness came from, steps), or ""."""
        if not adapt or not adapt.get("profile"):
            return ""
        steps = adapt.get("steps")
        return str(adapt["profile"]) + (f"; {steps} tuning steps" if steps is not None else "")

    def _compare(self) -> dict:
        from . import comparison
        p = self.params
        return comparison.compare_nodes(self.outcome.output_node, self.outcome.baseline_node,
                                        referenceNode=p.referenceVolume,
                                        referenceSegmentationNode=p.referenceSegmentation,
                                        method=p.segmentationMethod, scene=self.scene, mode=p.mode, axis=p.axis)

    def _end_with_error(self, error: BaseException) -> None:
        if isinstance(error, Cancelled):
            self.state = State.IDLE
            self.status = "Cancelled: nothing was added to the scene."
            self._log(self.status)
            self.outcome = Outcome(error=error)
            return
        self._fail(error)

    def _fail(self, error: BaseException) -> None:
        self.state = State.FAILED
        detail = "" if isinstance(error, MedSRError) else \
            "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.outcome = Outcome(error=error, detail=detail)
        self.status = f"Failed: {error}" if isinstance(error, MedSRError) else \
            f"Failed ({type(error).__name__}: {error}); the scene is unchanged."
        self._log(self.status)

    def _log(self, line: str) -> None:
        self.log.append(line)

    def shutdown(self) -> None:
        """Module reload, widget cleanup or scene close: stop any worker now and keep nothing."""
        if self.run is not None:
            self.run.shutdown()
        if self.busy:
            self.state = State.IDLE
            self.status = "The run was stopped; nothing was added to the scene."
        self.run = None
