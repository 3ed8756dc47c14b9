"""Build and run ``medsr server``: the tokens, the data folder, the job slots, uvicorn on a socket."""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Optional, Sequence

from MedSRExtension.core.errors import MedSRError

from . import tokens as tokens_mod
from .jobstore import JobStore
from .scheduler import Scheduler


def default_data() -> Path:
    """Where results are kept unless --data says: $XDG_DATA_HOME/medsr/server (~/.local/share/...)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "medsr" / "server"


def resolve_tokens(given: Sequence[str], token_file: Optional[str], data: Path) -> tuple[list[str], Optional[str]]:
    """The accepted tokens and, when none was given, the new random one (also written to
    ``data/token``, mode 0600) to print."""
    found = [t for t in given if t]
    if token_file:
        try:
            found += tokens_mod.read_token_file(Path(token_file))
        except OSError as exc:
            raise MedSRError(f"cannot read --token-file {token_file}: {exc.strerror}") from None
    if os.environ.get(tokens_mod.TOKEN_ENV):
        found.append(os.environ[tokens_mod.TOKEN_ENV])
    if found:
        return found, None
    token = tokens_mod.new_token()
    tokens_mod.write_token_file(data / "token", token)
    return [token], token


def job_devices(device: str, jobs: Optional[int]) -> list[str]:
    """One device per job slot: with device auto, one slot per GPU (cuda:0, cuda:1, ...), else one."""
    gpus = 0
    if device == "auto":
        import torch
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    count = jobs if jobs else max(1, gpus)
    if count < 1:
        raise MedSRError(f"--jobs must be at least 1, got {count}")
    return [f"cuda:{n % gpus}" for n in range(count)] if gpus else [device] * count


def serve(host: str, port: int, tokens: list[str], data: Path, devices: list[str], max_upload_mb: float,
          keep_hours: float, max_queue: int, announce=print) -> int:
    """Run the server until SIGINT/SIGTERM. ``announce(line)`` hears the address once listening."""
    import uvicorn

    from .app import build_app
    store = JobStore(data, keep_hours)
    recovered = store.recover()
    scheduler = Scheduler(store, devices, max_queue)
    max_upload = int(max_upload_mb * 2**20)
    app = tokens_mod.Guard(build_app(store, scheduler, max_upload), tokens, max_upload)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise MedSRError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port") from None
    sock.listen(64)
    bound = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=3, lifespan="off")
    server = uvicorn.Server(config)
    scheduler.start()
    announce(f"medsr server: listening on http://{host}:{bound} ({len(devices)} job(s) at once on "
             f"{', '.join(sorted(set(devices)))}; {len(recovered)} earlier job(s) in {data})")
    sys.stdout.flush()
    try:
        server.run(sockets=[sock])
    finally:
        scheduler.stop()
        sock.close()
    return 0
