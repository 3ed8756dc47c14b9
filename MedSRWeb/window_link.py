"""One window/level for the input and its results: a change on any shown volume's display node
(a drag in a view, a preset) is copied to the others, so they are always compared at one contrast.
The first copy is ``MedSRLib.layout.share_window_level`` (the input's window, fixed)."""
from __future__ import annotations

import vtk


class WindowLevelLink:
    """Observes the display nodes of the shown volumes and keeps their window/level equal."""

    def __init__(self):
        self._observed: list[tuple[object, int]] = []
        self._copying = False

    def link(self, scene, volume_ids: list[str]) -> None:
        """Link these volumes (replacing the earlier link)."""
        self.unlink()
        displays = []
        for volume_id in dict.fromkeys(volume_ids):
            volume = scene.GetNodeByID(volume_id)
            display = volume.GetDisplayNode() if volume is not None else None
            if display is not None:
                displays.append(display)
        for display in displays:
            tag = display.AddObserver(vtk.vtkCommand.ModifiedEvent,
                                      lambda caller, _event, others=displays: self._copy(caller, others))
            self._observed.append((display, tag))

    def _copy(self, source, displays) -> None:
        if self._copying:
            return
        self._copying = True
        try:
            window, level = source.GetWindow(), source.GetLevel()
            for display in displays:
                if display is not source and (display.GetWindow(), display.GetLevel()) != (window, level):
                    display.AutoWindowLevelOff()
                    display.SetWindowLevel(window, level)
        finally:
            self._copying = False

    def set_window_level(self, window: float, level: float) -> None:
        """A preset: for every linked volume."""
        for display, _ in self._observed[:1]:
            display.AutoWindowLevelOff()
            display.SetWindowLevel(window, level)

    def unlink(self) -> None:
        for display, tag in self._observed:
            display.RemoveObserver(tag)
        self._observed = []
