"""One app process per browser session: start, find and free them.

trame keeps one shared state per server process (every connected browser sees and drives the same
page state), and trame-slicer's ``SlicerApp`` owns one MRML scene per process. So each browser
session (a random HttpOnly cookie) gets its own ``MedSRWeb.session_server`` process on a loopback
port, with its own scene, panel, runs and results; the front server (``front``) proxies the
session's requests to it. A run can therefore be seen and cancelled only from the session that
started it. A session with no open page for ``idle_s`` seconds is stopped, which gives its memory
back; a later visit with that cookie starts a fresh one.

No trame and no slicer here: the front process stays small.
"""
from __future__ import annotations

import asyncio
import importlib.util
import os
import secrets
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

from MedSRExtension.core.errors import MedSRError

READY_PREFIX = "MedSR session ready on port "
START_TIMEOUT_S = 120.0
STOP_WAIT_S = 10.0
DEFAULT_IDLE_S = 15 * 60.0
DEFAULT_MAX_SESSIONS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _package_parent(name: str) -> Optional[str]:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin:
        return None
    return os.path.dirname(os.path.dirname(os.path.abspath(spec.origin)))


def child_env(secret: str) -> dict:
    """The session process's environment: this one, with the packages this process imports first on
    its path (a checkout or an installed wheel alike) and the session's secret (never on argv)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", MEDSR_SESSION_SECRET=secret)
    found = [p for p in (_package_parent("MedSRWeb"), _package_parent("MedSRLib"), _package_parent("MedSRExtension"))
             if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(found + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                                               if p]))
    return env


@dataclass
class Session:
    """One browser session's app process."""
    sid: str
    secret: str
    port: int
    process: Optional[asyncio.subprocess.Process] = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    failed: str = ""
    sockets: int = 0
    last_seen: float = field(default_factory=time.monotonic)

    def touch(self) -> None:
        self.last_seen = time.monotonic()

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None


class SessionPool:
    """The running sessions of one front server.

    Args:
        child_args: the arguments every session process gets (input, data folder, device, upload limit).
        idle_s: a session with no open page for this long is stopped.
        max_sessions: more at once are refused (each holds a scene: several hundred MB).
    """

    def __init__(self, child_args: list[str], idle_s: float = DEFAULT_IDLE_S,
                 max_sessions: int = DEFAULT_MAX_SESSIONS):
        self.child_args, self.idle_s, self.max_sessions = list(child_args), float(idle_s), int(max_sessions)
        self.sessions: dict[str, Session] = {}
        self._reaper: Optional[asyncio.Task] = None

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(18)

    async def get(self, sid: str) -> Session:
        """The session's process, started on first use; waits until it listens. MedSRError if it cannot."""
        session = self.sessions.get(sid)
        if session is not None and session.process is not None and not session.alive:
            self.sessions.pop(sid, None)
            session = None
        if session is None:
            if len(self.sessions) >= self.max_sessions:
                raise MedSRError(f"this server already holds {self.max_sessions} sessions (the most it keeps); "
                                 "try again when one has been closed")
            session = Session(sid, secrets.token_urlsafe(24), free_port())
            self.sessions[sid] = session
            asyncio.ensure_future(self._start(session))
        session.touch()
        try:
            await asyncio.wait_for(session.ready.wait(), START_TIMEOUT_S)
        except asyncio.TimeoutError:
            session.failed = session.failed or f"the session did not start within {START_TIMEOUT_S:.0f} s"
        if session.failed:
            self.sessions.pop(sid, None)
            await self._stop(session)
            raise MedSRError(session.failed)
        return session

    async def _start(self, session: Session) -> None:
        command = [sys.executable, "-m", "MedSRWeb.session_server", "--port", str(session.port),
                   "--parent", str(os.getpid()), *self.child_args]
        try:
            session.process = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, env=child_env(session.secret))
        except OSError as exc:
            session.failed = f"the session process could not start: {exc}"
            session.ready.set()
            return
        tag = f"[session {session.pid}]"
        tail: list[str] = []
        async for raw in session.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line.startswith(READY_PREFIX):
                session.ready.set()
            elif line.strip():
                tail = (tail + [line])[-3:]
                print(f"{tag} {line}", flush=True)
        await session.process.wait()
        if not session.ready.is_set():
            session.failed = f"the session process exited with status {session.process.returncode} before it " \
                             f"was ready: {' | '.join(tail) or 'no output'}"
            session.ready.set()
        self.sessions.pop(session.sid, None) if self.sessions.get(session.sid) is session else None

    # --- freeing --------------------------------------------------------------------------------

    def start_reaping(self, every_s: float = 5.0) -> None:
        if self._reaper is None:
            self._reaper = asyncio.ensure_future(self._reap_forever(min(every_s, max(self.idle_s / 4, 0.5))))

    async def _reap_forever(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            await self.reap()

    async def reap(self) -> list[str]:
        """Stop the sessions without an open page for ``idle_s`` seconds; returns their ids."""
        now = time.monotonic()
        idle = [s for s in self.sessions.values()
                if s.ready.is_set() and s.sockets == 0 and now - s.last_seen >= self.idle_s]
        for session in idle:
            self.sessions.pop(session.sid, None)
            print(f"[session {session.pid}] idle for {self.idle_s:g} s: stopped, its memory freed", flush=True)
            await self._stop(session)
        return [s.sid for s in idle]

    @staticmethod
    async def _stop(session: Session) -> None:
        process = session.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_WAIT_S)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()

    async def close(self) -> None:
        """Stop every session (the front server is stopping)."""
        if self._reaper is not None:
            self._reaper.cancel()
        sessions, self.sessions = list(self.sessions.values()), {}
        await asyncio.gather(*(self._stop(s) for s in sessions), return_exceptions=True)

    def pids(self) -> list[int]:
        return [s.pid for s in self.sessions.values() if s.alive]
