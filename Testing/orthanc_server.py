"""A real Orthanc PACS for the tests (Debian's ``orthanc`` + ``orthanc-dicomweb``): started on a free
loopback port with a configuration the test writes (HTTP basic authentication on, remote access
refused, the DICOM port disabled, storage in a temporary folder), stopped by the test."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
USER, PASSWORD = "medsr", "pacs-secret-42"
START_S = 60.0


def missing() -> str | None:
    """Why Orthanc cannot run here (None when it can)."""
    for path, package in ((ORTHANC, "orthanc"), (DICOMWEB_PLUGIN, "orthanc-dicomweb")):
        if not os.path.exists(path):
            return (f"{path} is missing: apt could not install {package} (scripts/install_orthanc.sh, run by "
                    "make setup as root)")
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OrthancProcess:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dicomweb = self.url + "/dicom-web"
        self.process = None

    def config(self) -> dict:
        return {"Name": "MedSR-test-PACS", "StorageDirectory": str(self.folder / "db"),
                "IndexDirectory": str(self.folder / "db"), "HttpPort": self.port, "RemoteAccessAllowed": False,
                "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD}, "DicomServerEnabled": False,
                "Plugins": [DICOMWEB_PLUGIN], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}

    def start(self) -> "OrthancProcess":
        config = self.folder / "orthanc.json"
        config.write_text(json.dumps(self.config(), indent=2))
        self.log = open(self.folder / "orthanc.log", "wb")
        self.process = subprocess.Popen([ORTHANC, str(config)], stdout=self.log, stderr=subprocess.STDOUT,
                                        cwd=self.folder, start_new_session=True)
        import requests
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if requests.get(self.url + "/system", auth=(USER, PASSWORD), timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"Orthanc did not start: {(self.folder / 'orthanc.log').read_text(errors='replace')[-800:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        if getattr(self, "log", None):
            self.log.close()
