"""super_resolve: modes, exact geometry, batching, tiling, progress, cancel, intensity units."""
import os

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from MedSRExtension import Cancelled, Volume, super_resolve
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.geometry import upsampled_geometry
from sample_volumes import mni_region


def _same_grid(out: Volume, ref: Volume, factors):
    shape, spacing, origin, direction = upsampled_geometry(ref, factors)
    assert out.array.shape == shape
    np.testing.assert_allclose(out.spacing, spacing, rtol=1e-12)
    np.testing.assert_allclose(out.origin, origin, atol=1e-9)
    np.testing.assert_allclose(out.edge_bounds(), ref.edge_bounds(), atol=1e-9)


@pytest.mark.parametrize("mode,factors", [("inplane", (2, 2, 1)), ("throughplane", (1, 1, 2)),
                                          ("volumetric", (2, 2, 2))])
def test_modes_scale_the_right_axes(mode, factors):
    v = mni_region()  # spacing (0.9, 1.1, 3.3): auto axis is k
    out = super_resolve(v, model="bicubic", scale=2, mode=mode)
    _same_grid(out, v, factors)
    assert out.array.dtype == np.float32


def test_nearest_x2_repeats_voxels_in_every_mode():
    v = mni_region(shape_kji=(4, 6, 5))
    a = v.array
    def rep(x, axes):
        return np.repeat(np.repeat(x, 2, axes[0]), 2, axes[1]) if len(axes) == 2 else np.repeat(x, 2, axes[0])
    inplane = super_resolve(v, model="nearest", scale=2, mode="inplane").array
    np.testing.assert_allclose(inplane, rep(a, (1, 2)), rtol=1e-5)
    through = super_resolve(v, model="nearest", scale=2, mode="throughplane").array
    np.testing.assert_allclose(through, rep(a, (0,)), rtol=1e-5)
    vol = super_resolve(v, model="nearest", scale=2, mode="volumetric").array
    np.testing.assert_allclose(vol, np.repeat(rep(a, (1, 2)), 2, 0), rtol=1e-5)


def test_axis_choice_and_per_axis_and_spacing_requests():
    v = mni_region()
    out = super_resolve(v, model="linear", scale=3, mode="inplane", axis="i")
    _same_grid(out, v, (1, 3, 3))
    out = super_resolve(v, model="linear", scale=(1.5, 2.5, 1), mode="inplane")
    _same_grid(out, v, (1.5, 2.5, 1))
    out = super_resolve(v, model="linear", spacing=(0.45, 0.55, 1.1), mode="volumetric")
    _same_grid(out, v, (2, 2, 3))


def test_input_is_not_modified_and_result_is_independent_of_batch():
    v = mni_region()
    before = v.array.copy()
    a = super_resolve(v, model="bspline", scale=2, batch=1).array
    b = super_resolve(v, model="bspline", scale=2, batch=7).array
    np.testing.assert_array_equal(v.array, before)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("model,scale", [("bicubic", 2), ("bspline", 2), ("lanczos", 3), ("bicubic", 2.5)])
def test_tiled_equals_untiled(model, scale):
    v = mni_region(shape_kji=(2, 60, 70), start_kji=(90, 80, 60))
    whole = super_resolve(v, model=model, scale=scale).array
    tiled = super_resolve(v, model=model, scale=scale, tile=40).array
    rel = np.abs(tiled - whole).max() / np.abs(whole).max()
    assert rel < 1e-4


def test_progress_reports_every_batch_and_cancel_stops():
    v = mni_region()
    calls = []
    super_resolve(v, model="bicubic", scale=2, mode="volumetric", batch=4, progress=lambda d, t: calls.append((d, t)))
    total = calls[-1][1]
    assert [d for d, _ in calls] == list(range(1, total + 1)) and all(t == total for _, t in calls)
    assert total > 3
    seen = []
    with pytest.raises(Cancelled):
        super_resolve(v, model="bicubic", scale=2, batch=2, progress=lambda d, t: seen.append(d),
                      cancel=lambda: len(seen) >= 2)
    assert len(seen) == 2


def test_ct_stays_in_hounsfield_units():
    ds = pydicom.dcmread(get_testdata_file("693_UNCI.dcm"))
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    crop = hu[96:192, 96:192]  # air, skull and brain
    v = Volume(crop, spacing=(0.5, 0.5, 1.0))
    out = super_resolve(v, model="bicubic", scale=2)
    assert out.array.min() < -500  # air stays negative
    assert abs(out.array.mean() - crop.mean()) < 0.01 * np.abs(crop).mean()
    assert out.array.max() > 500  # bone stays bright
    as_input = super_resolve(Volume(ds.pixel_array[200:264, 200:264].astype(np.int16)), model="bicubic", scale=2,
                             out_dtype="input")
    assert as_input.array.dtype == np.int16


def test_single_slice_image_is_scaled_in_plane_only():
    v = Volume(mni_region(shape_kji=(1, 30, 20), oblique=False).array, spacing=(0.5, 0.5, 1.0))
    out = super_resolve(v, model="bicubic", scale=2)
    assert out.array.shape == (1, 60, 40)
    with pytest.raises(MedSRError, match="2D image"):
        super_resolve(v, model="bicubic", scale=2, mode="volumetric")


