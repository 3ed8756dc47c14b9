"""The page: the MedSR panel in a side drawer, the slice views beside it.

Every control writes to the panel model (``MedSRLib.panel``) and every shown value is read back from it
in ``sync`` after each change and each poll, so the page shows exactly what the Slicer widget would.
Element ids (``medsr-...``) are what the browser tests click and read.
"""
from __future__ import annotations

import math

from trame.ui.vuetify3 import SinglePageWithDrawerLayout
from trame.widgets import client, html
from trame.widgets import vuetify3 as v3

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.weight_families import LABELS
from MedSRLib import choices

from .app import DOWNLOAD_FORMATS, NONE_ITEM, PLANES, WINDOW_PRESETS, MedSRWebApp

MODE_ITEMS = [{"title": "in-plane (2D per slice)", "value": "inplane"},
              {"title": "through-plane (thick slices)", "value": "throughplane"},
              {"title": "volumetric (all axes)", "value": "volumetric"}]


def _items(values) -> list[dict]:
    return [{"title": v, "value": v} for v in values]


def _thickness(text) -> float:
    """The slice-thickness field as mm; empty, zero or not a number: 0 (from the header)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return 0.0
    return value if math.isfinite(value) and value > 0 else 0.0


def sync(web: MedSRWebApp) -> None:
    """Copy what the panel shows into the page state (call inside ``with state``)."""
    p, s = web.panel, web.state
    s.model_items = [{"title": label, "value": name} for label, name in p.model_items()]
    s.model = p.params.model
    scales, editable = p.scale_items()
    s.scale_items, s.scale_editable, s.scale_text = scales, editable, p.scale_text
    s.mode, s.axis, s.device = p.params.mode, p.params.axis, p.params.device
    s.axis_visible = p.axis_visible
    s.adapt, s.adapt_visible = bool(p.params.adapt), p.adapt_visible
    s.confidence = bool(p.params.confidence)
    s.best_quality = bool(p.params.bestQuality)
    s.trained_on = p.params.trainedOn
    s.slice_thickness = f"{p.params.sliceThickness:g}" if p.params.sliceThickness > 0 else ""
    s.confidence_available = web.shown_confidence() is not None
    s.confidence_shown = web.confidence_shown
    s.device_line = p.device_line()
    s.summary = p.summary
    button = p.button()
    s.button_text, s.button_enabled, s.button_tooltip = button.text, button.enabled, button.tooltip
    s.busy = p.busy
    s.progress_visible, s.progress = p.progress_visible, p.progress_percent
    s.status = web.say(p.status)
    s.log_text = "\n".join(p.log[-200:])
    s.has_result = bool(web.results.items)
    s.result_items = web.results.items_for_page()
    s.result_shown = web.results.shown or 0
    shown = web.results.get() if s.has_result else None
    s.result_name = shown.stem if shown is not None else ""
    s.result_line = shown.line if shown is not None else ""
    s.input_items = web.source_items()
    s.reference_items = [NONE_ITEM] + web.source_items()
    s.compare_enabled = bool(p.params.compareEnabled)
    s.baseline = p.params.baselineModel
    s.seg_method = p.params.segmentationMethod
    table = web.comparison_table()
    s.table_headers, s.table_rows = table["headers"], table["rows"]
    s.chart_src = web.comparison_chart() if p.outcome.comparison else ""
    s.compare_note = (p.outcome.comparison or {}).get("against", "")
    s.upload_message = web.say(web.upload_message)
    s.medsr_view_titles = web.view_titles()


def build_page(web: MedSRWebApp) -> SinglePageWithDrawerLayout:
    server = web.server
    state, ctrl = server.state, server.controller
    state.trame__title = "MedSR"
    state.scale_error = ""
    state.flip = False
    state.flip_result = True
    state.input_value = ""
    state.reference_value = ""
    state.upload_file = None
    state.result_choice = None  # the latest (the placeholder shows until one is chosen)
    state.window_preset = None
    state.view_plane = "auto"
    state.medsr_probe = {}
    web.on_panel_changed = lambda: sync(web)

    def guarded(action):
        """Run a page action; a MedSRError becomes the panel's status line instead of a crash."""
        try:
            action()
        except MedSRError as exc:
            web.panel.status = web.say(f"{exc}")
        sync(web)

    @state.change("input_value")
    def _input(input_value, **_):
        if input_value:
            guarded(lambda: web.choose_input(input_value))

    @state.change("model")
    def _model(model, **_):
        if model and model != web.params.model:
            web.panel.choose_model(model)
            sync(web)

    @state.change("scale_text")
    def _scale(scale_text, **_):
        if scale_text is None or str(scale_text) == web.panel.scale_text:
            state.scale_error = ""
            return
        state.scale_error = web.panel.set_scale_text(str(scale_text)) or ""
        sync(web)

    @state.change("mode", "axis", "device", "baseline", "seg_method", "compare_enabled", "adapt", "confidence",
                  "slice_thickness", "best_quality", "trained_on")
    def _options(mode, axis, device, baseline, seg_method, compare_enabled, adapt, confidence, slice_thickness,
                 best_quality, trained_on, **_):
        if web.panel.busy:
            sync(web)
            return
        p = web.params
        p.mode, p.axis, p.device = mode or p.mode, axis or p.axis, device or p.device
        p.baselineModel, p.segmentationMethod = baseline or p.baselineModel, seg_method or p.segmentationMethod
        p.compareEnabled = bool(compare_enabled)
        p.adapt = bool(adapt)
        p.confidence = bool(confidence)
        p.sliceThickness = _thickness(slice_thickness)
        p.bestQuality = bool(best_quality)
        p.trainedOn = trained_on if trained_on in choices.FAMILIES else p.trainedOn
        sync(web)

    @state.change("reference_value")
    def _reference(reference_value, **_):
        guarded(lambda: web.choose_reference(reference_value or ""))

    @state.change("upload_file")
    def _upload(upload_file, **_):
        if not upload_file:
            return
        item = upload_file[0] if isinstance(upload_file, list) else upload_file
        content = item.get("content")
        if isinstance(content, list):
            content = b"".join(content)
        try:
            value = web.take_upload(item.get("name", "upload"), content, item.get("size"))
            state.input_value = value
            web.choose_input(value)
            web.upload_message = f"Loaded '{web.sources[value]}'."
        except MedSRError as exc:
            web.upload_message = web.say(f"Upload refused: {exc}")
        state.upload_file = None
        sync(web)

    @state.change("window_preset")
    def _window(window_preset, **_):
        if window_preset:
            web.set_window_preset(window_preset)
            state.window_preset = None

    @state.change("view_plane")
    def _plane(view_plane, **_):
        if view_plane and view_plane != web.plane:
            guarded(lambda: web.set_plane(view_plane))

    @state.change("confidence_shown")
    def _confidence_shown(confidence_shown, **_):
        if bool(confidence_shown) != web.confidence_shown:
            web.show_confidence(bool(confidence_shown))

    @state.change("flip", "flip_result")
    def _flip(flip, flip_result, **_):
        web.set_flip(bool(flip), bool(flip_result))

    def apply():
        web.panel.apply()  # earlier results stay in the views and in the list while the new run works
        sync(web)

    @state.change("result_choice")
    def _result(result_choice, **_):
        if result_choice:
            state.flip = False
            guarded(lambda: web.show_result(result_choice))

    def refresh():
        web.refresh_sources()
        sync(web)

    ctrl.medsr_apply = apply
    ctrl.medsr_refresh = refresh
    ctrl.medsr_flip = lambda: setattr(state, "flip_result", not state.flip_result)

    with SinglePageWithDrawerLayout(server, theme="dark") as page:
        # Views share the width equally: a flex item may shrink below its last rendered image.
        client.Style(".layout-grid-container, .layout-grid-container > div, .layout-grid-item "
                     "{ min-width: 0; min-height: 0; }")
        page.title.set_text("MedSR: super-resolution")
        page.drawer.width = 380
        with page.toolbar:
            v3.VSpacer()
            html.Div("{{ status }}", id="medsr-status", classes="text-caption mr-4",
                     style="max-width: 60%; overflow: hidden; white-space: nowrap; text-overflow: ellipsis;")
        with page.drawer:
            with v3.VContainer(classes="pa-3", fluid=True):
                html.Div("Input volume", classes="text-subtitle-2")
                with html.Div(classes="d-flex align-center mb-2"):
                    v3.VSelect(v_model=("input_value",), items=("input_items",), label="Volume", density="compact",
                               id="medsr-input", disabled=("busy",), hide_details=True)
                    v3.VBtn(icon="mdi-refresh", size="small", variant="text", id="medsr-refresh",
                            click=ctrl.medsr_refresh, title="List the data folder again")
                v3.VFileInput(v_model=("upload_file",), label="Upload a volume (NIfTI, NRRD, MHA)",
                              density="compact", id="medsr-upload", disabled=("busy",), hide_details=True,
                              show_size=True)
                html.Div("{{ upload_message }}", id="medsr-upload-message", classes="text-caption text-warning mb-2")
                html.Div("Model", classes="text-subtitle-2")
                v3.VSelect(v_model=("model",), items=("model_items",), label="Model", density="compact",
                           id="medsr-model", disabled=("busy",), hide_details=True, classes="mb-2")
                html.Div("{{ summary }}", classes="text-caption mb-2")
                v3.VCombobox(v_model=("scale_text",), items=("scale_items",), label="Scale", density="compact",
                             id="medsr-scale", disabled=("busy",), error_messages=("scale_error",),
                             hide_details="auto", classes="mb-2")
                v3.VSelect(v_model=("mode",), items=("mode_items", MODE_ITEMS), label="Mode", density="compact",
                           id="medsr-mode", disabled=("busy",), hide_details=True, classes="mb-2")
                v3.VSelect(v_model=("axis",), items=("axis_items", _items(choices.AXES)), label="Axis",
                           density="compact", v_show=("axis_visible",), disabled=("busy",), hide_details=True,
                           classes="mb-2")
                v3.VCheckbox(v_model=("adapt",), label="Adapt to this volume (through-plane; a few minutes)",
                             id="medsr-adapt", density="compact", v_show=("adapt_visible",), disabled=("busy",),
                             hide_details=True)
                v3.VTextField(v_model=("slice_thickness",), label="Slice thickness, mm (empty: from the header)",
                              id="medsr-slice-thickness", type="number", min=0, step=0.5, density="compact",
                              v_show=("adapt_visible",), disabled=("busy",), hide_details=True, classes="mb-1")
                v3.VCheckbox(v_model=("confidence",), label="Show how sure (confidence map over the result)",
                             id="medsr-confidence", density="compact", v_show=("adapt_visible",), disabled=("busy",),
                             hide_details=True)
                v3.VCheckbox(v_model=("best_quality",), label="Best quality (8x slower: averaged over flips)",
                             id="medsr-best-quality", density="compact", disabled=("busy",), hide_details=True)
                v3.VSelect(v_model=("trained_on",), label="Weights trained on", id="medsr-trained-on",
                           items=("trained_on_items", [{"title": LABELS[f], "value": f} for f in choices.FAMILIES]),
                           density="compact", disabled=("busy",), hide_details=True, classes="mb-2")
                v3.VSelect(v_model=("device",), items=("device_items", _items(choices.DEVICES)), label="Device",
                           density="compact", disabled=("busy",), hide_details=True)
                html.Div("{{ device_line }}", classes="text-caption mb-2")
                with v3.VExpansionPanels(classes="mb-2"):
                    with v3.VExpansionPanel(title="Compare"):
                        with v3.VExpansionPanelText():
                            v3.VCheckbox(v_model=("compare_enabled",), label="Compare with a baseline",
                                         density="compact", hide_details=True, disabled=("busy",))
                            v3.VSelect(v_model=("baseline",), items=("baseline_items", _items(choices.BASELINES)),
                                       label="Baseline", density="compact", hide_details=True,
                                       disabled=("busy || !compare_enabled",), classes="mb-2")
                            v3.VSelect(v_model=("reference_value",), items=("reference_items",),
                                       label="Reference (high resolution)", density="compact", hide_details=True,
                                       disabled=("busy || !compare_enabled",), classes="mb-2")
                            v3.VSelect(v_model=("seg_method",),
                                       items=("seg_items", _items(choices.SEGMENTATION_METHODS)),
                                       label="Segmentation method", density="compact", hide_details=True,
                                       disabled=("busy || !compare_enabled",))
                v3.VBtn("{{ button_text }}", click=ctrl.medsr_apply, disabled=("!button_enabled",),
                        id="medsr-apply", block=True, color=("busy ? 'error' : 'primary'",), classes="mb-2")
                html.Div("{{ button_tooltip }}", v_show=("!button_enabled && !busy",), id="medsr-apply-reason",
                          classes="text-caption text-warning mb-2")
                v3.VProgressLinear(model_value=("progress",), v_show=("progress_visible",), height=8,
                                   color="primary", id="medsr-progress", classes="mb-2")
                v3.VSelect(v_model=("view_plane",), items=("plane_items", _items(PLANES)),
                           label="View plane (all views)", density="compact", hide_details=True,
                           id="medsr-plane", classes="mb-2", disabled=("!input_value",))
                v3.VSelect(v_model=("window_preset",), items=("window_items", _items(["auto", *WINDOW_PRESETS])),
                           label="Window/level (input and results alike)", density="compact", hide_details=True,
                           id="medsr-window", classes="mb-2", disabled=("!input_value",))
                with html.Div(v_show=("has_result",), id="medsr-result-tools", classes="mb-2"):
                    v3.VSelect(v_model=("result_choice",), items=("result_items",), label="Results of this session",
                               density="compact", id="medsr-results", hide_details=True, classes="mb-1",
                               placeholder="the latest")
                    html.Div("Shown: {{ result_line }}", id="medsr-result-line", classes="text-caption mb-1")
                    with html.Div(id="medsr-confidence-overlay", v_show=("confidence_available",)):
                        v3.VSwitch(v_model=("confidence_shown",), label="Confidence map over the result "
                                   "(bright: least supported by the slices)", density="compact", hide_details=True)
                    with html.Div(id="medsr-flip"):
                        v3.VSwitch(v_model=("flip",), label="One view: flip input / result", density="compact",
                                   hide_details=True)
                    v3.VBtn("{{ flip_result ? 'Showing result: show input' : 'Showing input: show result' }}",
                            click=ctrl.medsr_flip, v_show=("flip",), size="small", id="medsr-flip-button",
                            classes="mb-2")
                    with html.Div():
                        for fmt in DOWNLOAD_FORMATS:
                            v3.VBtn(f"Download .{fmt}", size="small",
                                    href=(f"`medsr/download?format={fmt}&result=${{result_shown}}`",),
                                    variant="outlined", classes="mr-2", id=f"medsr-download-{fmt.split('.')[0]}",
                                    raw_attrs=["download"])  # a download, not a navigation away
                with html.Div(v_show=("table_rows.length",), id="medsr-compare-results",
                              style="max-width: 100%; overflow-x: auto;"):
                    html.Div("{{ compare_note }}", id="medsr-compare-note", classes="text-caption mb-1")
                    with html.Table(classes="text-caption", style="border-collapse: collapse; min-width: 100%;"):
                        with html.Tr():
                            html.Th("{{ h }}", v_for="h in table_headers", style="text-align: left; padding: 2px;")
                        with html.Tr(v_for="row in table_rows"):
                            html.Td("{{ c }}", v_for="c in row", style="padding: 2px;")
                    html.Img(src=("chart_src",), v_show=("chart_src",), style="width: 100%; background: white;")
                html.Div("Log", classes="text-subtitle-2 mt-2")
                html.Pre("{{ log_text }}", id="medsr-log",
                         style="font-size: 11px; max-height: 180px; overflow: auto; white-space: pre-wrap;")
        with page.content:
            with html.Div(style="position: relative; width: 100%; height: calc(100vh - 90px); display: flex;",
                          id="medsr-views"):
                web.layout_manager.initialize_layout_grid(page)
    return page
