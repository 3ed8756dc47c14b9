"""The worker process: runs ``super_resolve`` on a request folder and reports on stdout.

Why a process: inside 3D Slicer the main thread holds Python's GIL while it idles in the Qt event
loop, so a worker *thread* only runs between the GUI's polls (measured 65x slower). A separate
process runs at full speed, can be killed at once (Cancel), and a crash in it (out of memory, a GPU
driver fault) cannot take the application down.

Protocol (one request folder, private to one run):

- ``input.npy``: the voxels [k, j, i] (saved without pickle); ``request.json``: the geometry
  (spacing, origin, direction in LPS, written with ``repr`` so it round-trips exactly), the
  ``InferenceOptions.to_dict()`` (an unknown key is a bad-input error) and, when known, ``meta`` with
  the slice thickness (``thickness_ijk``, ``thickness_source``: see ``core.slice_header``; absent or
  malformed = unknown, so older requests still run).
- The worker prints events as lines ``MEDSR-EVENT {json}`` on stdout: ``progress`` (done, total),
  ``log`` (message), ``result`` (the result files are complete), ``error`` (kind, message). Any
  other output (warnings, library messages) is log text.
- On success ``result.npy`` and ``result.json`` exist (written under temporary names and renamed);
  ``result.json`` holds the geometry and, after an adapted run, ``adapt`` (what the adaptation used:
  the slice profile and its source, steps, loss, seconds), read back into ``Volume.meta["adapt"]``;
  with ``confidence`` asked, ``confidence.npy`` too (how sure, on the result's grid), read back into
  ``Volume.meta["confidence"]``.

Run as ``python -m MedSRExtension.worker.serve FOLDER``. Never imports slicer, vtk or qt.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
import warnings
from typing import Any, Optional

import numpy as np

from MedSRExtension.core import atomic
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.volume import Volume

EVENT_PREFIX = "MEDSR-EVENT "
REQUEST, INPUT, RESULT, RESULT_META = "request.json", "input.npy", "result.npy", "result.json"
CONFIDENCE = "confidence.npy"


def _geometry(volume: Volume) -> dict:
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


def _save_npy(folder: str, name: str, array: np.ndarray) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)
    atomic.write_with(os.path.join(folder, name), write)


def _save_json(folder: str, name: str, data: dict) -> None:
    atomic.write_text(os.path.join(folder, name), json.dumps(data, default=_plain))


def write_request(folder: str, volume: Volume, options: dict) -> None:
    """Write ``volume`` (exact geometry) and the JSON-serialisable ``options`` into ``folder``."""
    body = {"geometry": _geometry(volume), "options": options}
    thickness = _thickness(volume.meta)
    if thickness:
        body["meta"] = thickness
    try:  # serialised before the voxels are written, so a bad option costs nothing
        request = json.dumps(body)
    except TypeError as exc:
        raise MedSRError(f"a run option cannot be passed to the worker process ({exc}); use plain values") from None
    _save_npy(folder, INPUT, volume.array)
    atomic.write_text(os.path.join(folder, REQUEST), request)


def read_result(folder: str) -> Volume:
    """The result Volume of a finished run in ``folder`` (``meta["adapt"]`` after an adapted run)."""
    with open(os.path.join(folder, RESULT_META), encoding="utf-8") as f:
        meta = json.load(f)
    extra = {"adapt": meta["adapt"]} if isinstance(meta.get("adapt"), dict) else {}
    extra.update({k: meta[k] for k in ("gate", "values", "model_used", "profile", "slice_thickness") if k in meta})
    if os.path.exists(os.path.join(folder, CONFIDENCE)):
        extra["confidence"] = _volume(np.load(os.path.join(folder, CONFIDENCE), allow_pickle=False), meta["geometry"])
    return _volume(np.load(os.path.join(folder, RESULT), allow_pickle=False), meta["geometry"], extra)


def read_request(folder: str) -> tuple[Volume, dict]:
    """The input Volume (with its slice thickness in ``meta`` when the request has one) and the options
    dict of the request in ``folder``."""
    with open(os.path.join(folder, REQUEST), encoding="utf-8") as f:
        request = json.load(f)
    volume = _volume(np.load(os.path.join(folder, INPUT), allow_pickle=False), request["geometry"],
                     _thickness(request.get("meta")))
    return volume, request["options"]


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


def _size(volume: Volume) -> str:
    return "x".join(str(n) for n in volume.shape_ijk)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    emit("log", message=f"warning: {message}")


def run(folder: str) -> int:
    """Serve the request in ``folder``; returns the process exit status (0, 2 bad input, 1 failure)."""
    warnings.showwarning = _show_warning
    try:
        volume, request_options = read_request(folder)
        from MedSRExtension.inference.options import InferenceOptions
        options = InferenceOptions.from_dict(request_options)
        import torch

        from MedSRExtension.inference.devices import describe, resolve_device
        from MedSRExtension.pipeline import run_pipeline
        emit("log", message=f"worker pid {os.getpid()}, torch {torch.__version__}, "
                            f"device {describe(resolve_device(options.device))}")
        emit("log", message=f"model {options.model}, scale {options.scale}, mode "
                            f"{options.mode}, input {_size(volume)} voxels")
        start = time.perf_counter()
        result = run_pipeline(volume, options,
                               progress=lambda done, total: emit("progress", done=done, total=total))
        if isinstance(result.meta.get("confidence"), Volume):  # before result.json, which says all is there
            _save_npy(folder, CONFIDENCE, result.meta["confidence"].array)
        _save_npy(folder, RESULT, result.array)
        result_meta = {"geometry": _geometry(result)}
        if isinstance(result.meta.get("adapt"), dict):
            result_meta["adapt"] = dict(result.meta["adapt"])
        for key in ("gate", "values", "model_used", "profile", "slice_thickness"):
            if key in result.meta:
                result_meta[key] = result.meta[key]
        _save_json(folder, RESULT_META, result_meta)
        emit("log", message=f"done in {time.perf_counter() - start:.1f} s: "
                            f"{_size(result)} voxels")
        emit("result")
        return 0
    except MedSRError as exc:
        emit("error", kind="MedSRError", message=str(exc))
        return 2
    except Exception as exc:  # reported to the GUI with the traceback in the log
        for text in traceback.format_exc().splitlines():
            emit("log", message=text)
        emit("error", kind=type(exc).__name__, message=str(exc))
        return 1


def main(argv: Optional[list] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not os.path.isdir(args[0]):
        print("usage: python -m MedSRExtension.worker.serve REQUEST_FOLDER", file=sys.stderr)
        return 2
    return run(args[0])


if __name__ == "__main__":
    sys.exit(main())
