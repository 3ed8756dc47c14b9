"""MedSR Super-Resolution: the Slicer module (panel, logic and self-test).

This is the only file that touches Qt, CTK or slicer.app. Everything else (node conversion,
background runs, layout decisions, self-test checks) lives in MedSRLib, which runs and is tested
without the application; the engine (MedSRExtension) does the super-resolution.
"""
import logging
import os
import sys
import traceback
from typing import Annotated, Optional, Union

import qt
import vtk

import slicer
from slicer import vtkMRMLLabelMapVolumeNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin


def _addEngineToPath() -> None:
    """Make ``import MedSRExtension`` work: a built extension installs the engine beside this file;
    a source checkout (module path added in the settings) has it one folder up."""
    here = os.path.dirname(os.path.abspath(__file__))
    for folder in (here, os.path.dirname(here)):
        if os.path.isdir(os.path.join(folder, "MedSRExtension")) and folder not in sys.path:
            sys.path.append(folder)


_addEngineToPath()

from MedSRLib import choices as medsrChoices  # noqa: E402  (torch-free)
from MedSRLib import device_info  # noqa: E402  (torch-free)

README_URL = "https://github.com/medsr-project/MedSR#use-in-3d-slicer"
TORCH_REQUIREMENT = ">=2.3"
SEGMENTATION_METHODS = ["otsu3", "otsu2", "otsu4", "otsu5"]
POLL_INTERVAL_MS = 100


#
# MedSR
#


class MedSR(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("MedSR Super-Resolution")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Filtering")]
        self.parent.dependencies = []
        self.parent.contributors = ["MedSR contributors"]
        self.parent.helpText = _(
            "Deep-learning super-resolution of medical images: pick a volume, a model and a scale, "
            "click <b>Super-resolve</b>, and get a new volume with exact geometry, shown side by side with "
            "the input. The Compare section segments the result, a classical baseline and an optional "
            "reference, and tabulates PSNR, SSIM, Dice and HD95. "
            f'See the <a href="{README_URL}">documentation</a>.'
        )
        self.parent.acknowledgementText = _(
            "MedSR implements, from their descriptions, three published architectures:<br>"
            "LGSR: Huang et al., Deep local-to-global feature learning for medical image super-resolution, "
            "Computerized Medical Imaging and Graphics 2024, 115:102374.<br>"
            "ICONet: Kui, Ji et al., Iterative Collaboration Network Guided by Reconstruction Prior for "
            "Medical Image Super-Resolution, IEEE Transactions on Computational Imaging 2025, 11:827-838.<br>"
            "PFMDN: Ren et al., Realistic medical image super-resolution with pyramidal feature "
            "multi-distillation networks for intelligent healthcare systems, Neural Computing and "
            "Applications 2021, doi:10.1007/s00521-021-06287-x.<br>"
            "No code of these papers is public; the networks and their trained weights are MedSR's own."
        )


#
# MedSRParameterNode
#


@parameterNodeWrapper
class MedSRParameterNode:
    """What the panel edits; saved with the scene.

    inputVolume - the scalar volume to super-resolve (never modified).
    outputVolume - where to write the result; none = create a new volume each run.
    model, scale - the model name (empty: the first usable network, else bicubic) and the factor
        (kept in step with the model's supported scales).
    mode, axis - inplane / throughplane / volumetric, and the slicing axis where the mode uses one.
    device, tileSize - where to run, and the tile edge in pixels (0 = automatic).
    showSideBySide - show input | result (| reference) in linked views afterwards.
    compareEnabled, baselineModel, referenceVolume, referenceSegmentation, segmentationMethod -
        the Compare section: segment the result and a classical baseline (and the reference).
    """

    inputVolume: vtkMRMLScalarVolumeNode
    outputVolume: vtkMRMLScalarVolumeNode
    model: str = ""
    scale: Annotated[float, WithinRange(1.0, 16.0)] = 2.0
    mode: Annotated[str, Choice(list(medsrChoices.MODES))] = "inplane"
    axis: Annotated[str, Choice(list(medsrChoices.AXES))] = "auto"
    device: Annotated[str, Choice(list(medsrChoices.DEVICES))] = "auto"
    tileSize: Annotated[int, WithinRange(0, 8192)] = 0
    showSideBySide: bool = True
    compareEnabled: bool = False
    baselineModel: Annotated[str, Choice(list(medsrChoices.BASELINES))] = "bicubic"
    referenceVolume: vtkMRMLScalarVolumeNode
    referenceSegmentation: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode]
    segmentationMethod: Annotated[str, Choice(SEGMENTATION_METHODS)] = "otsu3"


