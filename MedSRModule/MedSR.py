"""MedSR Super-Resolution: the Slicer module (panel, logic and self-test).

This is the only file that touches Qt, CTK or slicer.app, and it stays thin: the widget binds the
.ui to MedSRLib.panel.SuperResolvePanel (the panel's behaviour, Qt-free, tested on a real MRML
scene), runs go to a worker process (MedSRExtension.worker.runner, followed by MedSRLib.run_sequence),
and everything else (node conversion, layout decisions, self-test checks) lives in MedSRLib; the engine
(MedSRExtension) does the super-resolution.
"""
import logging
import os
import shutil
import sys
from pathlib import Path
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
from MedSRLib import panel as panelModel  # noqa: E402  (torch-free)
from MedSRLib import sample_data as sampleData  # noqa: E402  (torch-free)

README_URL = "https://github.com/medsr-project/MedSR#use-in-3d-slicer"
POLL_INTERVAL_MS = 100
#: Slicer settings (qt.QSettings) of "Run on": per user, never saved with a scene; the token is kept there only.
SETTING_RUN_ON, SETTING_SERVER_URL, SETTING_SERVER_TOKEN = "MedSR/RunOn", "MedSR/ServerURL", "MedSR/ServerToken"
SAMPLE_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Resources", "SampleData")


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
            'See the <a href="{url}">documentation</a>.'
        ).format(url=README_URL)
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
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData() -> None:
    """Offer MedSR's sample volumes in the Sample Data module; they ship with MedSR (no download)."""
    import SampleData
    for sample in sampleData.SAMPLES:
        path = os.path.join(SAMPLE_DATA_DIR, sample.file_name)
        if not os.path.isfile(path):
            continue
        SampleData.SampleDataLogic.registerCustomSampleDataSource(
            category="MedSR", sampleName=sample.title, uris=[Path(path).as_uri()], fileNames=[sample.file_name],
            nodeNames=[sample.node_name], loadFileTypes=["VolumeFile"],
            customDownloader=lambda source, p=path: slicer.util.loadVolume(p))


#
# MedSRParameterNode
#


@parameterNodeWrapper
class MedSRParameterNode:
    """What the panel edits; saved with the scene. The same fields as MedSRLib.panel.PanelParameters.

    inputVolume - the scalar volume to super-resolve (never modified).
    outputVolume - where to write the result; none = create a new volume each run.
    model, scale - the model name (empty: the default network) and the factor (kept in step with the
        model's supported scales by the panel model).
    mode, axis - inplane / throughplane / volumetric, and the slicing axis where the mode uses one.
    adapt - through-plane: fine-tune the network on this volume first (self-supervised).
    confidence - through-plane: also make the confidence map, shown as an overlay on the result.
    sliceThickness - through-plane: the acquired slice thickness in mm (0 = the header's, else estimated).
    bestQuality - average the network over the 8 flips/transposes of the volume (8x the time; not with adapt).
    trainedOn - the in-plane weights family: bicubic (default) or scanner (k-space truncation, blur, noise).
    device, tileSize, customWeights - where to run, the tile edge in pixels (0 = automatic), and an
        optional .safetensors file for the chosen network.
    showSideBySide - show input | result (| reference) in linked views afterwards.
    compareEnabled, baselineModel, referenceVolume, referenceSegmentation, segmentationMethod -
        the Compare section: segment the result and a classical baseline (and the reference).
    """

    inputVolume: Optional[vtkMRMLScalarVolumeNode]
    outputVolume: Optional[vtkMRMLScalarVolumeNode]
    model: str = ""
    scale: Annotated[float, WithinRange(1.0, 16.0)] = 2.0
    mode: Annotated[str, Choice(list(medsrChoices.MODES))] = "inplane"
    axis: Annotated[str, Choice(list(medsrChoices.AXES))] = "auto"
    adapt: bool = False
    confidence: bool = False
    sliceThickness: Annotated[float, WithinRange(0.0, 50.0)] = 0.0
    bestQuality: bool = False
    trainedOn: Annotated[str, Choice(list(medsrChoices.FAMILIES))] = "bicubic"
    device: Annotated[str, Choice(list(medsrChoices.DEVICES))] = "auto"
    tileSize: Annotated[int, WithinRange(0, 8192)] = 0
    customWeights: str = ""
    showSideBySide: bool = True
    compareEnabled: bool = False
    baselineModel: Annotated[str, Choice(list(medsrChoices.BASELINES))] = "bicubic"
    referenceVolume: Optional[vtkMRMLScalarVolumeNode]
    referenceSegmentation: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode, None]
    segmentationMethod: Annotated[str, Choice(list(medsrChoices.SEGMENTATION_METHODS))] = "otsu3"


