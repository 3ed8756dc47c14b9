"""Ctrl-C and SIGTERM held back for the few lines that must run whole: a finished task's output
rename and its manifest row (batch.runner), so an interruption lands before or after them, never
between."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

_HELD = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def held_interrupts() -> Iterator[None]:
    """Run the block with SIGINT/SIGTERM postponed; one that arrived is delivered on exit (to the
    handlers in place before). Outside the main thread signals cannot be handled, so it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: arrived.append(signum)) for s in _HELD}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if arrived:
        signal.raise_signal(arrived[0])


def ignore_interrupt() -> None:
    """Make this process ignore Ctrl-C (a local worker: the client stops it when the user presses
    Ctrl-C, instead of every worker printing a KeyboardInterrupt traceback). Main thread only."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
