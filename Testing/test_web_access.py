"""What `medsr serve` lets in, without a browser: the token rule, the one data folder, uploads, and the
command's refusals before anything starts."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from MedSRExtension.core.errors import MedSRError
from MedSRWeb import access

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "MedSRModule", "Resources", "SampleData", "MedSRBrainT1.nrrd")


def test_loopback_needs_no_token_and_any_other_address_gets_a_random_one():
    assert not access.needs_token("127.0.0.1") and not access.needs_token("localhost")
    assert not access.needs_token("::1")
    assert access.needs_token("0.0.0.0") and access.needs_token("192.168.1.20")
    assert access.choose_token("127.0.0.1", None) is None
    first, second = access.choose_token("0.0.0.0", None), access.choose_token("0.0.0.0", None)
    assert len(first) >= 24 and first != second
    assert access.choose_token("0.0.0.0", "a-given-token-of-20ch") == "a-given-token-of-20ch"
    with pytest.raises(MedSRError, match="too short"):
        access.choose_token("0.0.0.0", "short")
    assert access.token_matches(first, first) and not access.token_matches(first, second)
    assert not access.token_matches(first, None) and access.token_matches(None, None)


def test_the_data_folder_is_the_only_folder_read(tmp_path):
    data, outside = tmp_path / "data", tmp_path / "outside"
    (data / "sub").mkdir(parents=True)
    outside.mkdir()
    shutil.copy(SAMPLE, data / "brain.nrrd")
    shutil.copy(SAMPLE, data / "sub" / "again.nrrd")
    shutil.copy(SAMPLE, outside / "secret.nrrd")
    (data / "notes.txt").write_text("not a volume", encoding="utf-8")
    os.symlink(outside / "secret.nrrd", data / "link_out.nrrd")
    os.symlink(outside, data / "dir_out")
    os.symlink(data / "brain.nrrd", data / "link_in.nrrd")
    folder = access.DataFolder(str(data))
    assert folder.names() == ["brain.nrrd", "link_in.nrrd", "sub/again.nrrd"]
    assert folder.resolve("sub/again.nrrd") == (data / "sub" / "again.nrrd").resolve()
    for name, reason in (("../outside/secret.nrrd", "not a name inside"), (str(outside / "secret.nrrd"), "not a name"),
                         ("link_out.nrrd", "leads outside"), ("dir_out/secret.nrrd", "leads outside"),
                         ("notes.txt", "not a volume file"), ("missing.nrrd", "not a volume file")):
        with pytest.raises(MedSRError, match=reason):
            folder.resolve(name)
    with pytest.raises(MedSRError, match="not a folder"):
        access.DataFolder(str(tmp_path / "nowhere"))
    with pytest.raises(MedSRError, match="no data folder"):
        access.DataFolder(None).resolve("brain.nrrd")


def test_uploads_are_checked_and_kept_only_in_the_servers_folder(tmp_path):
    content = open(SAMPLE, "rb").read()
    folder = tmp_path / "uploads"
    upload = access.check_upload("../../etc/My brain.nrrd", content, folder)
    assert upload.path.parent == folder and upload.name == "My_brain.nrrd"
    assert upload.volume.array.shape == (64, 192, 160)
    with pytest.raises(MedSRError, match="over the 1 MB upload limit"):
        access.check_upload("big.nrrd", content, folder, limit_mb=1)
    with pytest.raises(MedSRError, match="could not be read as a volume"):
        access.check_upload("scan.nii.gz", b"garbage" * 50, folder)
    with pytest.raises(MedSRError, match="is not a volume file"):
        access.check_upload("notes.txt", b"hello", folder)
    with pytest.raises(MedSRError, match="is empty"):
        access.check_upload("empty.nrrd", b"", folder)
    assert [p.name for p in folder.iterdir()] == [upload.path.name]  # refused uploads are not kept


@pytest.mark.parametrize("args, message", [
    (["--data", "/nonexistent/folder"], "not a folder"),
    (["--host", "0.0.0.0", "--token", "short"], "too short"),
    (["/nonexistent/scan.nii.gz"], "no such file"),
    (["--port", "70000"], "not a port number"),
])
def test_serve_refuses_bad_arguments_before_starting(args, message):
    pytest.importorskip("trame_slicer", reason="the web extra is not installed: pip install -e \".[web]\"")
    env = dict(os.environ, PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-m", "MedSRExtension", "serve", *args], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
