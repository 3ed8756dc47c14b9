"""Work sent elsewhere: a ``medsr server`` (``client.ServerClient``, ``files.superresolve_remote``) and
a PACS over DICOMweb (``dicomweb``: WADO-RS in, STOW-RS out, QIDO-RS to find; ``credentials``: from
an environment variable or a netrc-style file, never the command line). Needs ``requests`` (and
``dicomweb-client`` for PACS): the ``server`` extra."""
from __future__ import annotations

from .client import ServerClient, ServerError

__all__ = ["ServerClient", "ServerError"]
