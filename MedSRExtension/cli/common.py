"""Argument helpers shared by subcommands."""
from __future__ import annotations

import sys
from typing import Optional

from MedSRExtension.core import validation


def parse_floats(text: Optional[str], what: str, allowed=(1, 3)):
    """'2' -> 2.0; '2,2,1' -> (2.0, 2.0, 1.0); None -> None; '' and anything else is a clear error."""
    return validation.parse_numbers(text, what, allowed)


def parse_component(text):
    """--component: None, 'luminance', or a channel index; anything else is a clear error."""
    return validation.parse_component(text)


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