@pytest.mark.parametrize("kwargs,match", [
    ({"scale": 0.5}, ">= 1"),
    ({"model": "nope"}, "unknown model"),
    ({"device": "tpu"}, "unknown device"),
    ({"mode": "sideways"}, "mode must be"),
    ({"axis": "x"}, "axis must be"),
    ({"scale": (2, 2, 2), "mode": "inplane"}, "volumetric"),
])
def test_bad_requests_get_clear_errors(kwargs, match):
    args = {"model": "bicubic", "scale": 2, **kwargs}
    with pytest.raises(MedSRError, match=match):
        super_resolve(mni_region(shape_kji=(2, 8, 8)), **args)


def test_cuda_request_on_cpu_machine_is_refused():
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(MedSRError, match="CUDA is not available"):
        super_resolve(mni_region(shape_kji=(2, 8, 8)), model="bicubic", device="cuda")


def test_output_size_limit_unless_forced(monkeypatch):
    import MedSRExtension.inference.engine as inf
    monkeypatch.setattr(inf, "MAX_OUTPUT_VOXELS", 1000)
    v = mni_region(shape_kji=(2, 20, 20))
    with pytest.raises(MedSRError, match="--force"):
        super_resolve(v, model="nearest", scale=2)
    assert super_resolve(v, model="nearest", scale=2, force=True).array.shape == (2, 40, 40)


# --- the through-plane route (zoo.weights.route): which weight file a pass reads ---------------------

@pytest.fixture
def thick_zoo(tmp_path, monkeypatch):
    from sample_zoo import write_thickslice_zoo
    from MedSRExtension.zoo import weights as zoo
    entry = write_thickslice_zoo(str(tmp_path))  # a thickslice pfmdn entry serving (f, 1), f in [1, 3]
    monkeypatch.setenv(zoo.ENV, str(tmp_path))
    bicubic = zoo.find_weights("pfmdn", (2.0, 2.0))
    assert bicubic["degradation"] == "bicubic"
    return entry, bicubic["path"]


def _run(v, **kw):
    from MedSRExtension.inference.provenance import describe_run
    out = super_resolve(v, model="pfmdn", device="cpu", gate=False, **kw)  # the weights' routing is under test
    return out.array, describe_run(v, out, {"model": "pfmdn", "device": "cpu", **kw})


def test_throughplane_reads_the_thickslice_weights_and_inplane_the_bicubic(thick_zoo):
    thick, bicubic = thick_zoo
    v = mni_region(shape_kji=(8, 20, 16))  # axis auto: k
    through, record = _run(v, mode="throughplane", scale=2)
    assert record["weights"] == thick["file"] and record["weights_sha256"] == thick["sha256"]
    assert np.array_equal(through, _run(v, mode="throughplane", scale=2, weights=thick["path"])[0])
    assert not np.allclose(through, _run(v, mode="throughplane", scale=2, weights=bicubic)[0], atol=1e-3)
    inplane, record = _run(v, mode="inplane", scale=2)
    assert record["weights"] == os.path.basename(bicubic)
    assert np.array_equal(inplane, _run(v, mode="inplane", scale=2, weights=bicubic)[0])
    _, record = _run(v, mode="volumetric", scale=2)  # in-plane pass, then through-plane pass
    assert record["weights"] == f"{os.path.basename(bicubic)}, {thick['file']}"


def test_factor_outside_the_thickslice_range_falls_back_to_bicubic_then_is_refused(thick_zoo):
    thick, bicubic = thick_zoo
    v = mni_region(shape_kji=(8, 20, 16))
    through, record = _run(v, mode="throughplane", scale=4)  # bicubic pfmdn serves f in [1, 4]
    assert record["weights"] == os.path.basename(bicubic)
    assert np.array_equal(through, _run(v, mode="throughplane", scale=4, weights=bicubic)[0])
    with pytest.raises(MedSRError, match=r"no trained weights for 'pfmdn' at scale 5x1; .*scales \[2, 3, 4\] "
                                         r"\(any factors in \[1, 4\]\), through-plane \(f, 1\) for f in \[1, 3\] "
                                         r"\(thickslice\)"):
        super_resolve(v, model="pfmdn", mode="throughplane", scale=5, device="cpu")


def test_thickslice_weights_see_the_thick_axis_as_rows_whatever_the_axis(thick_zoo):
    """Along i both passes are (1, f): the engine transposes each slice, so the result equals the
    axis-k run of the transposed volume; a user's own file is run as given (not transposed)."""
    thick, _ = thick_zoo
    v = mni_region(shape_kji=(8, 20, 16), oblique=False)
    flipped = Volume(np.ascontiguousarray(v.array.transpose(2, 1, 0)))
    along_i, record = _run(v, mode="throughplane", axis="i", scale=2)
    along_k = _run(flipped, mode="throughplane", axis="k", scale=2)[0].transpose(2, 1, 0)
    assert record["weights"] == thick["file"]
    np.testing.assert_allclose(along_i, along_k, rtol=1e-5, atol=1e-4)
    own = _run(v, mode="throughplane", axis="i", scale=2, weights=thick["path"])[0]
    assert not np.allclose(own, along_k, atol=1e-3)  # the network is not transpose-symmetric
