"""Argument helpers shared by subcommands."""
from __future__ import annotations

import sys
from MedSRExtension.core.errors import MedSRError


def parse_floats(text: str, what: str, allowed=(1, 3)):
    """'2' -> 2.0; '2,2,1' -> (2.0, 2.0, 1.0); anything else is a clear error."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise MedSRError(f"{what} must be a number or {max(allowed)} comma-separated numbers, got '{text}'") from None
    if len(values) not in allowed:
        raise MedSRError(f"{what} takes {' or '.join(map(str, allowed))} value(s), got {len(values)} in '{text}'")
    return values[0] if len(values) == 1 else tuple(values)


def parse_component(text):
    """--component: None, 'luminance', or a channel index."""
    return int(text) if text is not None and text.isdigit() else text


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

