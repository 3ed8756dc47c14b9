"""MedSR in the browser: ``medsr serve`` on trame-slicer.

A page with the MedSR panel, bound to the same Qt-free panel model as the Slicer widget
(``MedSRLib.panel.SuperResolvePanel``), beside Slicer's own slice views rendered on the server.
Imports MedSRLib and the engine; neither imports this package. MedSRLib is a package of the
``medsr`` distribution (setup.py maps ``MedSRModule/MedSRLib``), so an installed wheel and an editable
checkout import it alike, without a path insert. Needs the ``web`` extra (``pip install "medsr[web]"``).

Modules: ``access`` (who may connect, which files may be read, what an upload must be: no trame),
``app`` (the scene, the views and the panel binding), ``page`` (the page's widgets), ``server``
(the token gate, the download route, start-up).
"""
from __future__ import annotations
