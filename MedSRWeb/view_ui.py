"""The widgets drawn over each slice view: its title (Input, Result: model xF, Reference), the
orientation letters at its edges, its slice number and mm position, a slice slider linked to the
other views, and a reset button for all views. No "Show in 3D": there is no 3D view.

Linking is Slicer's own: the views' slice composite nodes are linked (``MedSRLib.layout.apply_plan``)
and the application logic's vtkMRMLSliceLinkLogic moves every linked view when one slice node
changes *during an interaction*. Wheel, keys and zoom are interactions of Slicer's slice widgets;
the slider wraps its move in one too (SliceToRAS flag, as qMRMLSliceControllerWidget does).
"""
from __future__ import annotations

from typing import Callable

from trame.widgets import html
from trame.widgets import vuetify3 as v3
from trame_slicer.app.logic.slice_view_logic import get_view_slider_typed_state
from trame_slicer.app.ui.slider import Slider

from .view_info import edge_letters, slice_position

_EDGE_STYLE = {"left": "left: 6px; top: 50%;", "right": "right: 6px; top: 50%;",
               "top": "top: 30px; left: 50%;", "bottom": "bottom: 34px; left: 50%;"}
_TEXT = "position: absolute; color: #ffd966; font: 600 13px sans-serif; text-shadow: 0 0 3px #000; " \
        "pointer-events: none;"


def _info_key(view_id: str) -> str:
    return f"medsr_view_{view_id}"


def _read(view) -> dict:
    node = view.get_view_node()
    letters = edge_letters([node.GetSliceToRAS().GetElement(r, c) for r in range(4) for c in range(4)])
    low, high = view.get_slice_range()
    return dict(letters, where=slice_position(view.get_slice_value(), low, high, view.get_slice_step()))


def linked_slice_move(view, value: float) -> None:
    """Move the view's slice as an interaction, so Slicer's slice link logic moves the linked views."""
    node = view.get_view_node()
    node.SetInteractionFlags(node.SliceToRASFlag)
    node.SetInteracting(1)
    try:
        view.set_slice_value(value)
    finally:
        node.SetInteracting(0)


def slice_view_ui(reset_all: Callable[[], None]):
    """The ``slice_view_ui_f`` of ``register_rca_factories``: draws over one slice view."""

    def populate(server, view_id: str, view) -> None:
        state = server.state
        key = _info_key(view_id)
        slider = get_view_slider_typed_state(server, view)

        def on_slider(value: float) -> None:
            with slider.suppress_change_listeners():
                linked_slice_move(view, value)

        def on_view(_view) -> None:
            with slider.suppress_change_listeners():
                slider.data.min_value, slider.data.max_value = _view.get_slice_range()
                slider.data.step = _view.get_slice_step()
                slider.data.value = _view.get_slice_value()
            state[key] = _read(_view)

        slider.bind_changes({slider.name.value: on_slider})
        view.modified.connect(on_view)
        on_view(view)

        html.Div(f"{{{{ medsr_view_titles['{view_id}'] || '' }}}}", classes="medsr-view-label",
                 style=_TEXT + "top: 6px; left: 44px; color: white; font-size: 14px;",
                 **{"data-view": view_id})
        for edge, style in _EDGE_STYLE.items():
            html.Div(f"{{{{ {key} ? {key}.{edge} : '' }}}}", classes=f"medsr-orientation-{edge}",
                     style=_TEXT + style)
        html.Div(f"{{{{ {key} ? {key}.where : '' }}}}", classes="medsr-slice-position",
                 style=_TEXT + "bottom: 34px; right: 8px; color: white; font-weight: 400;")
        html.Div(f"{{{{ medsr_probe['{view_id}'] || '' }}}}", classes="medsr-probe", **{"data-view": view_id},
                 style=_TEXT + "bottom: 52px; left: 8px; color: white; font-weight: 400;")
        with html.Div(style="position: absolute; top: 0; left: 0;"):
            with v3.VBtn(size="small", variant="text", click=reset_all, icon=True, title="Reset all views",
                         classes="medsr-reset-views"):
                v3.VIcon("mdi-fit-to-screen-outline", color="white")
        with html.Div(style="position: absolute; bottom: 0; left: 0; width: 100%;"):
            Slider(classes="slice-slider medsr-slice-slider", typed_state=slider, theme="dark", dense=True)

    return populate
