"""Start ``medsr serve``: check the arguments, then run the front server (``front``) that gates users
by token and gives each browser session its own app process (``sessions``, ``session_server``).

``$MEDSR_SESSION_IDLE_S`` (default 900) sets how long a session with no open page is kept;
``$MEDSR_MAX_SESSIONS`` (default 8) how many may run at once.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Optional

from MedSRExtension.core.errors import MedSRError

from . import access, urls
from .sessions import DEFAULT_IDLE_S, DEFAULT_MAX_SESSIONS, SessionPool, free_port

for _needed in ("trame_slicer", "aiohttp"):  # the web extra, found without importing it (the front stays small)
    if importlib.util.find_spec(_needed) is None:
        raise ImportError(f"No module named '{_needed}'", name=_needed)


def _number_from_env(name: str, default: float) -> float:
    text = os.environ.get(name, "")
    try:
        return float(text) if text else default
    except ValueError:
        raise MedSRError(f"${name}={text!r} is not a number") from None


def session_args(input_path: Optional[str], data: Optional[str], device: str, upload_limit_mb: float) -> list[str]:
    """What every session process is started with (absolute paths: it may run elsewhere)."""
    args = [str(Path(input_path).resolve())] if input_path is not None else []
    if data:
        args += ["--data", str(Path(data).expanduser().resolve())]
    return args + ["--device", device, "--upload-limit-mb", f"{upload_limit_mb:g}"]


def serve(input_path: Optional[str] = None, host: str = "127.0.0.1", port: int = 8080, data: Optional[str] = None,
          token: Optional[str] = None, device: str = "auto", upload_limit_mb: float = access.DEFAULT_UPLOAD_LIMIT_MB,
          open_browser: bool = False) -> int:
    """Serve the MedSR page until interrupted. Checks its arguments before anything starts."""
    if input_path is not None:
        if not Path(input_path).is_file():
            raise MedSRError(f"INPUT {input_path}: no such file; give a volume file (NIfTI, NRRD, MHA)")
        if not access.is_volume_name(input_path):
            raise MedSRError(f"INPUT {input_path}: not a volume file; give NIfTI, NRRD, MHA or DICOM")
    access.DataFolder(data)  # refuses a missing folder now, not on the first click
    required = access.choose_token(host, token)
    port = port or free_port()
    from aiohttp import web

    from .front import make_front_app

    pool = SessionPool(session_args(input_path, data, device, upload_limit_mb),
                       idle_s=_number_from_env("MEDSR_SESSION_IDLE_S", DEFAULT_IDLE_S),
                       max_sessions=int(_number_from_env("MEDSR_MAX_SESSIONS", DEFAULT_MAX_SESSIONS)))

    def ready():
        lines = urls.server_lines(host, port, required)
        for line in lines:
            print(line, flush=True)
        if open_browser:
            import webbrowser
            webbrowser.open(lines[0].split()[-1])

    app = make_front_app(pool, required, on_ready=ready)
    web.run_app(app, host=host, port=port, print=None, handle_signals=True, access_log=None)
    return 0


if __name__ == "__main__":  # pragma: no cover - `medsr serve` is the entry point
    sys.exit(serve(*sys.argv[1:2]))
