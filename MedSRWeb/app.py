"""The web app: one MRML scene (trame-slicer's SlicerApp), Slicer's slice views rendered on the server,
and the MedSR panel model bound to the page's state.

Everything the panel does is ``MedSRLib.panel.SuperResolvePanel``'s: this module only copies the
page's choices into its parameters, calls ``apply()`` / ``poll()`` and copies what it shows back
into the page. Runs go to a worker process, so the server's event loop (which also renders the
views) stays free; ``poll()`` runs on that loop, the only thread that touches MRML.

Views: before a result, one view shows the input; after it, MedSRLib.layout's plan puts input |
result (| reference) in linked views in the plane where the change shows. "Flip" shows the input
and the result by turns in one view, at the same position.
"""
from __future__ import annotations

import asyncio
import base64
import io
import math
import dataclasses
import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import slicer
from trame_slicer.core import LayoutManager, SlicerApp
from trame_slicer.rca_view import register_rca_factories
from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.volume_io import load_volume

from MedSRLib import choices, comparison, layout, nodes, panel as panel_model  # noqa: E402

from . import access, messages
from .probe import CursorProbe
from .results import ResultList
from .view_ui import slice_view_ui
from .window_link import WindowLevelLink

POLL_S = 0.2
REFIT_AFTER_S = 0.8
NONE_ITEM = {"title": "(none)", "value": ""}
#: trame layout id -> the slice views (MedSRLib.layout's view names) it shows.
VIEW_LAYOUTS = {"one": ("Red",), "two": ("Red", "Yellow"), "three": ("Red", "Yellow", "Green")}
#: Window/level presets (window, level), as Slicer's Volumes module offers for CT.
#: The planes the views can show: "auto" is the plane the run changed (layout.choose_orientation).
PLANES = ("auto", "Axial", "Coronal", "Sagittal")
WINDOW_PRESETS = {"CT soft tissue": (400.0, 40.0), "CT bone": (1800.0, 400.0), "CT lung": (1500.0, -600.0),
                  "CT brain": (80.0, 40.0)}
DOWNLOAD_FORMATS = {"nii.gz": "application/gzip", "nrrd": "application/octet-stream"}


@dataclass
class ServeConfig:
    """What ``medsr serve`` was started with."""
    input: Optional[str] = None
    data: Optional[str] = None
    device: str = "auto"
    upload_limit_mb: float = access.DEFAULT_UPLOAD_LIMIT_MB


