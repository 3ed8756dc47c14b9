"""The bad-input matrix: everyday mistakes and damaged files given to `medsr run/info/compare/eval`,
the Python API and the MRML glue. Every refusal must be: exit status 2 (CLI), no traceback, one line
of at most 200 characters saying what is wrong and (after a ';') what to do, no output and no stray
file, every input byte-identical, and for a pickle given as weights, no code run. The few inputs
that are allowed to succeed must give a finite, readable output.

Cases run in-process (``MedSRExtension.cli.main``) inside their own folder with relative paths;
a few run as real subprocesses to prove the exit status and the absence of tracebacks end to end."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pytest

import damaged_files as D
from MedSRExtension import MedSRError, Volume, load_volume, save_volume, super_resolve
from MedSRExtension.cli import main

MAX_LINE = 200
MARKER = "PWNED"  # created by the malicious pickles if they were ever unpickled


class Case(NamedTuple):
    id: str
    build: Callable[[], list]  # writes the inputs into the current folder, returns argv (or a callable)
    needle: str  # a word the message must contain (what is wrong)


def snapshot(root: Path) -> dict:
    """Every entry under ``root``: sha256 of files, link targets, folders."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(folder) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_one_line(message: str, prefix: str, needle: str) -> None:
    text = message.strip()
    assert "Traceback" not in message
    assert "\n" not in text, f"more than one line: {message!r}"
    assert text.startswith(prefix), text
    assert len(text) <= MAX_LINE, f"{len(text)} characters: {text}"
    assert ";" in text, f"no 'what to do' part: {text}"
    assert needle.lower() in text.lower(), f"{needle!r} not in {text!r}"


def _good(name: str = "in.nii.gz") -> str:
    return D.write(name)


def _file(name: str, data: bytes) -> str:
    Path(name).write_bytes(data)
    return name


def _link(target: str, name: str) -> str:
    os.symlink(target, name)
    return name


def _folder(name: str) -> str:
    os.makedirs(name)
    return name


def _png_2d() -> str:
    save_volume(Volume(D.voxels()[0]), "slice.png")
    return "slice.png"


def _edsr_weights_for(scale: int) -> str:
    from MedSRExtension.models.registry import build
    net = build("edsr", "light", (scale, scale))
    return D.safetensors_of(f"edsr_x{scale}.safetensors", {k: v.contiguous() for k, v in net.state_dict().items()})


def run(*args) -> Callable[[], list]:
    """argv of ``medsr run``: strings, or builders called now (inside the case's folder)."""
    return lambda: ["run", *[a() if callable(a) else a for a in args], "--model", "bicubic", "--quiet"] \
        if "--model" not in args else ["run", *[a() if callable(a) else a for a in args], "--quiet"]


def cmd(name: str, *args) -> Callable[[], list]:
    return lambda: [name, *[a() if callable(a) else a for a in args]]


NAN, INF = float("nan"), float("inf")

