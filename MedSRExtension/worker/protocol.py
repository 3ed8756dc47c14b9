"""The worker protocol: what a worker process and the clients that follow it (the Slicer panel's
runner, the server's job, the remote worker) agree on. Imports only ``core`` (no torch), so a client
can read it without loading the engine.

One request folder, private to one run:

- ``input.npy``: the voxels [k, j, i] (saved without pickle); ``request.json``: the geometry
  (spacing, origin, direction in LPS, written with ``repr`` so it round-trips exactly), the
  ``InferenceOptions.to_dict()`` (an unknown key is a bad-input error) and, when known, ``meta`` with
  the slice thickness (``thickness_ijk``, ``thickness_source``: see ``core.slice_header``; absent or
  malformed = unknown, so older requests still run).
- The worker prints events as lines ``MEDSR-EVENT {json}`` on stdout: ``progress`` (done, total),
  ``log`` (message), ``result`` (the result files are complete), ``error`` (kind, message); a worker
  may add kinds of its own (the remote worker's ``job``). Any other output is log text.
- On success ``result.npy`` and ``result.json`` exist (written under temporary names and renamed);
  ``result.json`` holds the geometry and, after an adapted run, ``adapt`` (what the adaptation used),
  read back into ``Volume.meta["adapt"]``, and the ``RESULT_META_KEYS`` the run recorded; with
  ``confidence`` asked, ``confidence.npy`` too (on the result's grid), read back into
  ``Volume.meta["confidence"]``.
- A file ``cancel`` in the folder asks a worker that cannot be signalled (Windows) to stop.
"""
from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from MedSRExtension.core import atomic
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.volume import Volume

EVENT_PREFIX = "MEDSR-EVENT "
REQUEST, INPUT, RESULT, RESULT_META = "request.json", "input.npy", "result.npy", "result.json"
CONFIDENCE, CANCEL = "confidence.npy", "cancel"
EVENTS = ("progress", "log", "result", "error")
#: What a result's ``meta`` carries across the process boundary besides ``adapt`` and ``confidence``.
RESULT_META_KEYS = ("gate", "values", "model_used", "profile", "slice_thickness", "consistency")
SERVE_MODULE = "MedSRExtension.worker.serve"
#: The folder holding the MedSRExtension package, put on a worker's PYTHONPATH (PythonSlicer does not
#: have the module folders of scripted modules on its path).
ENGINE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# --- the request and result files ----------------------------------------------------------------

def geometry(volume: Volume) -> dict:
    """Spacing, origin and direction as JSON floats (they round-trip exactly, unlike a text header)."""
    return {"spacing": [float(s) for s in volume.spacing], "origin": [float(o) for o in volume.origin],
            "direction": np.asarray(volume.direction, dtype=float).tolist()}


def _volume(array: np.ndarray, meta: dict, extra: Optional[dict] = None) -> Volume:
    return Volume(array, tuple(meta["spacing"]), tuple(meta["origin"]), np.array(meta["direction"], dtype=float),
                  dict(extra or {}))


def _thickness(meta: Any) -> dict:
    """The slice-thickness entries of a Volume's meta as plain JSON values; ``{}`` when absent or malformed."""
    if not isinstance(meta, dict):
        return {}
    values = meta.get("thickness_ijk")
    if not isinstance(values, (list, tuple)) or len(values) != 3:
        return {}
    try:
        ijk = tuple(None if v is None else float(v) for v in values)
    except (TypeError, ValueError):
        return {}
    if all(v is None for v in ijk) or any(v is not None and not (np.isfinite(v) and v > 0) for v in ijk):
        return {}
    return {"thickness_ijk": ijk, "thickness_source": str(meta.get("thickness_source") or "the file header")}


def _plain(value: Any) -> Any:
    """JSON for what ``json`` does not know (numpy scalars in a result's meta)."""
    return value.item() if isinstance(value, np.generic) else str(value)


