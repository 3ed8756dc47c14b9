"""A PACS over DICOMweb: a series in with WADO-RS, a derived series out with STOW-RS, QIDO-RS to find.

An input ``dicomweb:http(s)://HOST/dicom-web/studies/<StudyUID>/series/<SeriesUID>`` is retrieved
into a local folder of DICOM files and then read by MedSR's own DICOM reader
(``core.dicom_series`` + ``load_volume``), so every geometry and series rule of a local folder
applies unchanged. An output is the folder MedSR's DICOM writer (``core.dicom_out``) wrote, stored
file by file as written. Credentials come from ``credentials.dicomweb_session``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from MedSRExtension.core.errors import MedSRError

from .credentials import dicomweb_session

SCHEME = "dicomweb:"
_SERIES = re.compile(r"^(?P<base>https?://.+?)/studies/(?P<study>[0-9.]+)/series/(?P<series>[0-9.]+)/?$")


def is_dicomweb(text: str) -> bool:
    return str(text).startswith(SCHEME)


def parse_series_url(text: str) -> tuple[str, str, str]:
    """(service base URL, StudyInstanceUID, SeriesInstanceUID) of a ``dicomweb:`` input."""
    found = _SERIES.match(str(text)[len(SCHEME):] if is_dicomweb(text) else str(text))
    if not found:
        raise MedSRError(f"'{text}' is not a DICOMweb series; write dicomweb:http(s)://HOST/dicom-web/studies/"
                         "<StudyInstanceUID>/series/<SeriesInstanceUID>")
    return found["base"], found["study"], found["series"]


def client_for(base: str):
    """A ``dicomweb_client.DICOMwebClient`` for ``base`` with the configured credentials."""
    try:
        from dicomweb_client.api import DICOMwebClient
    except ImportError:
        raise MedSRError("DICOMweb needs dicomweb-client: pip install \"medsr[server]\"") from None
    return DICOMwebClient(base, session=dicomweb_session(base))


def _pacs_error(what: str, base: str, exc: Exception) -> MedSRError:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    hint = " (check the credentials: MEDSR_DICOMWEB_USER/PASSWORD, MEDSR_DICOMWEB_TOKEN or the netrc file)" \
        if status in (401, 403) else ""
    return MedSRError(f"{what} at {base} failed: {type(exc).__name__}{f' HTTP {status}' if status else ''}{hint}")


def pull_series(url: str, folder: Path) -> Path:
    """Retrieve the series ``url`` names (WADO-RS) into ``folder`` (created), one file per instance."""
    base, study, series = parse_series_url(url)
    client = client_for(base)
    folder.mkdir(parents=True, exist_ok=False)
    try:
        count = 0
        for count, ds in enumerate(client.iter_series(study, series), start=1):
            ds.save_as(folder / f"IM{count:05d}.dcm", enforce_file_format=True)
    except MedSRError:
        raise
    except Exception as exc:
        raise _pacs_error(f"retrieving series {series}", base, exc) from None
    if count == 0:
        raise MedSRError(f"the PACS at {base} has no instances of series {series} in study {study}")
    return folder


def store_series(base: str, files: list, study: Optional[str] = None) -> str:
    """Store the DICOM ``files`` (one derived series) at ``base`` (STOW-RS); returns their SeriesInstanceUID."""
    import pydicom
    datasets = [pydicom.dcmread(str(f)) for f in files]
    if not datasets:
        raise MedSRError("there is no DICOM file to store")
    client = client_for(base.rstrip("/"))
    try:
        response = client.store_instances(datasets, study_instance_uid=study)
    except Exception as exc:
        raise _pacs_error("storing the derived series", base, exc) from None
    failed = response.get("FailedSOPSequence") if response is not None else None
    if failed:
        raise MedSRError(f"the PACS at {base} refused {len(failed)} of {len(datasets)} instances of the derived series")
    return str(datasets[0].SeriesInstanceUID)


def find_series(base: str, study: str) -> list[dict]:
    """The series of ``study`` (QIDO-RS), as DICOM JSON."""
    try:
        return client_for(base.rstrip("/")).search_for_series(study_instance_uid=study)
    except Exception as exc:
        raise _pacs_error(f"searching study {study}", base, exc) from None
