"""Run a cohort's tasks on a Dask client: skip what ``--resume`` verifies, submit the rest, record each
row in OUTDIR/manifest.csv as its task ends, and show a progress bar over files (with the current
file's batches)."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

from MedSRExtension.batch.inputs import Task
from MedSRExtension.batch.manifest import Manifest
from MedSRExtension.batch.tasks import PROGRESS_TOPIC, run_task


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


def run_batch(tasks: list[Task], outdir: os.PathLike | str, client, resources: Optional[dict] = None,
              resume: bool = False, quiet: bool = False) -> list[dict]:
    """Run ``tasks`` on ``client`` and return one row per task, in input order, with status done,
    skipped (``resume``: a verified earlier output) or failed (with its reason)."""
    from distributed import as_completed

    Path(outdir).mkdir(parents=True, exist_ok=True)
    old = Manifest.load(outdir)
    manifest = Manifest(outdir)
    results: dict[int, dict] = {}
    todo = []
    for i, task in enumerate(tasks):
        row = old.verified(task) if resume else None
        if row is not None:
            manifest.rows[(task.input, task.output)] = row
            results[i] = {**row, "status": "skipped"}
        else:
            todo.append(i)
    manifest.save()
    bar = _Bar(len(tasks), quiet)
    for _ in results:
        bar.advance()
    client.subscribe_topic(PROGRESS_TOPIC, bar.file_progress)
    try:
        futures = {client.submit(run_task, tasks[i].to_dict(), pure=False, resources=resources or None,
                                 key=f"medsr-{i}-{os.path.basename(tasks[i].input.rstrip(os.sep))}"): i
                   for i in todo}
        for future in as_completed(futures):
            i = futures[future]
            task = tasks[i]
            try:
                row = future.result()
            except Exception as exc:  # the worker died (KilledWorker) or the task could not run
                row = {"input": task.input, "output": task.output, "status": "failed",
                       "reason": f"the task did not finish ({exc.__class__.__name__}: {exc})"[:300]}
            manifest.record(row)
            results[i] = row
            bar.advance()
    finally:
        client.unsubscribe_topic(PROGRESS_TOPIC)
        bar.close()
    return [results[i] for i in range(len(tasks))]
