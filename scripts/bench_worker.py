"""`make bench`, part 2: a run through the Slicer glue in this process vs in a worker process, and
both while the main thread holds the GIL between polls, as Slicer's Qt event loop does.

Slicer's main thread sits in C++ (the Qt event loop) with the GIL held; Python runs only when a
QTimer fires. ``ctypes.PyDLL(None).usleep`` reproduces that: a C call that keeps the GIL. A worker
*thread* then only runs between polls; a worker *process* does not care. Prints figures; asserts
nothing. Needs the slicer-core wheel (a real MRML scene).

    python scripts/bench_worker.py [--slices 64] [--size 256] [--thread-slices 4]
"""
from __future__ import annotations

import argparse
import ctypes
import os
import sys
import threading
import time


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "MedSRModule")]

import slicer  # noqa: E402

from MedSRExtension.core.volume import Volume  # noqa: E402
from MedSRLib import process, selftest  # noqa: E402

POLL_S = 0.1
_libc = ctypes.PyDLL(None)  # PyDLL: calls keep the GIL, as Slicer's idle event loop does


def idle_like_slicer() -> None:
    _libc.usleep(int(POLL_S * 1e6))


def idle_freely() -> None:
    time.sleep(POLL_S)


def volume(slices: int, size: int) -> Volume:
    return selftest.slow_sample(slices=slices, size=size)


def in_process(node, options) -> float:
    t = time.perf_counter()
    process.superresolve_node(node, **options)
    return time.perf_counter() - t


def in_worker(node, options, idle) -> float:
    t = time.perf_counter()
    job, runner = process.start_superresolve(node, **options)
    while not runner.done:
        idle()
    process.finish_superresolve(job, runner)
    return time.perf_counter() - t


def in_thread(node, options, idle) -> float:
    """The old design: the engine on a Python thread, the main thread idling between polls."""
    t = time.perf_counter()
    job = process.SuperResolveJob(node, **options)
    worker = threading.Thread(target=job.compute, daemon=True)
    worker.start()
    while worker.is_alive():
        idle()
    job.finish()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slices", type=int, default=64)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--model", default="edsr")
    ap.add_argument("--thread-slices", type=int, default=4,
                    help="slices for the (slow) worker-thread comparison; 0 skips it")
    args = ap.parse_args()
    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    options = dict(model=args.model, scale=2.0, device="cpu")
    node = selftest.add_oblique_node(scene, volume(args.slices, args.size))
    print(f"MedSR worker benchmark: {args.model} x2 on {args.slices} slices of {args.size}x{args.size}, CPU, "
          f"poll every {POLL_S * 1000:.0f} ms")
    in_process(node, options)  # warm caches (weights, torch kernels) in this process
    free = in_process(node, options)
    worker_free = in_worker(node, options, idle_freely)
    worker_gil = in_worker(node, options, idle_like_slicer)
    print(f"{'in this process (scripts, tests)':46} {free:7.2f} s")
    print(f"{'worker process, main thread idle':46} {worker_free:7.2f} s  ({worker_free - free:+.2f} s start-up)")
    print(f"{'worker process, main thread holding the GIL':46} {worker_gil:7.2f} s  ({worker_gil / worker_free:.2f}x "
          f"the worker with an idle main thread, {worker_gil / free:.2f}x the in-process run)")
    if args.thread_slices:
        small = selftest.add_oblique_node(scene, volume(args.thread_slices, args.size), name="small")
        base = in_process(small, options)
        held = in_thread(small, options, idle_like_slicer)
        print(f"{'old worker thread, GIL held (' + str(args.thread_slices) + ' slices)':46} {held:7.2f} s  "
              f"({held / base:.0f}x its free run of {base:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