def write_array(folder: str, name: str, array: np.ndarray) -> None:
    """``array`` as ``folder/name`` (.npy, never pickled), under a temporary name and then renamed."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)
    atomic.write_with(os.path.join(folder, name), write)


def write_request(folder: str, volume: Volume, options: dict) -> None:
    """Write ``volume`` (exact geometry) and the JSON-serialisable ``options`` into ``folder``."""
    body = {"geometry": geometry(volume), "options": options}
    thickness = _thickness(volume.meta)
    if thickness:
        body["meta"] = thickness
    try:  # serialised before the voxels are written, so a bad option costs nothing
        request = json.dumps(body)
    except TypeError as exc:
        raise MedSRError(f"a run option cannot be passed to the worker process ({exc}); use plain values") from None
    write_array(folder, INPUT, volume.array)
    atomic.write_text(os.path.join(folder, REQUEST), request)


def read_request(folder: str) -> tuple[Volume, dict]:
    """The input Volume (with its slice thickness in ``meta`` when the request has one) and the options
    dict of the request in ``folder``."""
    with open(os.path.join(folder, REQUEST), encoding="utf-8") as f:
        request = json.load(f)
    volume = _volume(np.load(os.path.join(folder, INPUT), allow_pickle=False), request["geometry"],
                     _thickness(request.get("meta")))
    return volume, request["options"]


def result_meta(result: Volume) -> dict:
    """What of ``result.meta`` travels in ``result.json`` (``adapt`` and the ``RESULT_META_KEYS``)."""
    meta = {"adapt": dict(result.meta["adapt"])} if isinstance(result.meta.get("adapt"), dict) else {}
    meta.update({k: result.meta[k] for k in RESULT_META_KEYS if k in result.meta})
    return meta


def write_result(folder: str, result: Volume, meta: dict, confidence: Optional[np.ndarray] = None) -> None:
    """The result files: ``confidence.npy`` (when given), ``result.npy``, then ``result.json`` (the
    geometry and ``meta``), last because it says that all is there."""
    if confidence is not None:
        write_array(folder, CONFIDENCE, confidence)
    write_array(folder, RESULT, result.array)
    atomic.write_text(os.path.join(folder, RESULT_META), json.dumps({"geometry": geometry(result), **meta},
                                                                     default=_plain))


def read_result_meta(folder: str) -> dict:
    """The ``result.json`` of a finished run in ``folder``."""
    with open(os.path.join(folder, RESULT_META), encoding="utf-8") as f:
        return json.load(f)


def read_result(folder: str) -> Volume:
    """The result Volume of a finished run in ``folder`` (``meta["adapt"]`` after an adapted run)."""
    meta = read_result_meta(folder)
    extra = {"adapt": meta["adapt"]} if isinstance(meta.get("adapt"), dict) else {}
    extra.update({k: meta[k] for k in RESULT_META_KEYS if k in meta})
    if os.path.exists(os.path.join(folder, CONFIDENCE)):
        extra["confidence"] = _volume(np.load(os.path.join(folder, CONFIDENCE), allow_pickle=False), meta["geometry"])
    return _volume(np.load(os.path.join(folder, RESULT), allow_pickle=False), meta["geometry"], extra)


# --- event lines ---------------------------------------------------------------------------------

def parse_event(line: str) -> Optional[dict]:
    """The event of one stdout line, or None for plain log text."""
    if not line.startswith(EVENT_PREFIX):
        return None
    try:
        event = json.loads(line[len(EVENT_PREFIX):])
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def emit(event: str, **fields: Any) -> None:
    """Print one event line and flush it, so the reader sees it at once."""
    sys.stdout.write(EVENT_PREFIX + json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


@dataclass
class Report:
    """What a worker's output said so far: progress, log lines, whether the result is complete, and
    the error it reported as (kind, message)."""
    progress: tuple[int, int] = (0, 0)
    log: list[str] = field(default_factory=list)
    got_result: bool = False
    error: Optional[tuple[str, str]] = None

    def take(self, line: str) -> Optional[dict]:
        """Fold one output line in; returns its event (a kind outside ``EVENTS`` is left to the caller),
        or None for log text."""
        event = parse_event(line)
        if event is None:
            if line.strip():
                self.log.append(line)
            return None
        kind = event["event"]
        if kind == "progress":
            self.progress = (int(event.get("done", 0)), int(event.get("total", 0)))
        elif kind == "log":
            self.log.append(str(event.get("message", "")))
        elif kind == "result":
            self.got_result = True
        elif kind == "error":
            self.error = (str(event.get("kind", "Error")), str(event.get("message", "")))
            self.log.append(f"error: {self.error[1]}")
        return event

    def failure(self) -> Optional[str]:
        """The one-line message of the error the worker reported, or None when it reported none."""
        if self.error is None:
            return None
        if self.error[0] == "MedSRError":
            return self.error[1]
        return f"super-resolution failed in the worker: {self.error[0]}: {self.error[1]}"


# --- the process ----------------------------------------------------------------------------------

def serve_command(python: str, folder: str) -> list[str]:
    """The command line of a worker serving the request in ``folder`` with the interpreter ``python``."""
    return [python, "-m", SERVE_MODULE, folder]


def worker_env(extra: Optional[dict] = None) -> dict:
    """This process's environment for a worker: the engine on its path, output unbuffered, ``extra`` added."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ENGINE_PARENT, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def describe_exit(code: int) -> str:
    """'was killed by SIGKILL (often ...)' or 'exited with status N', for a worker that ended early."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (often the system running out of memory)" if -code == getattr(signal, "SIGKILL", 9) else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {code}"