RUN_CASES = [
    # damaged or unreadable files
    Case("missing-input", run("nothere.nii.gz", "out.nii.gz"), "not found"),
    Case("empty-file", run(lambda: _file("e.nii.gz", b""), "out.nii"), "empty"),
    Case("truncated-nii", run(lambda: D.truncated("t.nii"), "out.nii.gz"), "incomplete"),
    Case("truncated-nii-gz", run(lambda: D.truncated("t.nii.gz"), "out.nii.gz"), "incomplete"),
    Case("not-gzip-nii-gz", run(lambda: _file("g.nii.gz", b"\x1f\x8b not gzip" * 40),
                                "out.nii.gz"), "cannot read"),
    Case("text-as-nii", run(lambda: _file("x.nii", b"hello " * 100), "out.nii"), "NIfTI"),
    Case("truncated-mha", run(lambda: D.truncated("t.mha"), "out.nii.gz"), "incomplete"),
    Case("truncated-nrrd", run(lambda: D.truncated("t.nrrd"), "out.nii.gz"), "cannot read"),
    Case("mhd-missing-raw", run(D.mhd_without_data, "out.nii.gz"), "lost.raw"),
    Case("mhd-short-raw", run(D.mhd_short_data, "out.nii.gz"), "incomplete"),
    Case("nhdr-missing-data", run(D.nhdr_without_data, "out.nii.gz"), "missing"),
    Case("dicom-no-pixels", run(D.dicom_without_pixels, "out.nii.gz"), "pixel data"),
    Case("dicom-folder-no-pixels", run(D.dicom_folder_without_pixels, "out.nii.gz"), "pixel data"),
    Case("empty-folder", run(lambda: _folder("nothing"), "out.nii.gz"), "no DICOM series"),
    Case("unsupported-type", run(lambda: _file("notes.txt", b"x"), "out.nii.gz"),
         "unsupported"),
    Case("4d-image", run(D.four_d, "out.nii.gz"), "4D"),
    # geometry in the header
    Case("zero-pixdim", run(lambda: D.nifti_patched("z.nii", "f", D.PIXDIM_1, 0.0), "out.nii.gz"), "pixdim[1]"),
    Case("negative-pixdim", run(lambda: D.nifti_patched("n.nii.gz", "f", D.PIXDIM_1 + 4, -1.0), "out.nii.gz"),
         "pixdim[2]"),
    Case("nan-pixdim", run(lambda: D.nifti_patched("n.nii", "f", D.PIXDIM_1 + 8, NAN), "out.nii.gz"), "pixdim[3]"),
    Case("singular-sform", run(lambda: D.nifti_patched("s.nii", "4f", D.SROW_X, 0, 0, 0, 0), "out.nii.gz"),
         "singular"),
    Case("nan-sform", run(lambda: D.nifti_patched("s.nii.gz", "f", D.SROW_X + 12, NAN), "out.nii.gz"), "sform"),
    Case("nan-qoffset", run(lambda: D.nifti_patched("q.nii", "f", D.QOFFSET_X, NAN), "out.nii.gz"), "qform"),
    # non-finite voxels in every float format
    Case("nan-voxel-nii", run(lambda: D.non_finite("v.nii"), "out.nii.gz"), "NaN/Inf"),
    Case("inf-voxel-nii-gz", run(lambda: D.non_finite("v.nii.gz", INF), "out.nii.gz"), "NaN/Inf"),
    Case("nan-voxel-nrrd", run(lambda: D.non_finite("v.nrrd"), "out.nii.gz"), "NaN/Inf"),
    Case("inf-voxel-mha", run(lambda: D.non_finite("v.mha", -INF), "out.nii.gz"), "NaN/Inf"),
    Case("nan-voxel-mhd", run(lambda: D.non_finite("v.mhd"), "out.nii.gz"), "NaN/Inf"),
    # colour images
    Case("rgb-without-component", run(D.rgb_png, "out.nii.gz"), "components"),
    Case("component-red", run(D.rgb_png, "out.nii.gz", "--component", "red"), "--component"),
    Case("component-out-of-range", run(D.rgb_png, "out.nii.gz", "--component", "5"), "out of range"),
    Case("2d-throughplane", run(_png_2d, "out.png", "--mode", "throughplane"), "2D image"),
    # option values
    Case("scale-empty", run(_good, "out.nii.gz", "--scale", ""), "--scale"),
    Case("spacing-empty", run(_good, "out.nii.gz", "--spacing", ""), "--spacing"),
    Case("scale-word", run(_good, "out.nii.gz", "--scale", "two"), "--scale"),
    Case("scale-zero", run(_good, "out.nii.gz", "--scale", "0"), "positive"),
    Case("scale-negative", run(_good, "out.nii.gz", "--scale=-2"), "positive"),
    Case("scale-nan", run(_good, "out.nii.gz", "--scale", "nan"), "finite"),
    Case("scale-inf", run(_good, "out.nii.gz", "--scale", "inf"), "finite"),
    Case("scale-two-values", run(_good, "out.nii.gz", "--scale", "2,2"), "value(s)"),
    Case("scale-below-one", run(_good, "out.nii.gz", "--scale", "0.5"), ">= 1"),
    Case("scale-too-large", run(_good, "out.nii.gz", "--scale", "5000"), "--force"),
    Case("spacing-zero", run(_good, "out.nii.gz", "--spacing", "0"), "--spacing"),
    Case("spacing-negative", run(_good, "out.nii.gz", "--spacing=-1,1,1"), "--spacing"),
    Case("tile-zero", run(_good, "out.nii.gz", "--tile", "0"), "--tile"),
    Case("batch-negative", run(_good, "out.nii.gz", "--batch=-3"), "--batch"),
    Case("tile-word", run(_good, "out.nii.gz", "--tile", "big"), "--tile"),
    Case("unknown-model", run(_good, "out.nii.gz", "--model", "nosuch"), "unknown model"),
    Case("unknown-mode", run(_good, "out.nii.gz", "--mode", "sideways"), "--mode"),
    Case("unknown-axis", run(_good, "out.nii.gz", "--axis", "q"), "--axis"),
    Case("unknown-device", run(_good, "out.nii.gz", "--device", "tpu"), "device"),
    Case("unknown-dtype", run(_good, "out.nii.gz", "--dtype", "int7"), "--dtype"),
    Case("inplane-scaling-axis", run(_good, "out.nii.gz", "--scale", "2,2,2"), "volumetric"),
    Case("scale-and-spacing", run(_good, "out.nii.gz", "--scale", "2", "--spacing", "1"), "not allowed"),
    # outputs that would replace the input or cannot be written
    Case("output-is-input", run(_good, "in.nii.gz"), "is the input"),
    Case("output-is-input-via-symlink", run(_good, lambda: _link("in.nii.gz", "alias.nii.gz")), "is the input"),
    Case("output-is-input-via-dotdot", run(_good, lambda: _folder("sub") + "/../in.nii.gz"), "is the input"),
    Case("output-is-input-absolute", run(_good, lambda: os.path.abspath("in.nii.gz")), "is the input"),
    Case("output-is-mhd-input", run(lambda: D.write("a.mhd", compress=False), "./a.mhd"), "is the input"),
    Case("output-is-existing-folder", run(_good, lambda: _folder("x.nii.gz")), "existing folder"),
    Case("output-folder-missing", run(_good, "nofolder/out.nii.gz"), "does not exist"),
    Case("output-unwritable-type", run(_good, "out.txt"), "cannot write"),
    Case("output-dicom", run(_good, "out.dcm"), "cannot write"),
    Case("output-empty", run(_good, ""), "empty"),
    # weights
    Case("weights-pickle-pt", run(_good, "out.nii.gz", "--model", "edsr", "--weights",
                                  lambda: D.malicious_pickle("evil.pt", MARKER)), "safetensors"),
    Case("weights-pickle-named-safetensors", run(_good, "out.nii.gz", "--model", "edsr", "--weights",
                                                 lambda: D.malicious_pickle("evil.safetensors", MARKER)),
         "not a safetensors"),
    Case("weights-torch-zip-named-safetensors", run(_good, "out.nii.gz", "--model", "edsr", "--weights",
                                                    lambda: D.malicious_torch_file("evil2.safetensors", MARKER)),
         "not a safetensors"),
    Case("weights-missing", run(_good, "out.nii.gz", "--model", "edsr", "--weights", "none.safetensors"),
         "not found"),
    Case("weights-wrong-tensors", run(_good, "out.nii.gz", "--model", "edsr", "--weights",
                                      lambda: D.safetensors_of("w.safetensors", {"foo": __import__("torch").zeros(3)})),
         "missing"),
    Case("weights-wrong-scale", run(_good, "out.nii.gz", "--model", "edsr", "--scale", "4", "--weights",
                                    lambda: _edsr_weights_for(2)), "2 tensors missing"),
]

