"""MedSR in the browser: ``medsr serve`` on trame-slicer.

A page with the MedSR panel, bound to the same Qt-free panel model as the Slicer widget
(``MedSRLib.panel.SuperResolvePanel``), beside Slicer's own slice views rendered on the server.
Imports MedSRLib and the engine; neither imports this package. Needs the ``web`` extra
(``pip install -e ".[web]"``).

Modules: ``access`` (who may connect, which files may be read, what an upload must be: no trame),
``app`` (the scene, the views and the panel binding), ``page`` (the page's widgets), ``server``
(the token gate, the download route, start-up).
"""
from __future__ import annotations

import os
import sys

#: MedSRLib lives in the Slicer module folder, which Slicer puts on its path; so do we.
MODULE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "MedSRModule")
if os.path.isdir(os.path.join(MODULE_DIR, "MedSRLib")) and MODULE_DIR not in sys.path:
    sys.path.insert(0, MODULE_DIR)
