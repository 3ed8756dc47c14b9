"""The PACS round trip against a real Orthanc (DICOMweb plugin, authentication on): a test series
arrives by STOW-RS, ``medsr run dicomweb:... --store`` pulls it with WADO-RS, super-resolves it and
stores the derived series back, and a QIDO-RS query finds that series with new UIDs, the source's
StudyInstanceUID and the exact geometry of a local run."""
from __future__ import annotations

import csv
import os

import numpy as np
import pydicom
import pytest

import orthanc_server
from dicom_series import write_source_series
from medsr_server import cli
from sample_volumes import mni_region

from MedSRExtension import load_volume

pytest.importorskip("dicomweb_client", reason="DICOMweb needs dicomweb-client (the 'server' extra)")
if orthanc_server.missing():
    pytest.skip(orthanc_server.missing(), allow_module_level=True)

OPTIONS = ("--model", "bicubic", "--mode", "throughplane", "--scale", "2")


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    orthanc = orthanc_server.OrthancProcess(tmp_path_factory.mktemp("orthanc")).start()
    yield orthanc
    orthanc.stop()


@pytest.fixture(scope="module")
def source(tmp_path_factory, pacs):
    """A real MR series (oblique, 3.3 mm slices) stored in the PACS by STOW-RS."""
    from MedSRExtension.remote.dicomweb import store_series
    folder = tmp_path_factory.mktemp("source") / "series"
    volume = mni_region((8, 24, 28))
    study, series = write_source_series(folder, (volume.array * 1000).astype(np.int16), volume.spacing,
                                        volume.origin, volume.direction)
    os.environ["MEDSR_DICOMWEB_USER"], os.environ["MEDSR_DICOMWEB_PASSWORD"] = orthanc_server.USER, orthanc_server.PASSWORD
    try:
        store_series(pacs.dicomweb, sorted(folder.glob("*.dcm")))
    finally:
        del os.environ["MEDSR_DICOMWEB_USER"], os.environ["MEDSR_DICOMWEB_PASSWORD"]
    return folder, study, series


def _netrc(tmp_path):
    path = tmp_path / "netrc"
    path.write_text(f"machine 127.0.0.1 login {orthanc_server.USER} password {orthanc_server.PASSWORD}\n")
    path.chmod(0o600)
    return {"MEDSR_NETRC": str(path)}


def test_the_pacs_refuses_medsr_without_credentials(pacs, source, tmp_path):
    _, study, series = source
    done = cli("run", f"dicomweb:{pacs.dicomweb}/studies/{study}/series/{series}", tmp_path / "x.nrrd", *OPTIONS,
               "--quiet", env={"MEDSR_NETRC": str(tmp_path / "none"), "HOME": str(tmp_path)})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "HTTP 401" in done.stderr and "credentials" in done.stderr
    assert not (tmp_path / "x.nrrd").exists()


def test_pacs_round_trip_pull_superresolve_store_and_find(pacs, source, tmp_path):
    folder, study, series = source
    env = _netrc(tmp_path)
    done = cli("run", f"dicomweb:{pacs.dicomweb}/studies/{study}/series/{series}", *OPTIONS, "--store",
               pacs.dicomweb, env=env)
    assert done.returncode == 0, done.stderr
    assert "stored the derived series" in done.stdout
    local = cli("run", folder, tmp_path / "local.nrrd", *OPTIONS, "--quiet")  # the same run on the files
    assert local.returncode == 0, local.stderr

    os.environ["MEDSR_NETRC"] = env["MEDSR_NETRC"]
    try:
        from MedSRExtension.remote.dicomweb import client_for, find_series, pull_series
        found = {s["0020000E"]["Value"][0]: s for s in find_series(pacs.dicomweb, study)}  # QIDO-RS
        assert series in found and len(found) == 2
        (derived,) = [uid for uid in found if uid != series]
        assert found[derived]["0020000D"]["Value"][0] == study
        assert "MedSR" in found[derived]["0008103E"]["Value"][0]
        pulled = pull_series(f"dicomweb:{pacs.dicomweb}/studies/{study}/series/{derived}", tmp_path / "derived")
        source_sops = {d["00080018"]["Value"][0] for d in client_for(pacs.dicomweb).search_for_instances(
            study_instance_uid=study, series_instance_uid=series)}
    finally:
        del os.environ["MEDSR_NETRC"]
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(pulled.iterdir())]
    assert {h.StudyInstanceUID for h in headers} == {study}
    assert not {h.SOPInstanceUID for h in headers} & source_sops
    assert "Super-resolved by MedSR" in headers[0].DerivationDescription

    result, expected = load_volume(pulled), load_volume(tmp_path / "local.nrrd")
    assert result.shape_ijk == expected.shape_ijk == (28, 24, 16)
    assert np.allclose(result.spacing, expected.spacing, atol=1e-6)
    assert np.allclose(result.origin, expected.origin, atol=1e-4)
    assert np.allclose(result.direction, expected.direction, atol=1e-6)
    step = float(np.ptp(expected.array)) / 65535 * 2  # the int16 rescale's quantisation
    assert np.abs(result.array - expected.array).max() <= step


def test_a_batch_pulls_pacs_series_from_its_csv_and_stores_each_derived_series_back(pacs, tmp_path):
    """A CSV naming a PACS series: the batch worker pulls it, super-resolves it and the client stores
    the committed series back; the manifest names the stored UID, --resume skips it, nothing is left
    behind, and an output that is not a DICOM series is refused before any work."""
    from MedSRExtension.batch.manifest import NAME
    from MedSRExtension.remote.dicomweb import find_series, store_series
    env = _netrc(tmp_path)
    folder = tmp_path / "source"
    volume = mni_region((6, 20, 24))
    study, series = write_source_series(folder, (volume.array * 1000).astype(np.int16), volume.spacing,
                                        volume.origin, volume.direction)
    os.environ["MEDSR_NETRC"] = env["MEDSR_NETRC"]
    try:
        store_series(pacs.dicomweb, sorted(folder.glob("*.dcm")))
    finally:
        del os.environ["MEDSR_NETRC"]
    cohort = tmp_path / "cohort.csv"
    cohort.write_text(f"input,model,mode,scale\ndicomweb:{pacs.dicomweb}/studies/{study}/series/{series},"
                      "bicubic,throughplane,2\n", encoding="utf-8")
    out = tmp_path / "out"
    done = cli("batch", cohort, out, "--workers", "1", "--store", pacs.dicomweb, "--quiet", env=env)
    assert done.returncode == 0, done.stderr
    with open(out / NAME, encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    assert row["status"] == "done" and row["stored"], row
    assert {p.name for p in out.iterdir()} == {NAME, series}  # no staging or pulled files left
    os.environ["MEDSR_NETRC"] = env["MEDSR_NETRC"]
    try:
        found = {s["0020000E"]["Value"][0] for s in find_series(pacs.dicomweb, study)}
    finally:
        del os.environ["MEDSR_NETRC"]
    assert found == {series, row["stored"]}
    local = load_volume(out / series)
    assert local.shape_ijk == (24, 20, 12)
    again = cli("batch", cohort, out, "--workers", "1", "--store", pacs.dicomweb, "--resume", "--quiet", env=env)
    assert again.returncode == 0 and "1 skipped" in again.stdout, again.stdout + again.stderr
    refused = cli("batch", cohort, tmp_path / "out2", "--format", "nii.gz", "--store", pacs.dicomweb, env=env)
    assert refused.returncode == 2 and "--store stores DICOM series" in refused.stderr
    assert not (tmp_path / "out2").exists()
