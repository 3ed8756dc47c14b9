"""How a run reports progress, in words a user reads (the Slicer panel, the web page).

A plain run counts the engine's batches. An adapted run reports ``ADAPT_TOTAL`` units: the first
``ADAPT_TUNING`` are the fine-tune's share of its time budget (its steps are not known in advance when
the budget is minutes), the rest the engine's passes with the tuned network. Kept free of torch so
the panel can import it before torch is installed.
"""
from __future__ import annotations

ADAPT_TUNING = 800
ADAPT_TOTAL = 1000


def describe(model: str, done: int, total: int, adapting: bool = False) -> str:
    """One status line for ``done`` of ``total`` progress units of a run of ``model``."""
    if adapting and total == ADAPT_TOTAL:
        if done < ADAPT_TUNING:
            return f"{model}: adapting to the volume, {100 * done // ADAPT_TUNING} % of the tuning time"
        share = (done - ADAPT_TUNING) / (ADAPT_TOTAL - ADAPT_TUNING)
        return f"{model}: super-resolving with the adapted network, {int(100 * share)} %"
    return f"{model}: batch {done} of {total}"
