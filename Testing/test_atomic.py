"""core.atomic: a write either completes under its name or leaves the folder as it was, also on
Ctrl-C, and its temporary file lives in the output's own folder."""
import os

import numpy as np
import pytest

from MedSRExtension import MedSRError, Volume, save_volume
from MedSRExtension.core import atomic


def test_interrupted_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("old", encoding="utf-8")
    seen = []

    def write(tmp):
        seen.append(os.path.dirname(tmp))
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic.write_with(target, write)
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(os.listdir(tmp_path)) == ["report.md"]
    assert seen == [str(tmp_path)]  # beside the output: the rename never crosses file systems


def test_completed_write_replaces_and_keeps_the_extension_for_the_writer(tmp_path):
    suffixes = []
    atomic.write_with(tmp_path / "a.nii.gz",
                      lambda tmp: suffixes.append(tmp) or open(tmp, "w", encoding="utf-8").close())
    assert suffixes[0].endswith(".nii.gz")
    assert os.listdir(tmp_path) == ["a.nii.gz"]


def test_failed_volume_write_leaves_nothing(tmp_path):
    (tmp_path / "x.nii.gz").mkdir()
    with pytest.raises(MedSRError, match="existing folder"):
        save_volume(Volume(np.zeros((2, 3, 4), np.float32)), tmp_path / "x.nii.gz")
    assert os.listdir(tmp_path) == ["x.nii.gz"] and not os.listdir(tmp_path / "x.nii.gz")


def test_mhd_and_its_raw_arrive_together(tmp_path):
    save_volume(Volume(np.ones((2, 3, 4), np.float32)), tmp_path / "v.mhd", compress=False)
    assert sorted(os.listdir(tmp_path)) == ["v.mhd", "v.raw"]
