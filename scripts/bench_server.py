"""Per-job overhead of ``medsr run --server`` against a local ``medsr run`` (README "In the hospital").

Starts a ``medsr server`` on 127.0.0.1 (CPU, one job at a time), writes a 256x256x40 volume, and times
(median of REPEATS) the local CLI run, the remote CLI run, and the remote phases through
``ServerClient``: upload, queue (until a worker runs it), worker run, download + write. Prints figures.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "Testing")]
REPEATS = 3
OPTIONS = ["--model", "bicubic", "--mode", "inplane", "--scale", "2", "--quiet"]


def _timed(command, env=None) -> float:
    import os
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    from medsr_server import ServerProcess, wait_for

    from MedSRExtension import Volume, save_volume
    from MedSRExtension.remote import ServerClient
    from MedSRExtension.remote.files import superresolve_remote  # noqa: F401 (the path timed)
    work = Path(tempfile.mkdtemp(prefix="medsr-bench-server-"))
    rng = np.random.default_rng(0)
    volume = Volume(rng.normal(100, 30, (40, 256, 256)).astype(np.float32), (0.8, 0.8, 3.0), (0, 0, 0), np.eye(3), {})
    src = work / "vol.nii.gz"
    save_volume(volume, src)
    token = "bench-token"
    server = ServerProcess(work / "data", [token], "--jobs", "1").start()
    try:
        run = [sys.executable, "-m", "MedSRExtension", "run", str(src)]
        local = [_timed(run + [str(work / f"l{n}.nrrd")] + OPTIONS) for n in range(REPEATS)]
        remote = [_timed(run + [str(work / f"r{n}.nrrd")] + OPTIONS + ["--server", server.url], {"MEDSR_TOKEN": token})
                  for n in range(REPEATS)]
        client, phases = ServerClient(server.url, token), []
        for n in range(REPEATS):
            t0 = time.perf_counter()
            job = client.submit(str(src), {"model": "bicubic", "mode": "inplane", "scale": 2})
            t1 = time.perf_counter()
            wait_for(lambda: client.state(job["id"])["state"] != "queued", timeout=120, step=0.02)
            t2 = time.perf_counter()
            client.wait(job["id"], poll=0.02)
            t3 = time.perf_counter()
            client.download(job["id"], str(work / f"d{n}.nrrd"))
            phases.append((t1 - t0, t2 - t1, t3 - t2, time.perf_counter() - t3))
    finally:
        server.stop()
    med = statistics.median
    print(f"256x256x40 float32 x2 in-plane, bicubic, CPU; median of {REPEATS}")
    print(f"local  medsr run:            {med(local):6.2f} s")
    print(f"remote medsr run --server:   {med(remote):6.2f} s  (overhead {med(remote) - med(local):+.2f} s)")
    names = ("upload + checks", "queue", "worker run (process start, torch import, run, NRRD write)", "download")
    for name, values in zip(names, zip(*phases)):
        print(f"  {name:58} {med(values):6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
