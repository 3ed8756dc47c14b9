"""Run a cohort's tasks on a Dask client: skip what ``--resume`` verifies, submit the rest, and as each
task ends, put its result in place and record its row in OUTDIR/manifest.csv, with a progress bar
over files (with the current file's batches).

Tasks write only private staging folders (batch.staging); the client alone renames a result into
place and records its row, in one step that Ctrl-C and SIGTERM cannot split (batch.interrupts), and
then releases the task so Dask never re-runs it after a worker dies. Whatever worker deaths, retries
or interruptions happen, a row says done only for a file whose sha256 it holds. Ctrl-C records the
tasks that had already finished before it stops.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Optional

from MedSRExtension.batch.commit import check_target, commit
from MedSRExtension.batch.inputs import Task
from MedSRExtension.batch.interrupts import held_interrupts
from MedSRExtension.batch.manifest import NAME, Manifest
from MedSRExtension.batch.staging import new_run_id, sweep_run, sweep_stale
from MedSRExtension.batch.tasks import PROGRESS_TOPIC, run_task
from MedSRExtension.core.errors import MedSRError


class _Bar:
    """tqdm over files, with the latest per-file progress from the workers as its postfix."""

    def __init__(self, total: int, quiet: bool):
        self.bar = None
        if not quiet:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc="medsr batch", unit="file", file=sys.stderr)

    def file_progress(self, event) -> None:
        msg = event[1] if isinstance(event, tuple) else event
        if self.bar is not None and isinstance(msg, dict):
            self.bar.set_postfix_str(f"{msg.get('input')}: batch {msg.get('done')}/{msg.get('total')}", refresh=True)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _failed(task: Task, reason: str) -> dict:
    return {"input": task.input, "output": task.output, "status": "failed", "reason": reason[:300]}


def _stored(row: dict, store: str) -> dict:
    """The row after storing its committed DICOM series at ``store``: its SeriesInstanceUID in
    "stored", or failed with the reason (the result stays in its output; --resume stores it again)."""
    from MedSRExtension.remote.dicomweb import store_series
    try:
        uid = store_series(store, sorted(Path(row["output"]).glob("*.dcm")))
    except MedSRError as exc:
        return {**row, "status": "failed", "reason": f"the result is in {row['output']}, but {exc}"[:300]}
    return {**row, "stored": uid}


def _plan(tasks: list[Task], outdir: os.PathLike | str, resume: bool, notice: Callable[[str], None],
          store: Optional[str] = None):
    """The manifest to keep (verified rows on --resume), rows known before any work, and what to run."""
    if resume:
        removed = sweep_stale(outdir, [t.output for t in tasks], NAME)
        if removed:
            notice(f"removed {len(removed)} staging folder(s) or temporary file(s) an interrupted run left "
                   f"(e.g. {removed[0]})")
    old = Manifest.load(outdir) if resume else Manifest(outdir)
    manifest = Manifest(outdir)
    results: dict[int, dict] = {}
    todo = []
    for i, task in enumerate(tasks):
        row = old.verified(task, store) if resume else None
        if row is not None:
            manifest.rows[(task.input, task.output)] = row
            results[i] = {**row, "status": "skipped"}
            continue
        try:
            check_target(task.output)
            todo.append(i)
        except MedSRError as exc:  # an output the commit could not put in place: refused before any work
            results[i] = _failed(task, str(exc))
            manifest.rows[(task.input, task.output)] = {**results[i]}
    manifest.save()
    return manifest, results, todo


def _submit(client, tasks: list[Task], todo: list[int], run_id: str, resources: Optional[dict]) -> dict:
    """{future: task index} of the tasks to run, each under a key naming the run, its index and its input."""
    futures = {}
    for i in todo:
        key = f"medsr-{run_id}-{i}-{os.path.basename(tasks[i].input.rstrip(os.sep))}"
        futures[client.submit(run_task, tasks[i].to_dict(), run_id, pure=False, key=key,
                              resources=resources or None)] = i
    return futures


def run_batch(tasks: list[Task], outdir: os.PathLike | str, client, resources: Optional[dict] = None,
              resume: bool = False, quiet: bool = False, run_id: Optional[str] = None,
              notice: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
              store: Optional[str] = None) -> list[dict]:
    """Run ``tasks`` on ``client`` and return one row per task, in input order, with status done,
    skipped (``resume``: a verified earlier output) or failed (with its reason). ``run_id`` names this
    run's staging folders (removed when it ends); ``notice`` gets one-line messages; ``store``: a
    DICOMweb service each committed DICOM series is stored in (STOW-RS), its UID in the row."""
    from distributed import as_completed

    Path(outdir).mkdir(parents=True, exist_ok=True)
    run_id = run_id or new_run_id()
    manifest, results, todo = _plan(tasks, outdir, resume, notice, store)
    bar = _Bar(len(tasks), quiet)
    for _ in results:
        bar.advance()
    futures: dict = {}

    def finish(future) -> None:
        i = futures[future]
        task = tasks[i]
        try:
            row = future.result()
        except Exception as exc:  # the worker died (KilledWorker) or the task could not run
            row = _failed(task, f"the task did not finish ({exc.__class__.__name__}: {exc})")
        with held_interrupts():  # the rename, the row and forgetting the task: all or nothing
            if row.get("status") == "done":
                try:
                    commit(row["staged"], task.output)
                except MedSRError as exc:
                    row = _failed(task, str(exc))
            manifest.record(row)
            results[i] = row
            del futures[future]
            future.release()  # Dask must not re-run it when the worker that holds it dies
        if store and row.get("status") == "done":  # after the commit: a retried task never stores twice
            row = _stored(row, store)
            with held_interrupts():
                manifest.record(row)
                results[i] = row
        bar.advance()

    client.subscribe_topic(PROGRESS_TOPIC, bar.file_progress)
    try:
        futures.update(_submit(client, tasks, todo, run_id, resources))
        try:
            for future in as_completed(list(futures)):
                finish(future)
        except KeyboardInterrupt:  # keep what had finished, then stop
            with held_interrupts():
                for future in [f for f in futures if f.status == "finished"]:
                    finish(future)
            raise
    finally:
        if futures:
            client.cancel(list(futures))
        client.unsubscribe_topic(PROGRESS_TOPIC)
        bar.close()
        sweep_run([t.output for t in tasks], run_id)
    return [results[i] for i in range(len(tasks))]