#
# Background runs: poll a MedSRLib BackgroundRunner from the Qt event loop
#


class BackgroundRunPoller:
    """Polls a running job with a QTimer so Slicer stays responsive; calls ``onProgress(fraction,
    done, total)`` while it runs and ``onFinished(outputNode, error)`` on the main thread at the end.
    The output node is created only there, after success. Running pollers keep themselves alive."""

    _active = set()

    def __init__(self, job, runner, onFinished, onProgress=None):
        self.job, self.runner = job, runner
        self.onFinished, self.onProgress = onFinished, onProgress
        self.discard = False  # set when the scene is closing: finish without writing the node
        self.timer = qt.QTimer()
        self.timer.setInterval(POLL_INTERVAL_MS)
        self.timer.connect("timeout()", self._poll)
        BackgroundRunPoller._active.add(self)
        self.timer.start()

    def cancel(self) -> None:
        self.runner.cancel()

    def _poll(self) -> None:
        if self.onProgress is not None:
            done, total = self.runner.progress
            self.onProgress(self.runner.fraction, done, total)
        if not self.runner.done:
            return
        self.timer.stop()
        BackgroundRunPoller._active.discard(self)
        from MedSRLib import process
        from MedSRExtension.core.errors import Cancelled
        outputNode, error = None, None
        if self.discard:
            error = Cancelled("the scene was closed during the run; the result was discarded")
        else:
            try:
                outputNode = process.finish_superresolve(self.job, self.runner)
            except Exception as exc:  # reported by onFinished, with the scene unchanged
                error = exc
        self.onFinished(outputNode, error)


#
# MedSRWidget
#


class MedSRWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._modelChoices = []
        self._poller = None
        self._updatingGui = False
        self._deviceStatusFor = None
        self._scaleComboFor = None
        self._srNode = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MedSR.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = MedSRLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.scaleComboBox.connect("currentTextChanged(QString)", self.onScaleChanged)
        self.ui.progressBar.setVisible(False)

        self.refreshModelChoices()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._poller is not None:
            self._poller.discard = True
            self._poller.cancel()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGui)

    def onSceneStartClose(self, caller, event) -> None:
        if self._poller is not None:  # a run's result must not land in the next scene
            self._poller.discard = True
            self._poller.cancel()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    # --- parameter node -----------------------------------------------------------------

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            first = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if first and not first.IsA("vtkMRMLLabelMapVolumeNode"):
                self._parameterNode.inputVolume = first

    def setParameterNode(self, inputParameterNode: Optional[MedSRParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGui)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGui)
            self.ensureModelChosen()
            self.updateGui()

    # --- controls that follow the model and the mode -------------------------------------

    def refreshModelChoices(self) -> None:
        """Fill the model list from the engine; before PyTorch is installed, say how to get it."""
        self._updatingGui = True
        try:
            self.ui.modelComboBox.clear()
            if not device_info.torch_installed():
                self._modelChoices = []
                self.ui.modelComboBox.addItem(_("(models appear once PyTorch is installed)"))
                self.ui.modelComboBox.enabled = False
                return
            self._scaleComboFor = None
            self._modelChoices = [c for c in medsrChoices.model_choices() if c.usable]
            for choice in self._modelChoices:
                self.ui.modelComboBox.addItem(choice.label, choice.name)
            self.ui.modelComboBox.enabled = True
        finally:
            self._updatingGui = False
        self.ensureModelChosen()
        self.updateGui()

    def ensureModelChosen(self) -> None:
        """An empty or unavailable model becomes the default one (first usable network, else bicubic)."""
        if self._parameterNode and self._modelChoices and \
                medsrChoices.find(self._modelChoices, self._parameterNode.model) is None:
            self._parameterNode.model = medsrChoices.default_model(self._modelChoices)

    def currentModelChoice(self):
        return medsrChoices.find(self._modelChoices, self._parameterNode.model) if self._parameterNode else None

    def onModelChanged(self, index: int) -> None:
        if self._updatingGui or not self._parameterNode or not self._modelChoices or index < 0:
            return
        self._parameterNode.model = self.ui.modelComboBox.itemData(index)

    def onScaleChanged(self, text: str) -> None:
        if self._updatingGui or not self._parameterNode:
            return
        try:
            self._parameterNode.scale = medsrChoices.parse_scale(text)
            self.ui.scaleComboBox.toolTip = _("Upsampling factor along each scaled axis")
        except ValueError as exc:
            self.ui.scaleComboBox.toolTip = str(exc)

    def updateGui(self, caller=None, event=None) -> None:
        """Bring the hand-managed controls (model, scale, axis, device line, button) in line with
        the parameter node; the bound ones are handled by connectGui."""
        if self._updatingGui or not self._parameterNode:
            return
        self._updatingGui = True
        try:
            p = self._parameterNode
            choice = self.currentModelChoice()
            if choice is not None:
                self.ui.modelComboBox.setCurrentIndex(self._modelChoices.index(choice))
                if self._scaleComboFor != choice.name:  # rebuild only when the model changes (not while typing)
                    self._scaleComboFor = choice.name
                    scales, editable = medsrChoices.scale_options(choice)
                    self.ui.scaleComboBox.clear()
                    for s in scales:
                        self.ui.scaleComboBox.addItem(f"{s:g}")
                    self.ui.scaleComboBox.editable = editable
                wanted = medsrChoices.pick_scale(choice, p.scale)
                try:
                    shown = medsrChoices.parse_scale(self.ui.scaleComboBox.currentText)
                except ValueError:
                    shown = None
                if shown != wanted:
                    self.ui.scaleComboBox.setCurrentText(f"{wanted:g}")
                if wanted != p.scale:
                    p.scale = wanted
                self.ui.modelInfoLabel.text = choice.summary
            usesAxis = medsrChoices.axis_applies(p.mode)
            self.ui.axisLabel.setVisible(usesAxis)
            self.ui.axisComboBox.setVisible(usesAxis)
            if self._deviceStatusFor != p.device:
                self._deviceStatusFor = p.device
                self.ui.deviceStatusLabel.text = device_info.device_status(p.device)
            self.ui.compareOptionsWidget.enabled = p.compareEnabled
            if self._poller is None:
                ready = bool(p.inputVolume)
                self.ui.applyButton.enabled = ready
                self.ui.applyButton.toolTip = _("Super-resolve the input volume") if ready else _(
                    "Select an input volume")
        finally:
            self._updatingGui = False

    # --- running --------------------------------------------------------------------------

    def onApplyButton(self) -> None:
        """Super-resolve, or cancel the run in progress."""
        if self._poller is not None:
            self._poller.cancel()
            self.ui.applyButton.text = _("Cancelling...")
            self.ui.applyButton.enabled = False
            self.ui.statusLabel.text = _("Cancelling after the current batch...")
            return
        with slicer.util.tryWithErrorDisplay(_("Super-resolution could not start."), waitCursor=True):
            if not self.logic.ensureDependencies(self.resourcePath("requirements.txt")):
                self.ui.statusLabel.text = _("PyTorch is needed to run the models; nothing was changed.")
                return
            if not self._modelChoices:  # PyTorch was just installed: let the user choose a model first
                self.refreshModelChoices()
                self._deviceStatusFor = None
                self.updateGui()
                self.ui.statusLabel.text = _("PyTorch is installed. Check the model and scale, then click Super-resolve.")
                return
            self.startRun(self._parameterNode.model, outputVolume=self._parameterNode.outputVolume,
                          onFinished=self.onSuperResolved)

    def startRun(self, model: str, outputVolume, onFinished) -> None:
        p = self._parameterNode
        job, runner = self.logic.start(
            p.inputVolume, outputVolume, model=model, scale=p.scale, mode=p.mode,
            axis=medsrChoices.effective_axis(p.mode, p.axis), device=p.device, tile=p.tileSize or None)
        self._poller = BackgroundRunPoller(job, runner, onFinished, self.onProgress)
        self.ui.applyButton.text = _("Cancel")
        self.ui.applyButton.toolTip = _("Stop after the current batch; nothing is added to the scene")
        self.ui.progressBar.value = 0
        self.ui.progressBar.setVisible(True)
        self.ui.statusLabel.text = _("Running {model} on {device}...").format(
            model=model, device=self.ui.deviceStatusLabel.text)

    def onProgress(self, fraction: float, done: int, total: int) -> None:
        self.ui.progressBar.value = int(round(100 * fraction))
        if total and not self._poller.runner.cancel_requested:
            self.ui.statusLabel.text = _("Batch {done} of {total}").format(done=done, total=total)

    def endRun(self) -> None:
        self._poller = None
        self.ui.applyButton.text = _("Super-resolve")
        self.ui.progressBar.setVisible(False)
        self.updateGui()

    def reportError(self, error: BaseException) -> None:
        from MedSRExtension.core.errors import Cancelled, MedSRError
        if isinstance(error, Cancelled):
            self.ui.statusLabel.text = _("Cancelled: nothing was added to the scene.")
            return
        self.ui.statusLabel.text = _("Failed: the scene is unchanged.")
        if isinstance(error, MedSRError):
            slicer.util.errorDisplay(str(error), windowTitle=_("MedSR"))
        else:
            detail = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            slicer.util.errorDisplay(_("Super-resolution failed: {error}").format(error=error),
                                     windowTitle=_("MedSR"), detailedText=detail)

    def onSuperResolved(self, outputNode, error) -> None:
        p = self._parameterNode
        if error is not None or p is None:
            self.endRun()
            if error is not None:
                self.reportError(error)
            return
        self.ui.statusLabel.text = _("Created '{name}'.").format(name=outputNode.GetName())
        if p.compareEnabled:
            self._srNode = outputNode
            try:
                self.startRun(p.baselineModel, outputVolume=None, onFinished=self.onBaselineDone)
            except Exception as exc:
                self.endRun()
                self.reportError(exc)
                return
            self.ui.statusLabel.text = _("Running the {baseline} baseline for comparison...").format(
                baseline=p.baselineModel)
            return
        self.endRun()
        if p.showSideBySide:
            self.logic.showSideBySide(p.inputVolume, outputNode, p.referenceVolume, mode=p.mode, axis=p.axis)

    def onBaselineDone(self, baselineNode, error) -> None:
        self.endRun()
        p = self._parameterNode
        if error is not None or p is None:
            if error is not None:
                self.reportError(error)
            return
        results = None
        slicer.app.setOverrideCursor(qt.Qt.WaitCursor)
        try:
            results = self.logic.compare(self._srNode, baselineNode, p.referenceVolume, p.referenceSegmentation,
                                         p.segmentationMethod, mode=p.mode, axis=p.axis)
            self.ui.statusLabel.text = _("Created '{name}' and its comparison table.").format(
                name=self._srNode.GetName())
        except Exception as exc:
            self.ui.statusLabel.text = _("The comparison failed; '{name}' was kept.").format(name=self._srNode.GetName())
            slicer.util.errorDisplay(_("The comparison failed: {error}").format(error=exc), windowTitle=_("MedSR"),
                                     detailedText="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        finally:
            slicer.app.restoreOverrideCursor()
        if not p.showSideBySide:
            return
        if results is not None and results.get("plan") is not None:
            # baseline | SR (| reference), each view with its own segmentation, the table and chart below
            self.logic.showSideBySide(baselineNode, self._srNode, plan=results["plan"])
        else:
            self.logic.showSideBySide(p.inputVolume, self._srNode, p.referenceVolume, mode=p.mode, axis=p.axis)

#
# MedSRLogic
#


class MedSRLogic(ScriptedLoadableModuleLogic):
    """Super-resolution on volume nodes, usable from the Python console and scripts::

        logic = slicer.util.getModuleLogic("MedSR")
        out = logic.process(slicer.util.getNode("MRHead"), model="bicubic", scale=2)
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return MedSRParameterNode(super().getParameterNode())

    # --- dependencies -------------------------------------------------------------------

    def ensureDependencies(self, requirementsPath: Optional[str] = None, askConfirmation: bool = True) -> bool:
        """Install PyTorch and the packages of requirements.txt if missing, after the user confirms
        (``askConfirmation=False`` installs without asking, for tests and scripts).

        PyTorch comes through the PyTorch extension when present (it picks the CUDA build that fits
        the driver), else from PyPI. Returns False when the user declines."""
        if requirementsPath is None:
            requirementsPath = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Resources", "requirements.txt")
        if not device_info.torch_installed():
            if not self._installTorch(askConfirmation):
                return False
        if os.path.exists(requirementsPath):
            self._installRequirements(requirementsPath, askConfirmation)
        return True

    def _installTorch(self, askConfirmation: bool) -> bool:
        try:
            import PyTorchUtils
        except ImportError:
            PyTorchUtils = None
        if PyTorchUtils is not None:
            torchLogic = PyTorchUtils.PyTorchUtilsLogic()
            if torchLogic.torchInstalled():
                return True
            torch = torchLogic.installTorch(askConfirmation=askConfirmation, torchVersionRequirement=TORCH_REQUIREMENT)
            return torch is not None
        if askConfirmation and not slicer.util.confirmOkCancelDisplay(
                _("MedSR needs PyTorch, which is not installed. Download and install it now from PyPI "
                  "(about 1-3 GB; several minutes)?\n\nFor the GPU build that fits your NVIDIA driver, "
                  "install the PyTorch extension instead and click Super-resolve again."),
                windowTitle=_("MedSR: install PyTorch")):
            return False
        self._pipInstall([f"torch{TORCH_REQUIREMENT}"])
        return device_info.torch_installed()

    def _installRequirements(self, requirementsPath: str, askConfirmation: bool) -> None:
        try:
            import slicer.packaging as packaging
        except ImportError:
            packaging = None
        if packaging is not None and hasattr(packaging, "pip_ensure"):
            packaging.pip_ensure(packaging.load_requirements(requirementsPath), prompt_install=askConfirmation,
                                 skip_in_testing=askConfirmation, requester="MedSR")
            return
        import importlib.metadata
        import re
        missing = []
        with open(requirementsPath, encoding="utf-8") as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                name = re.match(r"[A-Za-z0-9_.\-]+", line)
                if not name:
                    continue
                try:
                    importlib.metadata.version(name.group(0))
                except importlib.metadata.PackageNotFoundError:
                    missing.append(line)
        if missing and (not askConfirmation or slicer.util.confirmOkCancelDisplay(
                _("MedSR needs these Python packages: {packages}. Install them now?").format(
                    packages=", ".join(missing)), windowTitle=_("MedSR: install packages"))):
            self._pipInstall(missing)

    @staticmethod
    def _pipInstall(requirements: list) -> None:
        try:
            import slicer.packaging as packaging
        except ImportError:
            packaging = None
        if packaging is not None and hasattr(packaging, "pip_ensure"):
            packaging.pip_ensure(requirements, prompt_install=False, requester="MedSR")
        else:
            slicer.util.pip_install(requirements)

    # --- processing -----------------------------------------------------------------------

    def process(self, inputVolume, outputVolume=None, model: str = "bicubic", scale: float = 2.0,
                mode: str = "inplane", axis: str = "auto", device: str = "auto", tile: Optional[int] = None,
                waitForCompletion: bool = True, progress=None, cancel=None, onFinished=None, showResult: bool = False,
                **engineOptions):
        """Super-resolve ``inputVolume``; returns the output node (a new one unless ``outputVolume``).

        With ``waitForCompletion=False`` the run goes to a worker thread and this returns a poller
        at once: ``poller.cancel()`` stops it, and ``onFinished(outputNode, error)`` is called on the
        main thread at the end (the node is created only then, so a cancel adds nothing)."""
        from MedSRLib import process
        options = dict(model=model, scale=scale, mode=mode, axis=axis, device=device, tile=tile, **engineOptions)
        if waitForCompletion:
            outputNode = process.superresolve_node(inputVolume, outputNode=outputVolume, progress=progress,
                                                   cancel=cancel, **options)
            if showResult:
                self.showSideBySide(inputVolume, outputNode, mode=mode, axis=axis)
            return outputNode
        job, runner = self.start(inputVolume, outputVolume, **options)

        def finished(outputNode, error):
            if outputNode is not None and showResult:
                self.showSideBySide(inputVolume, outputNode, mode=mode, axis=axis)
            if onFinished is not None:
                onFinished(outputNode, error)
            elif error is not None:
                logging.error(f"MedSR: {error}")

        return BackgroundRunPoller(job, runner, finished)

    def start(self, inputVolume, outputVolume=None, **options):
        """Start a background run (reads the input now, on the main thread); returns (job, runner)."""
        from MedSRLib import process
        return process.start_superresolve(inputVolume, outputNode=outputVolume, **options)

    def compare(self, srNode, baselineNode, referenceVolume=None, referenceSegmentation=None, method: str = "otsu3",
                mode: str = "inplane", axis: str = "auto"):
        """Segment the result and the baseline (and the reference) and tabulate the metrics; returns
        MedSRLib.comparison's result (segmentation, table and chart nodes, and a layout plan)."""
        try:
            from MedSRLib import comparison
        except ImportError:
            raise RuntimeError(_("The comparison is not available in this build of MedSR."))
        return comparison.compare_nodes(srNode, baselineNode, referenceNode=referenceVolume,
                                        referenceSegmentationNode=referenceSegmentation, method=method,
                                        scene=slicer.mrmlScene, mode=mode, axis=axis)

    def showSideBySide(self, inputVolume, outputVolume, referenceVolume=None, mode: str = "inplane",
                       axis: str = "auto", plan=None) -> None:
        """Switch to the input | result (| reference) layout with linked views at one position
        (or to a ready MedSRLib.layout plan, e.g. the comparison's)."""
        from MedSRLib import layout
        if plan is None:
            plan = layout.plan_side_by_side(inputVolume, outputVolume, referenceVolume, mode=mode, axis=axis)
        layoutManager = slicer.app.layoutManager()
        if layoutManager is None:  # no main window (e.g. tests run without one)
            return
        layout.register_layout(plan, layoutManager.layoutLogic().GetLayoutNode())
        layoutManager.setLayout(plan.layout_id)
        layout.apply_plan(plan, slicer.mrmlScene)
        slicer.util.resetSliceViews()  # fit each view's field of view to its volume...
        layout.center_views(plan, slicer.mrmlScene)  # ...then put all views back at one position


#
# MedSRTest
#


class MedSRTest(ScriptedLoadableModuleTest):
    """Runs the MedSRLib self-test checks, the same functions pytest runs on a slicer-core scene."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_selftest_checks()
        self.setUp()
        self.test_logic_process()
        self.delayDisplay("MedSR self-test passed")

    def _ensureDependencies(self):
        if not MedSRLogic().ensureDependencies(askConfirmation=False) or not device_info.torch_installed():
            raise RuntimeError("PyTorch could not be installed; install the PyTorch extension and torch, then rerun MedSRTest")

    def test_selftest_checks(self):
        """The MedSRLib checks pytest also runs: geometry, cancel, failure, transforms, refusals, layout."""
        self._ensureDependencies()
        from MedSRLib import selftest
        sample = self._sample()
        for check in selftest.ALL_CHECKS:
            slicer.mrmlScene.Clear()
            self.delayDisplay(f"MedSR: {check.__name__}")
            check(slicer.mrmlScene, sample=sample)

    def _sample(self):
        """A small real image: the MNI template region when nilearn is installed, else a crop of
        Slicer's MRHead sample."""
        from MedSRExtension.core.errors import MedSRError
        from MedSRExtension.core.volume import Volume
        from MedSRLib import nodes, selftest
        try:
            return selftest.sample_volume()
        except MedSRError:
            import SampleData
            head = SampleData.downloadSample("MRHead")
            full = nodes.volume_from_node(head)
            slicer.mrmlScene.RemoveNode(head)
            k, j, i = (n // 2 for n in full.array.shape)
            crop = full.array[k - 4:k + 4, j - 12:j + 12, i - 10:i + 10].astype("float32")
            return Volume(crop, (1.0, 1.0, 1.0))

    def test_logic_process(self):
        """The Logic's scripting entry point returns the named, upsampled output node."""
        self._ensureDependencies()
        from MedSRLib import selftest
        node = selftest.add_oblique_node(slicer.mrmlScene, self._sample())
        out = MedSRLogic().process(node, model="bicubic", scale=2, device="cpu")
        self.assertEqual(out.GetName(), f"{node.GetName()}_SR2x_bicubic")
        self.assertEqual(out.GetImageData().GetDimensions()[0], 2 * node.GetImageData().GetDimensions()[0])
