"""Credentials for a server or a PACS: from the environment or a netrc-style file, never from the
command line (where ``ps`` and shell histories show them).

- ``MEDSR_TOKEN``: the ``medsr server`` token (``--token`` is accepted too, for scripts that pass it);
- ``MEDSR_DICOMWEB_TOKEN``: a Bearer token for the PACS, or ``MEDSR_DICOMWEB_USER`` +
  ``MEDSR_DICOMWEB_PASSWORD`` for HTTP basic authentication;
- else the netrc file (``MEDSR_NETRC``, default ``~/.netrc``): ``machine HOST login USER password PW``.
"""
from __future__ import annotations

import netrc
import os
from typing import Optional
from urllib.parse import urlsplit

from MedSRExtension.core.errors import MedSRError

SERVER_TOKEN_ENV = "MEDSR_TOKEN"


def server_token(given: Optional[str]) -> str:
    """The token for ``medsr server``: given, else $MEDSR_TOKEN, else the netrc password for its host
    is looked up by ``ServerClient``; a clear error when there is none."""
    token = given or os.environ.get(SERVER_TOKEN_ENV)
    if not token:
        raise MedSRError(f"no token for the MedSR server: set {SERVER_TOKEN_ENV} (or pass --token) with the "
                         "token the server printed")
    return token


def _netrc_entry(host: str) -> Optional[tuple[str, str]]:
    path = os.environ.get("MEDSR_NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    if not os.path.isfile(path):
        return None
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (netrc.NetrcParseError, OSError) as exc:
        raise MedSRError(f"the credentials file {path} cannot be read ({exc}); fix it or set MEDSR_DICOMWEB_USER/"
                         "MEDSR_DICOMWEB_PASSWORD") from None
    return (entry[0], entry[2]) if entry else None


def dicomweb_session(url: str):
    """A ``requests.Session`` for the PACS at ``url``, authenticated as the environment or netrc say
    (no authentication when neither names it)."""
    import requests
    session = requests.Session()
    session.trust_env = False  # the netrc is read here, as documented, not by requests on its own
    if os.environ.get("MEDSR_DICOMWEB_TOKEN"):
        session.headers["Authorization"] = "Bearer " + os.environ["MEDSR_DICOMWEB_TOKEN"]
    elif os.environ.get("MEDSR_DICOMWEB_USER"):
        session.auth = (os.environ["MEDSR_DICOMWEB_USER"], os.environ.get("MEDSR_DICOMWEB_PASSWORD", ""))
    else:
        entry = _netrc_entry(urlsplit(url).hostname or "")
        if entry:
            session.auth = entry
    return session
