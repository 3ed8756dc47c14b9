"""A worker process that sends its request to a ``medsr server`` instead of running it here.

It speaks the worker protocol (``MedSRExtension.worker.protocol`` (a request folder in, event lines on stdout,
result files out), so a GUI follows it exactly as it follows a local worker; what happens in between
is upload, poll and download. Run as ``python -m MedSRExtension.remote.worker FOLDER URL NAME`` with
the token in the environment variable ``MEDSR_TOKEN`` (never on the command line, where ``ps`` shows
it; it is removed from the environment at start and never printed).

- The input goes up as MHA (geometry written exactly: spacing, origin and direction round-trip bit
  for bit) named ``NAME.mha``; the result comes back with the exact geometry of the job record.
- Extra events: ``job`` (id, state: queued | running) whenever the server's state of the job changes.
  Server log lines arrive as ``log`` events prefixed "server: ".
- Cancel: SIGTERM, or a file ``cancel`` in the folder (seen between polls; on Windows, where a
  terminate cannot be caught), cancels the job on the server (DELETE) before the process ends.
- ``result.json`` holds, besides the geometry, ``provenance``: the record the server wrote into the
  result, which says what ran there (device, weights and their sha256).
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Optional


from MedSRExtension.core.errors import MedSRError
from MedSRExtension.worker import protocol

from .client import ServerClient, ServerError
from .credentials import SERVER_TOKEN_ENV

UPLOAD = "upload.mha"
CANCEL = protocol.CANCEL
DOWNLOAD = "download.nrrd"


class Stopped(BaseException):
    """SIGTERM arrived: the run was cancelled."""


def _stop(signum, frame) -> None:
    raise Stopped()


def refusal(exc: ServerError, url: str) -> str:
    """The one line a user sees for a refused request (a wrong token named as such)."""
    if exc.status == 401:
        return (f"the MedSR server at {url} refused the token (HTTP 401); enter the token the server printed "
                "or its administrator gave you")
    return str(exc)


def _result_meta(record: dict) -> dict:
    """The ``result.json`` entries besides the geometry: the server's provenance record and what of it
    the panel shows (the do-no-harm check, the adaptation's slice profile)."""
    meta = {"provenance": record}
    if record.get("gate", "-") != "-":
        meta["gate"] = record["gate"]
    if record.get("adapt", "off") != "off":
        meta["adapt"] = {"profile": record.get("slice_profile", "-")}
    return meta


def _check_cancel(folder: str) -> None:
    if os.path.exists(os.path.join(folder, CANCEL)):
        raise Stopped()


def _follow(client: ServerClient, job_id: str, folder: str) -> dict:
    """Wait for the job (``ServerClient.wait``), reporting state changes, progress and server log lines
    as worker events, and stopping at the panel's cancel file; its last state."""
    seen = {"state": "queued", "progress": None, "log": 0}

    def report(state: dict) -> None:
        _check_cancel(folder)
        if state["state"] != seen["state"] and state["state"] in ("queued", "running"):
            seen["state"] = state["state"]
            protocol.emit("job", id=job_id, state=seen["state"])
        log = state.get("log") or []
        for line in log[seen["log"]:]:
            protocol.emit("log", message=f"server: {line}")
        seen["log"] = len(log)
        progress = tuple(state.get("progress") or (0, 0))
        if progress != seen["progress"] and progress[1]:
            seen["progress"] = progress
            protocol.emit("progress", done=progress[0], total=progress[1])

    return client.wait(job_id, on_state=report)


def _cancel_on_server(url: str, token: str, job_id: Optional[str]) -> None:
    if job_id is None:
        return
    try:  # a fresh client: the interrupted one may hold a half-used connection
        ServerClient(url, token, timeout=5.0).cancel(job_id)
        protocol.emit("log", message=f"job {job_id} cancelled on the server")
    except MedSRError as exc:
        protocol.emit("log", message=f"the job {job_id} could not be cancelled on the server: {exc}")


def with_header_thickness(volume, options: dict) -> dict:
    """The run options with the node's slice thickness along the through-plane axis as ``thickness_mm``
    (the MHA upload cannot carry it, and without it the server would estimate the profile and might
    read other weights than a local run); unchanged when the options give one or the node has none."""
    from MedSRExtension.core.volume import AXES
    from MedSRExtension.inference.engine import resolve_factors
    from MedSRExtension.inference.options import InferenceOptions
    known = (volume.meta.get("thickness_ijk") or (None, None, None)) if isinstance(volume.meta, dict) else ()
    run = InferenceOptions.from_dict(options).for_volume(volume)[0]
    if options.get("thickness_mm") is not None or run.mode != "throughplane" or not any(known):
        return options
    _, axis = resolve_factors(volume, run.mode, run.axis, scale=None if run.spacing is not None else run.scale,
                              spacing=run.spacing)
    value = known[AXES.index(axis)]
    return options if value is None else {**options, "thickness_mm": float(value)}


def run(folder: str, url: str, name: str) -> int:
    """Send the request in ``folder`` to ``url``; the exit status (0, 2 refused or failed, 1 error, 3 cancelled)."""
    token = os.environ.pop(SERVER_TOKEN_ENV, "")
    signal.signal(signal.SIGTERM, _stop)
    job_id = None
    try:
        from MedSRExtension.core.volume_io import save_volume
        from MedSRExtension.remote.files import _result
        volume, options = protocol.read_request(folder)
        options = with_header_thickness(volume, options)
        upload = Path(folder) / UPLOAD
        save_volume(volume, upload)
        del volume
        client = ServerClient(url, token)
        protocol.emit("log", message=f"sending {upload.stat().st_size / 2**20:.1f} MB to the MedSR server at {url}")
        job_id = client.submit(str(upload), options, name=f"{name}.mha")["id"]
        upload.unlink()
        protocol.emit("job", id=job_id, state="queued")
        state = _follow(client, job_id, folder)
        protocol.emit("log", message=f"job {job_id} done; downloading the result")
        result, record = _result(client.download(job_id, str(Path(folder) / DOWNLOAD)), state["geometry"])
        confidence = None
        if state.get("confidence"):  # asked for (the panel's "Show how sure") and made by the run
            spread, _ = _result(client.download(job_id, str(Path(folder) / "confidence.nrrd"), "confidence"),
                                state["geometry"])
            confidence = spread.array
        protocol.write_result(folder, result, _result_meta(record), confidence)
        protocol.emit("result")
        return 0
    except Stopped:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second Cancel must not cut the DELETE short
        _cancel_on_server(url, token, job_id)
        return 3
    except ServerError as exc:
        protocol.emit("error", kind="MedSRError", message=refusal(exc, url))
        return 2
    except MedSRError as exc:
        protocol.emit("error", kind="MedSRError", message=str(exc))
        return 2
    except Exception as exc:
        protocol.emit("error", kind=type(exc).__name__, message=str(exc))
        return 1


def main(argv: Optional[list] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or not os.path.isdir(args[0]):
        print("usage: MEDSR_TOKEN=... python -m MedSRExtension.remote.worker REQUEST_FOLDER URL NAME", file=sys.stderr)
        return 2
    return run(*args)


if __name__ == "__main__":
    sys.exit(main())