INFO_CASES = [
    Case("info-missing", cmd("info", "nothere.nii"), "not found"),
    Case("info-truncated-nii-gz", cmd("info", lambda: D.truncated("t.nii.gz")), "incomplete"),
    Case("info-truncated-mha", cmd("info", lambda: D.truncated("t.mha")), "incomplete"),
    Case("info-zero-pixdim", cmd("info", lambda: D.nifti_patched("z.nii", "f", D.PIXDIM_1, 0.0)), "pixdim[1]"),
    Case("info-singular-sform", cmd("info", lambda: D.nifti_patched("s.nii", "4f", D.SROW_X, 0, 0, 0, 0)),
         "singular"),
    Case("info-nan-affine", cmd("info", lambda: D.nifti_patched("s.nii.gz", "f", D.SROW_X + 12, NAN)), "sform"),
    Case("info-nan-voxels-nii", cmd("info", lambda: D.non_finite("v.nii.gz")), "NaN/Inf"),
    Case("info-nan-voxels-nrrd", cmd("info", lambda: D.non_finite("v.nrrd", INF)), "NaN/Inf"),
    Case("info-mhd-missing-raw", cmd("info", D.mhd_without_data), "lost.raw"),
    Case("info-dicom-no-pixels", cmd("info", D.dicom_without_pixels), "pixel data"),
    Case("info-component-red", cmd("info", D.rgb_png, "--component", "red"), "--component"),
    Case("info-no-file-argument", cmd("info"), "required"),
]

