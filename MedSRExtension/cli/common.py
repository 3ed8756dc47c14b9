"""Argument helpers shared by subcommands."""
from __future__ import annotations

import sys

from MedSRExtension.pipeline.run_options import parse_component, parse_floats  # noqa: F401 (subcommands)


def progress_bar(quiet: bool, desc: str):
    """A tqdm progress callback ``(done, total)`` on stderr, and a closer; silent with quiet."""
    if quiet:
        return None, lambda: None
    from tqdm import tqdm
    bar: dict = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=desc, unit="batch", file=sys.stderr, leave=False)
        bar["bar"].update(done - bar["bar"].n)

    def close() -> None:
        if "bar" in bar:
            bar["bar"].close()

    return update, close

