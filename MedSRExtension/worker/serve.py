"""The worker process: runs ``super_resolve`` on a request folder and reports on stdout.

Why a process: inside 3D Slicer the main thread holds Python's GIL while it idles in the Qt event
loop, so a worker *thread* only runs between the GUI's polls (measured 65x slower). A separate
process runs at full speed, can be killed at once (Cancel), and a crash in it (out of memory, a GPU
driver fault) cannot take the application down.

The request folder, the event lines and the result files are ``worker.protocol``'s.

Run as ``python -m MedSRExtension.worker.serve FOLDER``. Never imports slicer, vtk or qt.
"""
from __future__ import annotations

import os
import sys
import time
import traceback
import warnings
from typing import Optional

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.volume import Volume

from .protocol import emit, read_request, result_meta, write_result


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
        spread = result.meta.get("confidence")
        write_result(folder, result, result_meta(result), spread.array if isinstance(spread, Volume) else None)
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
