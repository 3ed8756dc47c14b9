"""The `medsr` command line end to end, in subprocesses, as a user runs it."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from MedSRExtension import load_volume, save_volume
from MedSRExtension.cli import main
from sample_volumes import mni_region


def medsr(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "MedSRExtension", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_run_keeps_physical_bounds_of_oblique_anisotropic_volume(tmp_path):
    src = save_volume(mni_region(), tmp_path / "in.nii.gz")
    out = tmp_path / "out.nrrd"
    r = medsr("run", src, out, "--model", "bicubic", "--scale", "2", "--mode", "volumetric", "--quiet")
    assert r.returncode == 0, r.stderr
    vin, vout = load_volume(src), load_volume(out)
    np.testing.assert_allclose(vout.edge_bounds(), vin.edge_bounds(), atol=1e-4)
    assert vout.array.shape == tuple(2 * n for n in vin.array.shape)
    np.testing.assert_allclose(vout.spacing, np.array(vin.spacing) / 2, rtol=1e-6)
    np.testing.assert_allclose(vout.direction, vin.direction, atol=1e-6)


def test_run_with_target_spacing_and_progress_summary(tmp_path):
    src = save_volume(mni_region(shape_kji=(6, 20, 20)), tmp_path / "in.mha")
    r = medsr("run", src, tmp_path / "o.nii", "--model", "linear", "--spacing", "1.1", "--mode", "throughplane")
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout
    assert load_volume(tmp_path / "o.nii").array.shape == (18, 20, 20)


@pytest.mark.parametrize("args,needle", [
    (["run", "{missing}", "{out}"], "not found"),
    (["run", "{src}", "{out}", "--scale", "0.5"], ">= 1"),
    (["run", "{src}", "{out}", "--model", "nope"], "unknown model"),
    (["run", "{src}", "{out}", "--device", "quantum"], "unknown device"),
    (["run", "{src}", "{bad_out}"], "cannot write"),
    (["run", "{src}", "{out}", "--scale", "a,b"], "--scale"),
    (["run", "{src}", "{out}", "--mode", "inplane", "--slice-thickness", "1"], "--slice-thickness is for thick slices"),
    (["run", "{src}", "{out}", "--slice-thickness", "-2"], "positive number of mm"),
])
def test_bad_input_one_line_error_no_output(tmp_path, capsys, args, needle):
    # In-process through the same entry point as the console script (a subprocess per case is slow).
    src = save_volume(mni_region(shape_kji=(2, 8, 8)), tmp_path / "in.nii.gz")
    fill = {"missing": tmp_path / "missing.nii", "src": src, "out": tmp_path / "out.nii.gz",
            "bad_out": tmp_path / "out.docx"}
    assert main([a.format(**fill) for a in args]) != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]
    assert not (tmp_path / "out.nii.gz").exists() and not (tmp_path / "out.docx").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nii.gz"]


def test_a_given_slice_thickness_picks_the_weights_for_slices_with_gaps_and_is_recorded(tmp_path):
    from MedSRExtension.core.provenance import read_provenance
    src = save_volume(mni_region(shape_kji=(8, 24, 24)), tmp_path / "in.nrrd")
    spacing_k = load_volume(src).spacing[2]
    out = tmp_path / "out.nrrd"
    r = medsr("run", src, out, "--model", "pfmdn", "--mode", "throughplane", "--scale", "3",
              "--slice-thickness", f"{spacing_k / 3:g}", "--quiet")
    assert r.returncode == 0, r.stderr
    record = read_provenance(out)
    assert record["weights"] == "pfmdn-light-thickslice-gap-x1.5-4.safetensors", record
    assert "from the caller" in record["slice_profile"], record


def test_subprocess_error_is_one_line_without_traceback(tmp_path):
    r = medsr("run", tmp_path / "missing.nii.gz", tmp_path / "out.nii.gz")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "not found" in r.stderr and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_models_json_lists_every_model_with_weights_records():
    r = medsr("models", "--json")
    assert r.returncode == 0, r.stderr
    records = json.loads(r.stdout)
    names = {m["name"] for m in records}
    assert {"nearest", "linear", "bicubic", "bspline", "lanczos"} <= names
    for m in records:
        assert m["kind"] in ("network", "classical")
        assert m["scales"] == "any" or all(isinstance(s, int) for s in m["scales"])
        assert "light" in m["presets"]
        for w in m["weights"]:
            assert {"preset", "scales", "degradation"} <= set(w)


def test_info_describes_geometry(tmp_path):
    src = save_volume(mni_region(), tmp_path / "in.nrrd")
    r = medsr("info", src)
    assert r.returncode == 0, r.stderr
    assert "36 x 40 x 12" in r.stdout
    assert "(oblique)" in r.stdout
    assert "--axis k --mode throughplane" in r.stdout


def test_bench_reports_every_configuration_and_memory_by_slice_count():
    # tiny volume and random weights: what is checked is the report, not the speed (that is `make bench`)
    r = medsr("bench", "--slices", "2", "--size", "32", "--networks", "edsr", "--weights", "random", "--json",
              "--memory-slices", "1,3")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    edsr = report["models"]["edsr"]
    for kind in ("naive", "engine-fp32", "engine"):
        assert edsr[kind]["seconds"] > 0 and edsr[kind]["slices_per_s"] > 0, edsr[kind]
        assert edsr[kind]["output_mb"] == pytest.approx(2 * 64 * 64 * 4 / 2**20)  # 2 slices of 64² float32
    assert edsr["engine_vs_naive"] > 0 and "seconds" in report["sitk_bspline"]
    assert sorted(edsr["above_io_mb_by_slices"], key=int) == ["1", "2", "3"]
    assert all(isinstance(v, float) for v in edsr["above_io_mb_by_slices"].values())
    assert edsr["fast_path"] and isinstance(edsr["psnr_delta_db"], float)


def test_bench_refuses_bad_slice_counts():
    r = medsr("bench", "--memory-slices", "50,lots")
    assert r.returncode == 2 and "--memory-slices" in r.stderr and "Traceback" not in r.stderr
