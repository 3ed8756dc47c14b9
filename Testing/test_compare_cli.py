"""``medsr compare`` end to end on a real brain region: CSV/Markdown/figures, values in range, and
one-line failures that leave nothing behind; plus the given-LR and off-grid paths of run_comparison."""
import csv
import math
import subprocess
import sys

import numpy as np
import pytest

from MedSRExtension.cli import main
from MedSRExtension.evaluation.compare import crop, run_comparison
from MedSRExtension.data.corpus import mni_path
from MedSRExtension.core.degradations import degrade
from MedSRExtension.core.volume_io import load_volume, save_volume


@pytest.fixture(scope="module")
def hr():
    """48 x 48 x 24 voxels (i, j, k) of the MNI T1 template through the ventricles and white matter."""
    return crop(load_volume(mni_path()), (75, 95, 60), (48, 48, 24))


@pytest.fixture(scope="module")
def hr_file(hr, tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "hr.nii.gz"
    save_volume(hr, path)
    return path


def medsr(*args):
    return subprocess.run([sys.executable, "-m", "MedSRExtension", "compare", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_compare_writes_metrics_table_and_figures(hr_file, tmp_path):
    out = tmp_path / "report"
    res = medsr("--hr", hr_file, "--degradation", "thickslice", "--scale", 2, "--mode", "throughplane",
                "--axis", "k", "--models", "bicubic,nearest", "--seg", "otsu3", "--mask", "foreground",
                "--out", out, "--quiet")
    assert res.returncode == 0, res.stderr
    with open(out / "metrics.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["bicubic", "nearest"]
    for col in ("method", "psnr", "ssim", "dice_mean", "hd95_mean", "dice_1", "dice_2", "hd95_1", "hd95_2",
                "voldiff_pct_1", "voldiff_pct_2"):
        assert col in rows[0], col
    for r in rows:
        assert 20 < float(r["psnr"]) < 60
        assert 0.5 < float(r["ssim"]) <= 1
        assert 0.5 < float(r["dice_mean"]) <= 1 and 0 <= float(r["hd95_mean"]) < 10
        assert float(r["dice_mean"]) == pytest.approx((float(r["dice_1"]) + float(r["dice_2"])) / 2, abs=1e-5)
    bicubic, nearest = rows
    # on a real brain, bicubic beats nearest-neighbour slice repetition, and so does its segmentation
    assert float(bicubic["psnr"]) > float(nearest["psnr"])
    assert float(bicubic["dice_mean"]) > float(nearest["dice_mean"])
    md = (out / "metrics.md").read_text(encoding="utf-8")
    assert "| bicubic |" in md and "| nearest |" in md and "thickslice x2" in md
    for name in ("slices.png", "dice.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    assert sorted(p.name for p in out.iterdir()) == ["dice.png", "metrics.csv", "metrics.md", "slices.png"]


def test_bad_input_fails_with_one_line_and_writes_nothing(hr_file, tmp_path):
    out = tmp_path / "report"
    res = medsr("--hr", hr_file, "--out", out, "--quiet", "--models", "bicubic,warp9")
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown model 'warp9'" in lines[0] and "Traceback" not in res.stderr
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--seg", "kmeans"], "unknown segmentation method"),
    (["--degradation", "thickslice", "--mode", "inplane"], "use --mode throughplane"),
    (["--crop", "0,0,0,48,48,99"], "does not fit"),
    (["--scale", "0.5"], "scale must be a number > 1"),
    (["--slice-thickness", "3"], "add --degradation thickslice"),
    (["--degradation", "thickslice", "--slice-thickness", "-1"], "positive number of mm"),
])
def test_more_bad_inputs_in_process(hr_file, tmp_path, capsys, args, message):
    out = tmp_path / "report"
    code = main(["compare", "--hr", str(hr_file), "--out", str(out), "--quiet", "--models", "bicubic", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and message in err[0]
    assert not out.exists()


def test_a_given_lr_gives_the_same_numbers_as_the_degradation(hr, tmp_path):
    lr = degrade(hr, "thickslice", 2.0, axis="k")
    a = run_comparison(hr, degradation="thickslice", scale=2, models=["linear"], seg="otsu3", out_dir=tmp_path / "a")
    b = run_comparison(hr, lr=lr, models=["linear"], seg="otsu3", out_dir=tmp_path / "b")  # mode, axis, scale inferred
    for key in ("psnr", "ssim", "dice_mean", "hd95_mean", "dice_1", "dice_2"):
        assert a[0][key] == pytest.approx(b[0][key], rel=1e-6), key
    assert hr.array.shape == (24, 48, 48)  # the caller's volume is untouched


def test_thinner_simulated_slices_leave_a_gap_and_say_so(hr, tmp_path):
    """--slice-thickness 1.5 at x2 along k: 1.5 mm slices every 2 mm; the LR carries the thickness as a
    header would (so an adapted method uses it) and keeps more detail than contiguous 2 mm slices."""
    from MedSRExtension.evaluation.compare import make_lr
    gap = make_lr(hr, "thickslice", 2.0, "throughplane", "k", thickness_mm=1.5)
    full = make_lr(hr, "thickslice", 2.0, "throughplane", "k")
    assert gap.meta["thickness_ijk"] == (None, None, 1.5) and full.meta["thickness_ijk"] == (None, None, 2.0)
    assert np.abs(np.diff(gap.array, axis=0)).mean() > np.abs(np.diff(full.array, axis=0)).mean()
    run_comparison(hr, degradation="thickslice", thickness_mm=1.5, scale=2, models=["linear"], seg=None,
                   out_dir=tmp_path / "g")
    assert "thickslice x2 (1.5 mm slices)" in (tmp_path / "g" / "metrics.md").read_text(encoding="utf-8")


def test_off_grid_results_are_resampled_onto_the_reference(hr, tmp_path):
    """x2.5 through 24 slices: the LR has 10 slices and SR returns 25, not the reference's 24."""
    rows = run_comparison(hr, degradation="thickslice", scale=2.5, models=["bicubic", "nearest"], seg="otsu3",
                          mask="foreground", out_dir=tmp_path)
    for r in rows:
        assert 20 < r["psnr"] < 60 and 0.5 < r["dice_mean"] <= 1 and math.isfinite(r["hd95_mean"])
    assert rows[0]["psnr"] > rows[1]["psnr"]
    assert np.isfinite([r["ssim"] for r in rows]).all()


def test_a_network_without_shipped_weights_is_refused_before_any_work(hr, tmp_path):
    from MedSRExtension.zoo import weights as zoo
    from MedSRExtension.core.errors import MedSRError
    from MedSRExtension.models.registry import get_spec, names

    missing = [n for n in names() if get_spec(n).kind == "network" and zoo.find_weights(n, 3.0) is None]
    if not missing:
        pytest.skip("every network ships weights for x3")
    with pytest.raises(MedSRError, match=f"'{missing[0]}' has no shipped trained weights for x3"):
        run_comparison(hr, degradation="bicubic", scale=3, models=["bicubic", missing[0]], out_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_network_check_follows_the_through_plane_route(tmp_path, monkeypatch):
    """pfmdn at x5 through-plane reads thickslice weights serving f up to 6: compared, not refused;
    in-plane x5 and the x3 detour of edsr have no weights and are refused."""
    from sample_zoo import write_thickslice_zoo
    from MedSRExtension.core.errors import MedSRError
    from MedSRExtension.evaluation.compare import check_models
    from MedSRExtension.zoo import weights as zoo
    write_thickslice_zoo(str(tmp_path), scale_range=(1.0, 6.0))
    monkeypatch.setenv(zoo.ENV, str(tmp_path))
    assert check_models(["pfmdn"], scale=5.0, mode="throughplane") == ["pfmdn"]
    assert check_models(["pfmdn"], scale=5.0, mode=None) == ["pfmdn"]  # the CLI before the mode is known
    with pytest.raises(MedSRError, match="'pfmdn' has no shipped trained weights for x5"):
        check_models(["pfmdn"], scale=5.0, mode="inplane")
    with pytest.raises(MedSRError, match="'edsr' has no shipped trained weights for x3"):
        check_models(["edsr"], scale=3.0, mode="throughplane")