COMPARE_CASES = [
    Case("compare-truncated-hr", cmd("compare", "--hr", lambda: D.truncated("t.nii.gz"), "--models", "bicubic",
                                     "--out", "rep", "--quiet"), "incomplete"),
    Case("compare-nan-hr-nrrd", cmd("compare", "--hr", lambda: D.non_finite("v.nrrd"), "--models", "bicubic",
                                    "--out", "rep", "--quiet"), "NaN/Inf"),
    Case("compare-zero-pixdim-lr", cmd("compare", "--hr", _good, "--lr",
                                       lambda: D.nifti_patched("z.nii", "f", D.PIXDIM_1, 0.0),
                                       "--models", "bicubic", "--out", "rep", "--quiet"), "pixdim[1]"),
    Case("compare-out-is-hr", cmd("compare", "--hr", _good, "--models", "bicubic", "--out", "in.nii.gz"),
         "is a file"),
    Case("compare-out-would-replace-lr", cmd("compare", "--hr", _good, "--lr",
                                             lambda: _folder("rep") and _folder("rep/volumes") and
                                             D.write("rep/volumes/lr.nii.gz"),
                                             "--models", "bicubic", "--out", "rep", "--save-volumes"),
         "would replace"),
    Case("compare-scale-empty", cmd("compare", "--hr", _good, "--models", "bicubic", "--out", "rep",
                                    "--scale", ""), "--scale"),
    Case("compare-scale-below-one", cmd("compare", "--hr", _good, "--models", "bicubic", "--out", "rep",
                                        "--scale", "0.5"), "> 1"),
    Case("compare-scale-nan", cmd("compare", "--hr", _good, "--models", "bicubic", "--out", "rep",
                                  "--scale", "nan"), "> 1"),
    Case("compare-unknown-model", cmd("compare", "--hr", _good, "--models", "bicubic,nosuch", "--out", "rep"),
         "unknown model"),
    Case("compare-bad-seg", cmd("compare", "--hr", _good, "--models", "bicubic", "--out", "rep", "--seg", "otsu99"),
         "Otsu"),
    Case("compare-bad-crop", cmd("compare", "--hr", _good, "--models", "bicubic", "--out", "rep", "--crop", "1,2"),
         "--crop"),
    Case("compare-unknown-device", cmd("compare", "--hr", _good, "--models", "bicubic", "--out", "rep",
                                       "--device", "tpu"), "device"),
]

EVAL_CASES = [
    Case("eval-scales-word", cmd("eval", "--scales", "two", "--out", "ev"), "--scales"),
    Case("eval-scale-one", cmd("eval", "--scales", "1", "--out", "ev"), "--scales"),
    Case("eval-unknown-model", cmd("eval", "--models", "nosuch", "--out", "ev"), "unknown model"),
    Case("eval-out-is-file", cmd("eval", "--models", "edsr", "--out", _good), "is a file"),
]

CLI_CASES = RUN_CASES + INFO_CASES + COMPARE_CASES + EVAL_CASES


