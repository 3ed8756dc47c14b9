"""``ServerClient``: the Python client of ``medsr server`` (the routes of ``server.app``).

    client = ServerClient("https://gpu.hospital.local", token)
    job = client.submit("t2.nii.gz", {"model": "pfmdn", "scale": 2, "mode": "throughplane"})
    state = client.wait(job, progress=print)       # "done", else ServerError with the job's message
    client.download(job, "t2_x2.nrrd")
"""
from __future__ import annotations

import os
import time
from typing import Callable, Optional

from MedSRExtension.core.errors import Cancelled, MedSRError

POLL_S = 0.25
TIMEOUT_S = 30.0


class ServerError(MedSRError):
    """The server refused a request or a job failed; the message is the server's one line and
    ``status`` the HTTP status of a refusal (None when the server was not reached)."""

    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        self.status = status


class ServerClient:
    """Talks to one ``medsr server`` at ``url`` (``http(s)://host:port``) with ``token``."""

    def __init__(self, url: str, token: str, timeout: float = TIMEOUT_S):
        import requests
        self.url = url.rstrip("/")
        self.api = self.url + "/api/v1"
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["Authorization"] = "Bearer " + token

    def _call(self, method: str, path: str, **kwargs):
        import requests
        try:
            response = self.session.request(method, self.api + path, timeout=kwargs.pop("timeout", self.timeout), **kwargs)
        except requests.RequestException as exc:
            raise ServerError(f"the MedSR server at {self.url} cannot be reached ({type(exc).__name__}); check the "
                              "URL and that the server is running") from None
        if response.status_code >= 400:
            try:
                line = response.json().get("error") or response.text
            except ValueError:
                line = response.text.strip()[:200]
            raise ServerError(f"server {self.url}: {line} (HTTP {response.status_code})", response.status_code)
        return response

    def info(self) -> dict:
        """Version and limits (checks the token too)."""
        return self._call("GET", "/server").json()

    def models(self) -> list:
        return self._call("GET", "/models").json()

    def submit(self, path: str, options: dict, name: Optional[str] = None) -> dict:
        """Upload the volume file at ``path`` (NIfTI, NRRD, MHA or a zip of one DICOM series) with
        ``options`` (InferenceOptions fields); returns {"id", "state", "chosen"}."""
        import json
        limit = self.info().get("max_upload_bytes")
        size = os.path.getsize(path)
        if limit and size > limit:
            from MedSRExtension.server.tokens import too_large
            raise ServerError(f"server {self.url}: {too_large(size, limit)}")
        with open(path, "rb") as f:
            files = {"volume": (name or os.path.basename(path), f, "application/octet-stream"),
                     "options": (None, json.dumps(options), "application/json")}
            return self._call("POST", "/jobs", files=files, timeout=max(self.timeout, 600.0)).json()

    def state(self, job_id: str) -> dict:
        return self._call("GET", f"/jobs/{job_id}").json()

    def cancel(self, job_id: str) -> dict:
        return self._call("DELETE", f"/jobs/{job_id}").json()

    def wait(self, job_id: str, progress: Optional[Callable[[int, int], None]] = None,
             poll: float = POLL_S, on_state: Optional[Callable[[dict], None]] = None) -> dict:
        """Poll until the job ends; its last state when done. Failed: ServerError with the job's line;
        cancelled: Cancelled. Ctrl-C (KeyboardInterrupt) cancels the job on the server, then propagates.
        ``on_state(state)`` sees every polled state first (log lines, queue changes)."""
        try:
            while True:
                state = self.state(job_id)
                if on_state is not None:
                    on_state(state)
                if progress is not None and state["progress"][1]:
                    progress(*state["progress"])
                if state["state"] == "done":
                    return state
                if state["state"] == "failed":
                    raise ServerError(f"server {self.url}: the job failed: {state['message']}")
                if state["state"] == "cancelled":
                    raise Cancelled(f"the job {job_id} was cancelled on the server")
                time.sleep(poll)
        except KeyboardInterrupt:
            try:
                self.cancel(job_id)
            except MedSRError:
                pass
            raise

    def download(self, job_id: str, path: str, what: str = "result") -> str:
        """Write the job's result (NRRD with provenance), or with ``what="confidence"`` its confidence
        map, to ``path`` (a temporary name, then renamed)."""
        from MedSRExtension.core import atomic
        response = self._call("GET", f"/jobs/{job_id}/{what}", stream=True, timeout=max(self.timeout, 600.0))

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                for chunk in response.iter_content(1 << 20):
                    f.write(chunk)
        atomic.write_with(path, write)
        return path
