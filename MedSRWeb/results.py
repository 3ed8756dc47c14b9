"""The results of one session: every finished run is kept, listed with what made it, shown and
downloaded on request. A new run, a cancelled one or a failed one never removes an earlier result.

A download is the result node written by the engine's one writer, ``core.volume_io.save_volume``,
with the node's provenance record: the ``describe_run`` record ``MedSRLib.process`` stored on it as
``MedSR.*`` attributes when the run finished, the same record ``medsr run`` writes. File names say
what is special about a result (adapted, ensembled, gated to another model), and never repeat.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.provenance import short_scale
from MedSRExtension.core.volume_io import save_volume

from MedSRLib import nodes

from . import access


@dataclass
class Result:
    """One finished run of this session."""
    number: int                 # 1, 2, ... in the order they finished
    node: object                # the result volume node
    input_id: str               # the input node it was made from
    reference_id: str = ""      # the reference shown beside it, if any
    mode: str = "inplane"
    axis: str = "auto"
    stem: str = ""              # the download's file name without its ending
    confidence: object = None   # its confidence map node, when the run made one
    finished: float = field(default_factory=time.time)

    @property
    def provenance(self) -> dict:
        return nodes.provenance_of(self.node)

    @property
    def title(self) -> str:
        """'Result: pfmdn x2' (the model that ran, as the view says)."""
        p = self.provenance
        return f"Result: {p.get('model', '?')} \u00d7{short_scale(p)}"

    @property
    def line(self) -> str:
        """One line: model, scale, mode, profile, adapt, time."""
        p = self.provenance
        parts = [f"#{self.number} {p.get('model', '?')} \u00d7{short_scale(p)}", p.get("mode", self.mode)]
        if p.get("slice_profile", "-") != "-":
            parts.append(f"profile {p['slice_profile']}")
        parts.append(f"adapt {p.get('adapt', 'off')}")
        if p.get("gate", "-") != "-":
            parts.append(f"gate {p['gate']}")
        parts.append(time.strftime("%H:%M:%S", time.localtime(self.finished)))
        return " \u00b7 ".join(parts)


def file_stem(node_name: str, provenance: dict, taken: set) -> str:
    """A download name that tells adapted, ensembled and gated results apart and is not yet taken."""
    stem = access.safe_file_name(node_name)
    if provenance.get("requested_model"):
        stem += f"_gated-{access.safe_file_name(provenance.get('model', 'bspline'))}"
    if provenance.get("adapt", "off") not in ("off", "False", "None", ""):
        stem += "_adapted"
    ensemble = str(provenance.get("ensemble", "1"))
    if ensemble not in ("1", "off", "None", "-", ""):
        stem += f"_ens{access.safe_file_name(ensemble)}"
    base, n = stem, 2
    while stem in taken:
        stem, n = f"{base}_run{n}", n + 1
    return stem


class ResultList:
    """The session's results, oldest first; ``shown`` is the number of the one in the views."""

    def __init__(self):
        self.items: list[Result] = []
        self.shown: Optional[int] = None

    def add(self, node, input_node, reference_node=None, mode: str = "inplane", axis: str = "auto",
            confidence=None) -> Result:
        if any(r.node is node for r in self.items):
            return next(r for r in self.items if r.node is node)
        stem = file_stem(node.GetName(), nodes.provenance_of(node), {r.stem for r in self.items})
        result = Result(len(self.items) + 1, node, input_node.GetID() if input_node is not None else "",
                        reference_node.GetID() if reference_node is not None else "", mode, axis, stem,
                        confidence)
        self.items.append(result)
        self.shown = result.number
        return result

    def get(self, number=None) -> Result:
        """The result with this number (default: the one shown, else the latest); MedSRError if none."""
        if not self.items:
            raise MedSRError("there is no result yet; click Super-resolve first")
        if number in (None, ""):
            number = self.shown or self.items[-1].number
        try:
            return self.items[int(number) - 1]
        except (ValueError, IndexError):
            raise MedSRError(f"there is no result #{number} in this session") from None

    def write(self, number, fmt: str, folder: Path) -> Path:
        """Write a result (with its provenance) for download; returns the file."""
        result = self.get(number)
        target = folder / f"{result.stem}.{fmt}"
        target.parent.mkdir(parents=True, exist_ok=True)
        save_volume(nodes.volume_from_node(result.node), target, provenance=result.provenance)
        return target

    def items_for_page(self) -> list[dict]:
        return [{"title": r.line, "value": r.number} for r in reversed(self.items)]