def _call(argv: list) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse refusals
        return int(exc.code)


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_refuses_with_one_line_and_touches_nothing(case, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    argv = case.build()
    before = snapshot(tmp_path)
    rc = _call(argv)
    out, err = capfd.readouterr()
    assert rc == 2, (out, err)
    assert_one_line(err, f"medsr {argv[0]}: error: ", case.needle)
    assert "Traceback" not in out
    if argv[0] != "info":  # info prints what it could read before naming the fault
        assert out == ""
    else:
        assert "orientation:" not in out  # never a made-up orientation
    assert snapshot(tmp_path) == before  # no output, no temporary file, inputs byte-identical
    assert not Path(MARKER).exists()  # no pickle was ever unpickled


def test_info_names_degenerate_geometry_instead_of_an_orientation(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    rc = _call(["info", D.nifti_patched("z.nii", "f", D.PIXDIM_1, 0.0)])
    out, _ = capfd.readouterr()
    assert rc == 2
    assert "geometry:     INVALID: pixdim[1] = 0" in out
    assert "size:         8 x 7 x 6" in out


# --- the Python API ------------------------------------------------------------------------------

def _vol(array=None, **geometry) -> Volume:
    return Volume(D.voxels() if array is None else array, **geometry)


def _sr(volume_or_builder, **kw) -> Callable[[], object]:
    return lambda: super_resolve(volume_or_builder() if callable(volume_or_builder) else volume_or_builder,
                                 **{"model": "bicubic", "device": "cpu", **kw})


def _nan_at(value):
    a = D.voxels()
    a[0, 0, 0] = value
    return a


API_CASES = [
    Case("api-nan-voxels", lambda: _sr(_vol(_nan_at(NAN))), "NaN/Inf"),
    Case("api-inf-voxels", lambda: _sr(_vol(_nan_at(-INF))), "NaN/Inf"),
    Case("api-zero-spacing", lambda: _sr(lambda: _vol(spacing=(1, 0, 1))), "spacing"),
    Case("api-nan-spacing", lambda: _sr(_vol(spacing=(1, NAN, 1))), "spacing"),
    Case("api-inf-spacing", lambda: _sr(_vol(spacing=(INF, 1, 1))), "spacing"),
    Case("api-nan-origin", lambda: _sr(_vol(origin=(0, NAN, 0))), "origin"),
    Case("api-singular-direction", lambda: _sr(_vol(direction=np.diag([1.0, 1.0, 0.0]))), "singular"),
    Case("api-nan-direction", lambda: _sr(_vol(direction=np.full((3, 3), NAN))), "direction"),
    Case("api-empty-array", lambda: _sr(_vol(np.zeros((0, 4, 4), np.float32))), "no voxels"),
    Case("api-4d-array", lambda: _sr(lambda: _vol(np.zeros((2, 2, 2, 2)))), "4D"),
    Case("api-tile-zero", lambda: _sr(_vol(), tile=0), "tile"),
    Case("api-batch-zero", lambda: _sr(_vol(), batch=0), "batch"),
    Case("api-bad-dtype", lambda: _sr(_vol(), out_dtype="int7"), "dtype"),
    Case("api-scale-nan", lambda: _sr(_vol(), scale=NAN), "scale"),
    Case("api-unknown-mode", lambda: _sr(_vol(), mode="sideways"), "mode"),
    Case("api-pickle-weights", lambda: _sr(_vol(), model="edsr", weights=D.malicious_pickle("evil.pth", MARKER)),
         "safetensors"),
    Case("api-load-truncated", lambda: (lambda p=D.truncated("t.nii.gz"): load_volume(p)), "incomplete"),
    Case("api-load-component-red", lambda: (lambda p=D.rgb_png(): load_volume(p, component="red")), "--component"),
    Case("api-save-over-folder", lambda: (lambda d=_folder("x.nii.gz"): save_volume(_vol(), d)), "existing folder"),
    Case("api-compare-nan-reference", lambda: (lambda: __import__("MedSRExtension.evaluation.compare",
                                                                  fromlist=["run_comparison"]).run_comparison(
        _vol(_nan_at(NAN)), models=["bicubic"], out_dir="rep", device="cpu")), "NaN/Inf"),
]


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_api_refuses_with_one_line_and_touches_nothing(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    action = case.build()
    before = snapshot(tmp_path)
    with pytest.raises(MedSRError) as info:
        action()
    assert_one_line(str(info.value), "", case.needle)
    assert snapshot(tmp_path) == before
    assert not Path(MARKER).exists()


def test_api_never_modifies_the_input_volume():
    v = _vol(_nan_at(NAN), spacing=(1, 1, 2))
    copy = v.array.copy()
    with pytest.raises(MedSRError):
        super_resolve(v, model="bicubic", device="cpu")
    assert np.array_equal(v.array, copy, equal_nan=True)


# --- the MRML glue -------------------------------------------------------------------------------

def _node(scene, array=None, matrix=None, image=True):
    import slicer
    import vtk
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "vol")
    if image:
        slicer.util.updateVolumeFromArray(node, D.voxels() if array is None else array)
    if matrix is not None:
        m = vtk.vtkMatrix4x4()
        for r in range(4):
            for c in range(4):
                m.SetElement(r, c, float(matrix[r][c]))
        node.SetIJKToRASMatrix(m)
    return node


def _matrix(columns=None, origin=(0, 0, 0)):
    m = np.eye(4)
    if columns is not None:
        m[:3, :3] = columns
    m[:3, 3] = origin
    return m


def _empty_image_node(scene):
    import vtk
    node = _node(scene, image=False)
    node.SetAndObserveImageData(vtk.vtkImageData())
    return node


MRML_CASES = [
    Case("mrml-no-image-data", lambda s: _node(s, image=False), "no voxels"),
    Case("mrml-empty-image-data", _empty_image_node, "no voxels"),
    Case("mrml-nan-voxels", lambda s: _node(s, _nan_at(NAN)), "NaN/Inf"),
    Case("mrml-inf-voxels", lambda s: _node(s, _nan_at(INF)), "NaN/Inf"),
    Case("mrml-zero-column", lambda s: _node(s, matrix=_matrix(np.diag([1.0, 0.0, 1.0]))), "spacing"),
    Case("mrml-coinciding-axes", lambda s: _node(s, matrix=_matrix([[1, 1, 0], [0, 0, 0], [0, 0, 1]])), "singular"),
    Case("mrml-nan-matrix", lambda s: _node(s, matrix=_matrix(origin=(0, NAN, 0))), "NaN/Inf"),
    Case("mrml-inf-spacing", lambda s: _node(s, matrix=_matrix(np.diag([INF, 1.0, 1.0]))), "spacing"),
]


@pytest.mark.parametrize("case", MRML_CASES, ids=[c.id for c in MRML_CASES])
def test_mrml_glue_refuses_bad_nodes(case, mrml_scene):
    from MedSRLib import nodes
    node = case.build(mrml_scene)
    image = node.GetImageData()
    before = None
    if image is not None and image.GetPointData().GetScalars() is not None:
        import slicer
        before = np.array(slicer.util.arrayFromVolume(node), copy=True)
    count = mrml_scene.GetNumberOfNodes()
    with pytest.raises(MedSRError) as info:
        nodes.volume_from_node(node)
    assert_one_line(str(info.value), "", case.needle)
    assert mrml_scene.GetNumberOfNodes() == count
    if before is not None:
        import slicer
        assert np.array_equal(slicer.util.arrayFromVolume(node), before, equal_nan=True)


# --- the few inputs that may succeed --------------------------------------------------------------

ALLOWED = [
    ("one-voxel", lambda: D.write("in.nii.gz", np.full((1, 1, 1), 7.0, np.float32)), [], np.float32),
    ("all-zero", lambda: D.write("in.nrrd", np.zeros(D.SHAPE_KJI, np.float32)), [], np.float32),
    ("uint8-dtype-input", lambda: D.write("in.mha", D.voxels(np.uint8)), ["--dtype", "input"], np.uint8),
    ("int16-ct-dtype-input", lambda: D.write("in.nii", (D.voxels() * 20 - 1000).astype(np.int16)),
     ["--dtype", "input"], np.int16),
]


@pytest.mark.parametrize("build,extra,dtype", [a[1:] for a in ALLOWED], ids=[a[0] for a in ALLOWED])
def test_allowed_edge_inputs_give_finite_readable_output(build, extra, dtype, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    src = build()
    before = snapshot(tmp_path)
    rc = _call(["run", src, "out.nii.gz", "--model", "bicubic", "--quiet", *extra])
    _, err = capfd.readouterr()
    assert rc == 0, err
    after = snapshot(tmp_path)
    assert set(after) - set(before) == {"out.nii.gz"}  # only the output, no temporary file
    assert all(after[k] == v for k, v in before.items())
    out = load_volume("out.nii.gz")
    assert out.array.dtype == dtype
    assert np.all(np.isfinite(out.array))


# --- end to end, in real processes ---------------------------------------------------------------

SUBPROCESS = [
    ("output-is-input", lambda: ["run", _good(), "in.nii.gz", "--model", "bicubic"], "is the input"),
    ("truncated", lambda: ["run", D.truncated("t.nii.gz"), "o.nii.gz", "--model", "bicubic"], "incomplete"),
    ("component-red", lambda: ["info", D.rgb_png(), "--component", "red"], "--component"),
    ("scale-empty", lambda: ["run", _good(), "o.nii.gz", "--scale", ""], "--scale"),
]


@pytest.mark.parametrize("build,needle", [s[1:] for s in SUBPROCESS], ids=[s[0] for s in SUBPROCESS])
def test_refusals_in_a_real_process(build, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = build()
    before = snapshot(tmp_path)
    r = subprocess.run([sys.executable, "-m", "MedSRExtension", *argv], capture_output=True, text=True,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert r.returncode == 2
    assert_one_line(r.stderr, f"medsr {argv[0]}: error: ", needle)
    assert snapshot(tmp_path) == before


def test_case_count():
    """The matrix covers at least 60 refusals across run, info, compare, the API and the MRML glue."""
    assert len(CLI_CASES) + len(API_CASES) + len(MRML_CASES) + len(SUBPROCESS) >= 60
