"""What the panel shows and offers: the side-by-side layout on real slice views, the model and
scale choices that follow the engine's registry, and the device status line."""
from __future__ import annotations


import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is needed for MRML tests")

from MedSRLib import choices, device_info, layout, selftest  # noqa: E402


def test_layout_two_and_three_views_linked_at_one_position(mrml_scene):
    selftest.check_layout_plan(mrml_scene)


def test_layout_is_registered_and_selectable_on_the_layout_node(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene)
    plan = layout.plan_side_by_side(node, node)
    layout_node = layout.current_layout_node(mrml_scene)
    layout.register_layout(plan, layout_node)
    layout.register_layout(plan, layout_node)  # registering again replaces, not duplicates
    layout_node.SetViewArrangement(plan.layout_id)
    assert layout_node.GetViewArrangement() == plan.layout_id
    assert layout_node.GetLayoutDescription(plan.layout_id) == plan.description


@pytest.mark.parametrize("column,mode,expected", [
    ((0, 0, 1), "inplane", "Axial"),          # thick slices along S: enhanced slices are axial
    ((0, 0, 1), "throughplane", "Coronal"),   # new slices along S show in a plane containing S
    ((1, 0, 0), "inplane", "Sagittal"),
    ((0, 1, 0), "throughplane", "Axial"),
])
def test_orientation_follows_the_slicing_axis(column, mode, expected):
    m = np.eye(4)
    m[:3, 2] = np.asarray(column, float) * 4.0  # k is the thick axis (4 mm)
    m[:3, :2] = np.array([c for c in np.eye(3) if not np.allclose(c, np.abs(column))]).T
    assert layout.choose_orientation(m, mode, "auto") == expected


RECORDS = [
    {"name": "bicubic", "kind": "classical", "title": "Bicubic", "scales": "any", "weights": []},
    {"name": "lgsr", "kind": "network", "title": "LGSR", "scales": [2, 3, 4], "weights": []},
    {"name": "iconet", "kind": "network", "title": "ICONet", "scales": [2, 4],
     "weights": [{"scales": [4], "preset": "light"}, {"scales": 2, "preset": "light"}]},
    {"name": "pfmdn", "kind": "network", "title": "PFMDN", "scales": "any", "weights": [{"scales": [2, 3]}]},
]


def test_model_choices_put_usable_networks_first_and_follow_trained_scales():
    found = choices.model_choices(RECORDS)
    assert [c.name for c in found] == ["iconet", "pfmdn", "bicubic", "lgsr"]
    assert found[-1].label.endswith("no trained weights") and not found[-1].usable
    from MedSRExtension.zoo.catalog import default_model
    assert choices.default_model(found, 2.0) == default_model(2.0) == "lgsr"  # the CLI's rule: best val PSNR
    assert choices.default_model(found, 4.0) == default_model(4.0) == "lgsr"  # its x4 now scores best
    iconet = choices.find(found, "iconet")
    assert choices.scale_options(iconet) == ([2.0, 4.0], False)
    assert choices.pick_scale(iconet, 3.0) == 2.0 and choices.pick_scale(iconet, 4.0) == 4.0
    assert choices.scale_options(choices.find(found, "pfmdn")) == ([2.0, 3.0, 4.0], True)
    assert choices.default_model([c for c in found if c.kind == "classical"]) == "bicubic"


def test_model_choices_from_the_real_registry_include_every_baseline():
    found = {c.name: c for c in choices.model_choices()}
    for name in choices.BASELINES:
        assert found[name].usable and found[name].scales is None


def test_axis_only_where_the_mode_uses_it_and_typed_scales():
    assert choices.axis_applies("inplane") and choices.axis_applies("throughplane")
    assert not choices.axis_applies("volumetric") and choices.effective_axis("volumetric", "i") == "auto"
    assert choices.parse_scale(" 2.5x") == 2.5 and choices.parse_scale("×3") == 3.0
    with pytest.raises(ValueError, match="not a number"):
        choices.parse_scale("two")
    with pytest.raises(ValueError, match="below 1"):
        choices.parse_scale("0.5")


def test_device_status_names_the_device_and_never_raises():
    import torch
    text = device_info.device_status("auto")
    assert text.startswith("GPU: ") if torch.cuda.is_available() else text.startswith("CPU: ")
    assert device_info.device_status("cpu").startswith("CPU: ")
    if not torch.cuda.is_available():
        assert "not available" in device_info.device_status("cuda")


def test_comparison_results_get_a_table_and_chart_row(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene)
    table = mrml_scene.AddNewNodeByClass("vtkMRMLTableNode", "metrics")
    chart = mrml_scene.AddNewNodeByClass("vtkMRMLPlotChartNode", "dice")
    plan = layout.plan_side_by_side(node, node, referenceNode=node, tableNode=table, chartNode=chart)
    assert plan.layout_id == layout.THREE_VIEW_LAYOUT_ID + layout.RESULTS_ROW_OFFSET
    layout_node = layout.current_layout_node(mrml_scene)
    layout.register_layout(plan, layout_node)
    layout_node.SetViewArrangement(plan.layout_id)  # the layout logic creates the table and plot views
    layout.apply_plan(plan, mrml_scene)
    table_view = mrml_scene.GetSingletonNode(layout.TABLE_VIEW, "vtkMRMLTableViewNode")
    plot_view = mrml_scene.GetSingletonNode(layout.PLOT_VIEW, "vtkMRMLPlotViewNode")
    assert table_view is not None and table_view.GetTableNodeID() == table.GetID()
    assert plot_view is not None and plot_view.GetPlotChartNodeID() == chart.GetID()
