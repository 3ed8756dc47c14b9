"""Run on a MedSR server: the panel's remote runs, followed exactly as local ones.

A ``RemoteRunner`` is a ``WorkerRunner`` (a ``worker.runner.Runner``) whose worker process (``MedSRExtension.remote.worker``)
uploads the request to a ``medsr server``, polls the job and downloads the result, so the main
thread only polls event lines, as for a local run (Slicer's GIL: DESIGN.md). The token reaches the
worker in its environment, never on its command line, and is never logged. Cancel ends the worker,
which first cancels the job on the server (DELETE). Imports neither qt nor torch.
"""
from __future__ import annotations

import os
import re
import time
from typing import Optional
from urllib.parse import urlsplit

from MedSRExtension.core.volume import Volume
from MedSRExtension.worker import protocol
from MedSRExtension.worker.runner import KILL_AFTER_S, Progress, WorkerRunner

from .interpreter import worker_python

RUN_ON = ("local", "server")
RUN_ON_LABELS = {"local": "this computer", "server": "MedSR server"}
TOKEN_ENV = "MEDSR_TOKEN"  # what MedSRExtension.remote.worker reads (remote.credentials.SERVER_TOKEN_ENV)
URL_EXAMPLE = "https://gpu.hospital.local:8600"


def server_problem(url: str, token: str) -> Optional[str]:
    """Why a run cannot be sent to ``url`` with ``token`` (one line), or None. Checked without the network."""
    text = (url or "").strip()
    if not text:
        return f"Enter the MedSR server's URL (e.g. {URL_EXAMPLE}) or run on this computer"
    try:
        parts = urlsplit(text)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        parts, port_ok = None, False
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok \
            or parts.query or parts.fragment or parts.username:
        return f"'{text[:80]}' is not a server URL; write http(s)://HOST[:PORT], e.g. {URL_EXAMPLE}"
    if not (token or "").strip():
        return "Enter the MedSR server's token (the one the server printed or its administrator gave you)"
    return None


def _safe_name(name: str) -> str:
    """The input node's name as an upload file name (letters, digits, '.', '_', '-')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:80] or "volume"


class RemoteRunner(WorkerRunner):
    """Sends one run to the server at ``url``; ``job_id`` and ``remote_state`` ("sending", "queued",
    "running") follow the server's job; ``result.meta["provenance"]`` is the record the server wrote."""

    kill_after = 4 * KILL_AFTER_S  # time for the worker to cancel the job on the server

    def __init__(self, volume: Volume, options: dict, url: str, token: str, name: str, progress: Progress = None):
        super().__init__(volume, options, progress=progress, python=worker_python())
        self.url, self._token, self._name = url.strip().rstrip("/"), token.strip(), _safe_name(name)
        self.job_id: Optional[str] = None
        self.remote_state = "sending"

    def __repr__(self) -> str:  # never shows the token
        return f"RemoteRunner(url={self.url!r}, job_id={self.job_id!r}, state={self.remote_state!r})"

    def cancel(self) -> None:
        """Ask the worker to cancel the job on the server, then end: a ``cancel`` file it sees between
        polls, and SIGTERM where it can be caught (not on Windows); SIGKILL after ``kill_after``."""
        if self._cancel_at is None and self.folder is not None:
            with open(os.path.join(self.folder, protocol.CANCEL), "w", encoding="utf-8"):
                pass
        if os.name == "nt":
            self._cancel_at = self._cancel_at or time.monotonic()
            return
        super().cancel()

    def _command(self) -> list[str]:
        return [self.python, "-m", "MedSRExtension.remote.worker", self.folder, self.url, self._name]

    def _env(self) -> dict:
        return protocol.worker_env({TOKEN_ENV: self._token})

    def _event(self, event: dict) -> None:
        if event["event"] == "job":
            self.job_id = str(event.get("id") or self.job_id)
            self.remote_state = str(event.get("state") or self.remote_state)

    def _read_result(self) -> Volume:
        volume = super()._read_result()
        record = protocol.read_result_meta(self.folder).get("provenance")
        volume.meta["provenance"] = dict(record) if isinstance(record, dict) else {}
        return volume
