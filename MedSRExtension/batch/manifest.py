"""OUTDIR/manifest.csv: one row per input with what was made and how, rewritten atomically (core.atomic)
each time a task ends, so a killed run leaves a manifest of everything it finished.

Columns: input, output, status (done | failed), reason, input_sha256, output_sha256, model, weights,
weights_sha256, options (the run options as JSON), seconds, finished (UTC), device, worker, stored (with
``--store``: the SeriesInstanceUID of the derived series the PACS accepted).
A DICOM series (input or output) is hashed as its sorted file names and contents.

``--resume`` skips an input whose row says done, whose output still exists with the recorded
sha256, whose input still has the recorded sha256 (a ``dicomweb:`` input is a PACS series, named by its
UID, which DICOM never reuses for other content), whose options are the same, and, with ``--store``,
whose result the PACS accepted; it redoes the rest.
A manifest that cannot be read as one (not UTF-8 text, no header of these columns) is refused in one
line rather than guessed at: it is the only record of what the earlier runs made.
"""
from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Optional

from MedSRExtension.core import atomic
from MedSRExtension.core.errors import MedSRError

NAME = "manifest.csv"
COLUMNS = ("input", "output", "status", "reason", "input_sha256", "output_sha256", "model", "weights",
           "weights_sha256", "options", "seconds", "finished", "device", "worker", "stored")


def tree_sha256(path: os.PathLike | str) -> str:
    """sha256 of a file (with the data file its header names: .mhd -> .raw), or of a folder's files
    (sorted relative names and contents, hidden ones skipped)."""
    from MedSRExtension.core.validation import companion_files
    path = Path(path)
    h = hashlib.sha256()
    files = [p for p in companion_files(path) if p.is_file()] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()
                                                 and not any(part.startswith(".") for part in
                                                             p.relative_to(path).parts))
    for f in files:
        if not path.is_file():
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def options_text(options: dict) -> str:
    """The run options of a task as canonical JSON (compared on --resume)."""
    return json.dumps(options, sort_keys=True)


class Manifest:
    """The rows of OUTDIR/manifest.csv by (input, output): a CSV may run one input twice into two outputs."""

    def __init__(self, outdir: os.PathLike | str, rows: Optional[dict] = None):
        self.path = Path(outdir) / NAME
        self.rows: dict[str, dict] = rows or {}

    @classmethod
    def load(cls, outdir: os.PathLike | str) -> "Manifest":
        """The manifest in ``outdir`` (empty when there is none)."""
        m = cls(outdir)
        if not m.path.is_file():
            return m
        damaged = "move it away (or restore it) to redo every input, or run without --resume"
        try:
            with open(m.path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                header = reader.fieldnames or []
                missing = [c for c in ("input", "output", "status", "output_sha256") if c not in header]
                if missing:
                    raise MedSRError(f"{m.path} is damaged: its header lacks {', '.join(missing)}; {damaged}")
                for row in reader:
                    m.rows[(row.get("input") or "", row.get("output") or "")] = \
                        {c: row.get(c) or "" for c in COLUMNS}
        except UnicodeDecodeError as exc:
            raise MedSRError(f"{m.path} is damaged: not UTF-8 text (byte {exc.start}); {damaged}") from None
        except (csv.Error, OSError) as exc:
            raise MedSRError(f"cannot read {m.path} ({exc}); {damaged}") from None
        return m

    def record(self, row: dict) -> None:
        """Add or replace the row of (input, output) and rewrite the file atomically."""
        self.rows[(row["input"], row["output"])] = {c: "" if row.get(c) is None else str(row.get(c)) for c in COLUMNS}
        self.save()

    def save(self) -> None:
        """Rewrite the file atomically; a full disk or a refused write is one line (MedSRError)."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows.values():
            writer.writerow(row)
        text = buf.getvalue()
        try:
            atomic.write_text(self.path, text)
        except OSError as exc:  # the earlier manifest stays as it was (atomic write)
            if exc.errno == errno.ENOSPC:
                raise MedSRError(f"no space left on device (needs ~{len(text.encode()) // 1024 + 1} KB at "
                                 f"{self.path}); free space and run again with --resume") from None
            raise MedSRError(f"cannot write {self.path}: {exc.strerror or exc}; check the folder's "
                             "permissions and free space") from None

    def verified(self, task, store: Optional[str] = None) -> Optional[dict]:
        """The row of a task whose output exists and verifies (see module docstring), else None."""
        from MedSRExtension.remote.dicomweb import is_dicomweb
        row = self.rows.get((task.input, task.output))
        if not row or row["status"] != "done" or (store and not row.get("stored")):
            return None
        if row["options"] != options_text(task.options) or not os.path.exists(task.output):
            return None
        if not is_dicomweb(task.input) and (not os.path.exists(task.input)
                                            or tree_sha256(task.input) != row["input_sha256"]):
            return None
        return row if tree_sha256(task.output) == row["output_sha256"] else None
