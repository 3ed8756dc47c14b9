"""A real ``medsr server`` for the tests: a subprocess on 127.0.0.1 (any free port), its output read
on a thread, started, killed (SIGKILL, as a crash or power loss would) and restarted on the same
data folder. Every wait is bounded; ``stop`` ends it and its workers."""
from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START_S = 90.0


def cli(*args, env=None, timeout=240):
    """``medsr ARGS`` in a subprocess; the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "MedSRExtension", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, **(env or {})}, timeout=timeout)


class ServerProcess:
    def __init__(self, data: Path, tokens: list[str], *extra: str):
        self.data, self.tokens, self.extra = Path(data), list(tokens), extra
        self.process = None
        self.url = None
        self.lines: "queue.Queue[str]" = queue.Queue()

    def start(self) -> "ServerProcess":
        command = [sys.executable, "-m", "MedSRExtension", "server", "--host", "127.0.0.1", "--port", "0",
                   "--data", str(self.data), "--device", "cpu", *self.extra]
        for token in self.tokens:
            command += ["--token", token]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1.0)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
            if found:
                self.url = found.group(1)
                return self
        self.stop()
        raise RuntimeError("medsr server did not start")

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)

    def kill(self) -> None:
        """SIGKILL the server process alone (its workers are left, as after a crash)."""
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=20)

    def record(self, job_id: str) -> dict:
        """The job's record as the server keeps it on disk."""
        return json.loads((self.data / "jobs" / job_id / "job.json").read_text())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has ended
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(check, timeout: float = 60.0, step: float = 0.2):
    """Poll ``check()`` until it returns a true value (returned) or ``timeout`` passes (None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    return None