class MedSRWebApp:
    """The scene, the views and the panel of one server (one run at a time: the panel's busy state)."""

    def __init__(self, server, config: ServeConfig, workdir: Path):
        from trame_slicer import module as trame_slicer_module
        self.server, self.config, self.workdir = server, config, workdir
        server.enable_module(trame_slicer_module)
        self.data = access.DataFolder(config.data)
        self.slicer_app = SlicerApp()
        self.scene = self.slicer_app.scene
        slicer.mrmlScene = self.scene  # MedSRLib falls back to the application scene, as in Slicer
        register_rca_factories(self.slicer_app.view_manager, server, slice_view_ui_f=slice_view_ui(self.reset_views))
        self.layout_manager = LayoutManager(self.scene, self.slicer_app.view_manager, server)
        self.layout_manager.register_layout_dict({
            key: Layout(LayoutDirection.Horizontal,
                        [ViewLayoutDefinition.slice_view("Axial", label=name, color=layout.VIEW_COLORS[name])
                         for name in names])
            for key, names in VIEW_LAYOUTS.items()})
        self.layout_manager.set_layout("one")
        self.params = panel_model.PanelParameters(device=config.device)
        self.panel = panel_model.SuperResolvePanel(self.params, self.scene, show=self._show)
        self.sources: dict[str, str] = {}      # choice value -> title
        self.loaded: dict[str, object] = {}    # choice value -> volume node
        self.plan: Optional[layout.LayoutPlan] = None
        self.results = ResultList()
        self.window_link = WindowLevelLink()
        self.plane = "auto"
        self.confidence_shown = True  # a result's confidence map over it, when it has one
        self._planned = None  # the shown plan as planned, in the plane the run changed
        self.flipped: Optional[bool] = None  # one view: True shows the result, False the input
        self.upload_message = ""
        self._poller: Optional[asyncio.Task] = None
        self.probe = CursorProbe(self.scene, self._probed)
        self.probe.attach()
        self._offer_sources()

    @property
    def state(self):
        return self.server.state

    # --- inputs -----------------------------------------------------------------------------------

    def _offer_sources(self) -> None:
        if self.config.input:
            self.sources["input:"] = Path(self.config.input).name
        self.refresh_sources()

    def refresh_sources(self) -> None:
        """List the data folder again: files added since are offered, files gone are no longer (unless
        already loaded: their node stays usable)."""
        listed = {f"data:{name}": name for name in self.data.names()}
        for value in [v for v in self.sources if v.startswith("data:") and v not in listed and v not in self.loaded]:
            del self.sources[value]
        for value, name in listed.items():
            self.sources.setdefault(value, name)

    def _distinct_title(self, name: str) -> str:
        """``name``, or "name (upload N)" when another offered volume already has that title."""
        titles = set(self.sources.values())
        candidates = itertools.chain((name, f"{name} (upload)"), (f"{name} (upload {n})" for n in itertools.count(2)))
        return next(title for title in candidates if title not in titles)

    def source_items(self) -> list[dict]:
        return [{"title": title, "value": value} for value, title in self.sources.items()]

    def node_for(self, value: str):
        """The volume node of a choice, loaded on first use (INPUT, a data file or an upload)."""
        if not value:
            return None
        if value not in self.loaded:
            kind, _, name = value.partition(":")
            if kind == "input":
                path = Path(self.config.input)
            elif kind == "data":
                path = self.data.resolve(name)
            else:
                raise MedSRError(f"'{value}' is not an offered volume")
            self.loaded[value] = self._add_volume(load_volume(path), self.sources[value])
        return self.loaded[value]

    def _add_volume(self, volume, title: str):
        stem = title
        for suffix in access.VOLUME_SUFFIXES:
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        node = nodes.write_output_node(self.scene, volume, stem or "volume")
        node.GetDisplayNode().AutoWindowLevelOn()
        return node

    def take_upload(self, name: str, content: Optional[bytes], size: Optional[int]) -> str:
        """Check and load an upload; returns its choice value. MedSRError with the reason if refused."""
        upload = access.check_upload(name, content, self.workdir / "uploads", self.config.upload_limit_mb, size)
        value = f"upload:{upload.path.name}"
        self.sources[value] = self._distinct_title(upload.name)
        self.loaded[value] = self._add_volume(upload.volume, upload.name)
        return value

    def choose_input(self, value: str) -> None:
        """Another input: its own default mode (from its geometry), the old messages gone, one view."""
        if self.panel.busy:
            return
        node = self.node_for(value)
        if node is self.params.inputVolume:  # the page echoing the choice just made
            return
        self.upload_message = ""
        self.panel.status = ""
        self.params.inputVolume = node
        self.panel.follow_input()
        self.show_input_only()

    def show_input_only(self) -> None:
        """One view with the input (before a result, and while a new run works)."""
        self.plan = None
        self.layout_manager.set_layout("one")
        self._show_alone(self.params.inputVolume)

    def choose_reference(self, value: str) -> None:
        self.params.referenceVolume = self.node_for(value) if value else None

    def set_plane(self, plane: str) -> None:
        """Show every view in ``plane`` (Axial, Coronal, Sagittal; "auto": the plane the run changed,
        ``layout.choose_orientation``), at one position, rotated onto the input's voxel grid."""
        if plane not in PLANES:
            raise MedSRError(f"view plane must be one of {', '.join(PLANES)}, got '{plane}'")
        self.plane = plane
        if self.plan is not None:
            self.plan = self._oriented(self._planned)
            layout.apply_plan(self.plan, self.scene)
            self._fit(self.plan)
        elif self.params.inputVolume is not None:
            self._show_alone(self.params.inputVolume)

    def _oriented(self, plan):
        """``plan`` in the chosen view plane (unchanged for "auto")."""
        return plan if self.plane == "auto" else dataclasses.replace(plan, orientation=self.plane)

    def _show_alone(self, node) -> None:
        view = self.slicer_app.view_manager.get_view("Red")
        if view is None:
            return
        view.set_background_volume_id(node.GetID() if node is not None else None)
        view.set_foreground_volume_id(None)
        if node is not None:
            plan = self._oriented(layout.plan_side_by_side(node, node, mode=self.params.mode, axis=self.params.axis))
            slice_node = self.scene.GetSingletonNode("Red", "vtkMRMLSliceNode")
            slice_node.SetOrientation(plan.orientation)
            slice_node.RotateToVolumePlane(node)
            view.fit_view_to_content()
            slice_node.JumpSliceByCentering(*plan.center_ras)

    # --- the result in the views ------------------------------------------------------------------

    def _show(self, first, second, reference=None, mode: str = "inplane", axis: str = "auto", plan=None) -> None:
        """The panel's show callback: input | result (| reference) linked, as in Slicer."""
        if plan is None or plan is not self.plan:  # a new plan (not the shown one again): its own plane
            self._planned = plan or layout.plan_side_by_side(first, second, reference, mode=mode, axis=axis)
        plan = self._oriented(self._planned)
        self.plan, self.flipped = plan, None
        self.layout_manager.set_layout("three" if len(plan.views) == 3 else "two")
        layout.apply_plan(plan, self.scene)
        self.window_link.link(self.scene, [a.volume_id for a in plan.views])
        self._fit(plan)
        # The browser reports the views' new sizes a moment later: fit them again then.
        asyncio.get_event_loop().call_later(REFIT_AFTER_S, self._fit, plan)

    def _fit(self, plan) -> None:
        """Fit each view of the plan to its volume, then put them all back at one position."""
        if plan is not self.plan:
            return
        for assignment in plan.views:
            view = self.slicer_app.view_manager.get_view(assignment.view)
            if view is not None:
                view.fit_view_to_content()
        layout.center_views(plan, self.scene)

    def set_flip(self, flip: bool, show_result: bool) -> None:
        """One view showing the input or the result (at the same position), or the side-by-side views."""
        out = self.shown_result_node()
        if out is None or self.plan is None:
            return
        if not flip:
            self.flipped = None
            self._show(None, None, plan=self.plan)
            return
        self.flipped = show_result
        self.layout_manager.set_layout("one")
        view = self.slicer_app.view_manager.get_view("Red")
        if view is not None:
            view.set_background_volume_id(out.GetID() if show_result else self.plan.views[0].volume_id)
        self._fit(self.plan)
        asyncio.get_event_loop().call_later(REFIT_AFTER_S, self._fit, self.plan)

    def write_result(self, fmt: str, number=None) -> Path:
        """A result of this session (default: the one shown), with its provenance, for the download."""
        if fmt not in DOWNLOAD_FORMATS:
            raise MedSRError(f"unknown download format '{fmt}'; use one of {', '.join(DOWNLOAD_FORMATS)}")
        return self.results.write(number, fmt, self.workdir / "downloads")

    def shown_result_node(self):
        return self.results.get().node if self.results.items else None

    def keep_result(self) -> None:
        """After a finished run: its result joins the session's list (and is the one shown)."""
        out = self.panel.outcome.output_node
        if out is not None and self.panel.state == panel_model.State.DONE:
            self.results.add(out, self.params.inputVolume, self.params.referenceVolume, self.params.mode,
                             self.params.axis, self.panel.outcome.confidence_node)
            self.show_confidence(self.confidence_shown)

    def show_result(self, number) -> None:
        """Show an earlier result of the session beside the input it was made from."""
        result = self.results.get(number)
        self.results.shown = result.number
        first = self.scene.GetNodeByID(result.input_id)
        reference = self.scene.GetNodeByID(result.reference_id) if result.reference_id else None
        if first is not None:
            self._show(first, result.node, reference, mode=result.mode, axis=result.axis)
            self.show_confidence(self.confidence_shown)

    def shown_confidence(self):
        """The confidence map node of the result in the views, or None."""
        shown = self.results.get() if self.results.items and self.plan is not None else None
        return shown.confidence if shown is not None else None

    def show_confidence(self, on: bool) -> None:
        """Lay the shown result's confidence map over it (half transparent), or take it away."""
        from MedSRLib.confidence import overlay, remove_overlay
        self.confidence_shown = bool(on)
        conf = self.shown_confidence()
        if conf is not None and on:
            overlay(self.scene, self.results.get().node, conf)
        elif conf is not None:
            remove_overlay(self.scene, conf)

    def say(self, text: str) -> str:
        """A message for the page: no server path in it."""
        return messages.without_paths(text or "", [self.data.root, self.workdir])

    def view_titles(self) -> dict[str, str]:
        """What each shown view holds, by view name: Input, Result: model xF, Reference."""
        if self.plan is None:
            return {"Red": "Input"} if self.params.inputVolume is not None else {}
        titles = {a.view: a.title or a.label.capitalize() for a in self.plan.views}
        if self.flipped is not None:
            return {"Red": titles["Yellow"] if self.flipped else titles["Red"]}
        return titles

    def set_window_preset(self, name: str) -> None:
        """A window/level preset for the input and its results ("auto": the input's own, from its values),
        set on every shown volume's display node (not only through the link's observers, which miss
        a display node made after the link)."""
        node = self.params.inputVolume
        display = node.GetDisplayNode() if node is not None else None
        if display is None:
            return
        if name == "auto":  # the input's automatic window (trame-slicer's percentile range), fixed
            from trame_slicer.core.volume_window_level import VolumeWindowLevel
            window_level = VolumeWindowLevel.min_max_to_window_level(
                *VolumeWindowLevel.get_volume_auto_min_max_range(node))
        elif name in WINDOW_PRESETS:
            window_level = WINDOW_PRESETS[name]
        else:
            return
        shown = [self.scene.GetNodeByID(a.volume_id) for a in (self.plan.views if self.plan else [])]
        displays = [display] + [v.GetDisplayNode() for v in shown if v is not None and v.GetDisplayNode() is not None]
        for item in dict.fromkeys(displays):
            item.AutoWindowLevelOff()
            item.SetWindowLevel(*window_level)
        self._render_views()

    def _render_views(self) -> None:
        """Ask every slice view for a new frame (a display-node change alone may reach only one of them)."""
        for name in VIEW_LAYOUTS["three"]:
            view = self.slicer_app.view_manager.get_view(name)
            if view is not None:
                view.schedule_render()

    def reset_views(self) -> None:
        """Fit every shown view to its volume and put them back at one position."""
        if self.plan is not None:
            self._fit(self.plan)
            return
        view = self.slicer_app.view_manager.get_view("Red")
        if view is not None and self.params.inputVolume is not None:
            self._show_alone(self.params.inputVolume)

    # --- the comparison ---------------------------------------------------------------------------

    def comparison_table(self) -> dict:
        found = self.panel.outcome.comparison
        if not found:
            return {"headers": [], "rows": []}
        columns = comparison.table_columns(found["labels"])
        headers = [f"{name} ({unit})" if unit else name for name, _, unit in columns]
        rows = []
        for row in found["rows"]:
            cells = []
            for _, key, _ in columns:
                value = row.get(key, math.nan)
                cells.append(str(value) if key == "method" else ("-" if not math.isfinite(float(value))
                                                                 else f"{float(value):.3f}"))
            rows.append(cells)
        return {"headers": headers, "rows": rows}

    def comparison_chart(self) -> str:
        """The Dice bar chart as a data URL ("" without a comparison)."""
        found = self.panel.outcome.comparison
        if not found:
            return ""
        from MedSRExtension.evaluation.compare_figures import dice_figure
        buffer = io.BytesIO()
        dice_figure(buffer, found["rows"], list(found["labels"]))
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()

    # --- polling ----------------------------------------------------------------------------------

    def _probed(self, texts: dict) -> None:
        """The values under the mouse changed: show them over the views."""
        with self.state:
            self.state.medsr_probe = texts

    def start_polling(self) -> None:
        if self._poller is None:
            self._poller = asyncio.ensure_future(self._poll_forever())

    async def _poll_forever(self) -> None:
        was_busy = False
        while True:
            await asyncio.sleep(POLL_S)
            self.probe.attach()  # once the views have made the crosshair node
            if not (self.panel.busy or was_busy):
                continue
            busy = self.panel.poll()
            if not busy:
                self.keep_result()
            with self.state:
                self.on_panel_changed()
            was_busy = busy

    def on_panel_changed(self) -> None:
        """Replaced by the page: copy what the panel shows into the page's state."""

    def shutdown(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        self.panel.shutdown()


def make_workdir() -> tempfile.TemporaryDirectory:
    """The server's own temporary folder: uploads and downloads, removed when it stops."""
    return tempfile.TemporaryDirectory(prefix="medsr-serve-")


__all__ = ["MedSRWebApp", "ServeConfig", "make_workdir", "choices", "NONE_ITEM"]