#
# MedSRWidget
#


class MedSRWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Binds the .ui to MedSRLib.panel.SuperResolvePanel, which holds all of the panel's behaviour."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.panel = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._updatingGui = False
        self._shownLogLines = 0
        self._scaleItemsFor = None
        self._timer = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MedSR.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = MedSRLogic()

        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self.onPoll)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.scaleComboBox.connect("currentTextChanged(QString)", self.onScaleChanged)
        self.ui.customWeightsPathLineEdit.connect("currentPathChanged(QString)", self.onCustomWeightsChanged)
        self.ui.loadSampleButton.connect("clicked(bool)", self.onLoadSample)
        for label, value in panelModel.SuperResolvePanel.run_on_items():
            self.ui.runOnComboBox.addItem(_(label), value)
        self.ui.runOnComboBox.connect("currentIndexChanged(int)", self.onRunOnChanged)
        self.ui.serverUrlLineEdit.connect("textChanged(QString)", self.onServerUrlChanged)
        self.ui.serverTokenLineEdit.connect("textChanged(QString)", self.onServerTokenChanged)
        self.ui.progressBar.setVisible(False)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Module reload or application exit: stop the worker; no callback reaches deleted widgets."""
        if self._timer is not None:
            self._timer.stop()
        if self.panel is not None:
            self.panel.shutdown()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGui)

    def onSceneStartClose(self, caller, event) -> None:
        if self.panel is not None:  # a run's result must not land in the next scene
            self.panel.shutdown()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    # --- parameter node -------------------------------------------------------------------------

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
            if self.panel is None:
                self.panel = panelModel.SuperResolvePanel(self._parameterNode, slicer.mrmlScene,
                                                          show=self.logic.showSideBySide)
                self.loadServerSettings()
            else:  # a new wrapper (each enter() makes one) or the new scene's node; a run goes on
                self.panel.params = self._parameterNode
                self.panel.ensure_model()
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGui)
            self.fillModelList()
            self.updateGui()

    # --- Run on: Slicer's settings <-> panel model ----------------------------------------------

    def loadServerSettings(self) -> None:
        """Run on, server URL and token from Slicer's settings into the panel model and the widgets."""
        values = [value for _, value in self.panel.run_on_items()]
        runOn = str(slicer.util.settingsValue(SETTING_RUN_ON, "local"))
        self.panel.run_on = runOn if runOn in values else "local"
        self.panel.server_url = str(slicer.util.settingsValue(SETTING_SERVER_URL, ""))
        self.panel.token = str(slicer.util.settingsValue(SETTING_SERVER_TOKEN, ""))
        self._updatingGui = True
        try:
            self.ui.runOnComboBox.setCurrentIndex(values.index(self.panel.run_on))
            self.ui.serverUrlLineEdit.text = self.panel.server_url
            self.ui.serverTokenLineEdit.text = self.panel.token
        finally:
            self._updatingGui = False

    def onRunOnChanged(self, index: int) -> None:
        if self._updatingGui or self.panel is None or index < 0:
            return
        self.panel.run_on = self.ui.runOnComboBox.itemData(index)
        qt.QSettings().setValue(SETTING_RUN_ON, self.panel.run_on)
        self.updateGui()

    def onServerUrlChanged(self, text: str) -> None:
        self._setServerField("server_url", SETTING_SERVER_URL, text)

    def onServerTokenChanged(self, text: str) -> None:
        """The token goes to the panel model and Slicer's settings only (never the scene or the log)."""
        self._setServerField("token", SETTING_SERVER_TOKEN, text)

    def _setServerField(self, name: str, setting: str, text: str) -> None:
        if self._updatingGui or self.panel is None:
            return
        setattr(self.panel, name, text.strip())
        qt.QSettings().setValue(setting, getattr(self.panel, name))
        self.updateGui()

    # --- binding: widgets <- panel model --------------------------------------------------------

    def fillModelList(self) -> None:
        self._updatingGui = True
        try:
            self.ui.modelComboBox.clear()
            for label, name in self.panel.model_items():
                self.ui.modelComboBox.addItem(label, name)
            self.ui.modelComboBox.enabled = self.panel.models_available
            self._scaleItemsFor = None
        finally:
            self._updatingGui = False

    def updateGui(self, caller=None, event=None) -> None:
        """Show the panel model's state in the hand-bound widgets (connectGui handles the others)."""
        if self._updatingGui or self.panel is None or not self._parameterNode:
            return
        self._updatingGui = True
        try:
            panel = self.panel
            panel.follow_input()  # a new input opens in the mode its geometry asks for
            names = [name for _, name in panel.model_items()]
            if panel.params.model in names:
                self.ui.modelComboBox.setCurrentIndex(names.index(panel.params.model))
            items, editable = panel.scale_items()
            if self._scaleItemsFor != (panel.params.model, tuple(items)):
                self._scaleItemsFor = (panel.params.model, tuple(items))
                self.ui.scaleComboBox.clear()
                for text in items:
                    self.ui.scaleComboBox.addItem(text)
                self.ui.scaleComboBox.editable = editable
            try:  # compare values, not text, so that typing "2." or "2.50" is not overwritten
                shown = medsrChoices.parse_scale(self.ui.scaleComboBox.currentText)
            except ValueError:
                shown = None
            if shown != panel.params.scale:
                self.ui.scaleComboBox.setCurrentText(panel.scale_text)
            self.ui.modelInfoLabel.text = panel.summary
            self.ui.axisLabel.setVisible(panel.axis_visible)
            self.ui.axisComboBox.setVisible(panel.axis_visible)
            self.ui.adaptCheckBox.setVisible(panel.adapt_visible)
            self.ui.confidenceCheckBox.setVisible(panel.adapt_visible)
            self.ui.sliceThicknessLabel.setVisible(panel.adapt_visible)
            self.ui.sliceThicknessSpinBox.setVisible(panel.adapt_visible)
            self.ui.compareOptionsWidget.enabled = panel.compare_options_enabled
            self.ui.deviceStatusLabel.text = panel.device_line()
            for widget in (self.ui.runOnComboBox, self.ui.serverUrlLineEdit, self.ui.serverTokenLineEdit):
                widget.enabled = panel.run_on_enabled
            for widget in (self.ui.serverUrlLabel, self.ui.serverUrlLineEdit, self.ui.serverTokenLabel,
                           self.ui.serverTokenLineEdit):
                widget.setVisible(panel.server_fields_visible)
            if self.ui.customWeightsPathLineEdit.currentPath != panel.params.customWeights:
                self.ui.customWeightsPathLineEdit.currentPath = panel.params.customWeights
            button = panel.button()
            self.ui.applyButton.text = _(button.text)
            self.ui.applyButton.enabled = button.enabled
            self.ui.applyButton.toolTip = _(button.tooltip)
            self.ui.progressBar.setVisible(panel.progress_visible)
            self.ui.progressBar.value = panel.progress_percent
            self.ui.statusLabel.text = panel.status
            for line in panel.log[self._shownLogLines:]:
                self.ui.logTextEdit.appendPlainText(line)
            self._shownLogLines = len(panel.log)
        finally:
            self._updatingGui = False

    # --- binding: widgets -> panel model --------------------------------------------------------

    def onModelChanged(self, index: int) -> None:
        if not self._updatingGui and self.panel is not None and index >= 0:
            self.panel.choose_model(self.ui.modelComboBox.itemData(index))
            self.updateGui()

    def onScaleChanged(self, text: str) -> None:
        if self._updatingGui or self.panel is None:
            return
        problem = self.panel.set_scale_text(text)
        self.ui.scaleComboBox.toolTip = problem or _("Upsampling factor along each scaled axis")

    def onCustomWeightsChanged(self, path: str) -> None:
        if not self._updatingGui and self._parameterNode:
            self._parameterNode.customWeights = path

    def onLoadSample(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("The sample data could not be loaded."), waitCursor=True):
            nodes = self.logic.loadSampleData()
            if nodes and self._parameterNode:
                self._parameterNode.inputVolume = nodes[-1]

    # --- running --------------------------------------------------------------------------------

    def onApplyButton(self) -> None:
        """Super-resolve, or cancel the run in progress (the panel model decides)."""
        if self.panel.busy:
            self.panel.apply()
            self.updateGui()
            return
        if not device_info.torch_installed() or device_info.torch_too_old():
            self.installDependencies()
            return
        self.panel.apply()
        self._shownLogLines = 0
        self.ui.logTextEdit.clear()
        if self.panel.busy:
            self._timer.start()
        self.updateGui()
        self.reportFailure()

    def installDependencies(self) -> None:
        """Install (or upgrade) PyTorch after the user confirms; declining is a status line, not an error."""
        self.panel.begin_install()
        self.updateGui()
        installed, message = False, ""
        with slicer.util.tryWithErrorDisplay(_("PyTorch could not be installed."), waitCursor=True):
            installed = self.logic.ensureDependencies(self.resourcePath("requirements.txt"))
            if not installed:
                message = _("PyTorch is needed to run the models; nothing was installed or changed.")
        self.panel.end_install(installed, message)
        self.fillModelList()
        self.updateGui()

    def onPoll(self) -> None:
        if self.panel is None or not self.panel.poll():
            self._timer.stop()
            self.reportFailure()
        self.updateGui()

    def reportFailure(self) -> None:
        """An unexpected error (not bad input) gets a dialog with its traceback; the rest stays in the status."""
        outcome = self.panel.outcome if self.panel is not None else None
        if outcome is not None and outcome.detail and not outcome.reported:
            outcome.reported = True
            slicer.util.errorDisplay(self.panel.status, windowTitle=_("MedSR"), detailedText=outcome.detail)


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

    # --- dependencies -----------------------------------------------------------------------------

    def ensureDependencies(self, requirementsPath: Optional[str] = None, askConfirmation: bool = True) -> bool:
        """Install PyTorch (or upgrade one older than the minimum) and the packages of requirements.txt,
        after the user confirms (``askConfirmation=False`` installs without asking, for tests and
        scripts). Returns False when the user declines."""
        if requirementsPath is None:
            requirementsPath = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Resources", "requirements.txt")
        if not device_info.torch_installed() or device_info.torch_too_old():
            if not self._installTorch(askConfirmation):
                return False
        if os.path.exists(requirementsPath):
            import slicer.packaging as packaging
            try:
                packaging.pip_ensure(packaging.load_requirements(requirementsPath), prompt_install=askConfirmation,
                                     skip_in_testing=False, requester="MedSR")
            except RuntimeError:  # the user declined
                return False
        return device_info.torch_installed() and not device_info.torch_too_old()

    def _installTorch(self, askConfirmation: bool) -> bool:
        """PyTorch through light-the-torch (which picks the CUDA build that fits the NVIDIA driver, or the
        CPU build), without torchvision, which MedSR does not use."""
        old = device_info.torch_version()
        question = (_("MedSR needs PyTorch {minimum} or newer; PyTorch {old} is installed. Upgrade it now "
                      "(about 1-3 GB; several minutes)? Restart Slicer afterwards.").format(
                        minimum=device_info.MINIMUM_TORCH, old=old) if old else
                    _("MedSR needs PyTorch, which is not installed. Download and install it now (about 1-3 GB; "
                      "several minutes)? The build that fits your GPU driver is chosen automatically."))
        if askConfirmation and not slicer.util.confirmOkCancelDisplay(question, windowTitle=_("MedSR: PyTorch")):
            return False
        requirement = f"torch>={device_info.MINIMUM_TORCH}"
        try:
            slicer.util.pip_install("light-the-torch>=0.5")
            python = shutil.which("PythonSlicer") or sys.executable
            proc = slicer.util.launchConsoleProcess([python, "-m", "light_the_torch", "install", requirement])
            slicer.util.logProcessOutput(proc)
        except Exception as exc:  # light-the-torch unavailable (e.g. offline mirror): plain pip
            logging.warning(f"MedSR: light-the-torch failed ({exc}); installing {requirement} with pip")
            slicer.util.pip_install(requirement)
        return device_info.torch_installed()

    # --- sample data --------------------------------------------------------------------------------

    def loadSampleData(self) -> list:
        """Load the sample volumes that ship with MedSR (no download); returns the new nodes."""
        return [slicer.util.loadVolume(path) for path in sampleData.sample_files(SAMPLE_DATA_DIR)]

    # --- processing -------------------------------------------------------------------------------

    def process(self, inputVolume, outputVolume=None, model: str = "bicubic", scale: float = 2.0,
                mode: str = "inplane", axis: str = "auto", device: str = "auto", tile: Optional[int] = None,
                waitForCompletion: bool = True, progress=None, cancel=None, onFinished=None, showResult: bool = False,
                **engineOptions):
        """Super-resolve ``inputVolume``; returns the output node (a new one unless ``outputVolume``).

        With ``waitForCompletion=False`` the run goes to a worker process and this returns its runner
        at once: ``runner.cancel()`` stops it, and ``onFinished(outputNode, error)`` is called on the
        main thread at the end (the node is created only then, so a cancel adds nothing). The run is
        followed by MedSRLib.run_sequence, as the panel's runs are; this only supplies the QTimer."""
        from MedSRLib import process, run_sequence
        options = dict(model=model, scale=scale, mode=mode, axis=axis, device=device, tile=tile, **engineOptions)
        if waitForCompletion:
            outputNode = process.superresolve_node(inputVolume, outputNode=outputVolume, progress=progress,
                                                   cancel=cancel, **options)
            if showResult:
                self.showSideBySide(inputVolume, outputNode, mode=mode, axis=axis)
            return outputNode
        run = run_sequence.start_single(inputVolume, output_node=outputVolume, progress=progress, **options)

        def finished(outputNode, error) -> None:
            if outputNode is not None and showResult:
                self.showSideBySide(inputVolume, outputNode, mode=mode, axis=axis)
            if onFinished is not None:
                onFinished(outputNode, error)
            elif error is not None:
                logging.error(f"MedSR: {error}")

        run_sequence.follow(run, lambda tick: qt.QTimer.singleShot(POLL_INTERVAL_MS, tick), finished)
        return run.steps[0].runner

    def compare(self, srNode, baselineNode, referenceVolume=None, referenceSegmentation=None, method: str = "otsu3",
                mode: str = "inplane", axis: str = "auto"):
        """Segment the result and the baseline (and the reference) and tabulate the metrics; returns
        MedSRLib.comparison's result (segmentation, table and chart nodes, and a layout plan)."""
        from MedSRLib import comparison
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
