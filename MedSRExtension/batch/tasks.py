"""What a batch worker runs for one input: ``medsr run``'s own pipeline (``pipeline.files.superresolve_file``),
with the task's options parsed and checked exactly as ``medsr run`` checks its arguments.

Only paths and small records cross the scheduler: the worker reads the input from storage every
worker sees and writes the result there, into a staging folder of its own beside the output
(batch.staging); the client renames it into place (batch.commit). A task never touches an output's
final path, so running it again (Dask re-runs tasks whose worker died) changes nothing already
recorded. A failure is returned as a record (status "failed" and the
one-line reason), so one bad input never stops the others. The weights are read once per worker
process (zoo.weights caches verified files), whatever the number of tasks it runs.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import time
from datetime import datetime, timezone

from MedSRExtension.core.errors import MedSRError

PROGRESS_TOPIC = "medsr-batch-progress"
PROGRESS_EVERY_S = 0.5


def run_arguments(options: dict) -> argparse.Namespace:
    """The ``medsr run`` arguments for a task's options (CSV text or command-line values), checked as
    ``medsr run`` checks them (``pipeline.run_options``)."""
    from MedSRExtension.pipeline.run_options import parse_run_options
    return parse_run_options(options)


def _worker_name() -> str:
    try:
        from distributed import get_worker
        return str(get_worker().name)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def _progress_reporter(name: str):
    """Batch progress of this file, sent to the client as a small Dask event (at most twice a second)."""
    try:
        from distributed import get_worker
        worker = get_worker()
    except (ImportError, ValueError):
        return None
    last = [0.0]

    def update(done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            worker.log_event(PROGRESS_TOPIC, {"input": name, "done": done, "total": total})
    return update


def _local_input(source: str, staged: str) -> str:
    """The input as a local path: a ``dicomweb:`` series is pulled (WADO-RS) into the task's staging
    folder, which goes with the commit or the failure, so nothing pulled is left behind."""
    from MedSRExtension.batch.staging import stage_of
    from MedSRExtension.remote.dicomweb import is_dicomweb, parse_series_url, pull_series
    if not is_dicomweb(source):
        return source
    _, _, series = parse_series_url(source)
    return str(pull_series(source, stage_of(staged) / ".pulled" / series))


def run_task(task: dict, run_id: str) -> dict:
    """Run one task ({"input", "output", "options"}) into a new staging folder of run ``run_id`` and
    return its manifest row, plus "staged" (the result to commit; absent when it failed, and then
    nothing is left behind) and "weights_loads" (how many times this worker process has read each
    weight file)."""
    from MedSRExtension.batch.staging import make_stage, stage_of
    from MedSRExtension.batch.manifest import options_text, tree_sha256
    from MedSRExtension.pipeline.files import superresolve_file
    from MedSRExtension.pipeline.run_options import options_from_args, parse_component
    from MedSRExtension.zoo import weights as zoo

    start = time.perf_counter()
    row = {"input": task["input"], "output": task["output"], "options": options_text(task["options"]),
           "worker": _worker_name()}
    staged = None
    try:
        arguments = run_arguments(task["options"])
        options, component = options_from_args(arguments), parse_component(arguments.component)
        row["model"] = options.model
        staged = make_stage(task["output"], run_id)
        source = _local_input(task["input"], staged)
        done = superresolve_file(source, staged, options, component=component,
                                 progress=_progress_reporter(os.path.basename(task["input"].rstrip(os.sep))))
        record = done["provenance"]
        row.update(status="done", input_sha256=tree_sha256(source), output_sha256=tree_sha256(staged),
                   weights=record.get("weights", ""), weights_sha256=record.get("weights_sha256", ""),
                   device=record.get("device", ""), staged=staged)
    except MedSRError as exc:
        row.update(status="failed", reason=str(exc))
    except Exception as exc:  # a bug must not stop the cohort either; its type says where to look
        row.update(status="failed", reason=f"internal error {exc.__class__.__name__}: {exc}"[:300])
    if row["status"] == "failed" and staged is not None:  # the reason names the output, not the stage
        row["reason"] = row["reason"].replace(staged.rstrip(os.sep), task["output"].rstrip(os.sep))
        shutil.rmtree(stage_of(staged), ignore_errors=True)
    row["seconds"] = f"{time.perf_counter() - start:.2f}"
    row["finished"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    row["weights_loads"] = dict(zoo.LOADS)
    return row
