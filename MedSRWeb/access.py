"""What the web server lets in: the token rule, the one data folder it reads, and what an upload must be.

Pure Python (no trame), so each rule is tested on its own:

- ``needs_token(host)``: listening on a loopback address needs no token; any other address does.
- ``DataFolder``: the only folder read besides INPUT. A name resolves inside it or is refused; a
  symbolic link is refused when it points outside the folder (the real path is checked).
- ``check_upload``: refused unless it is at most the size limit and a volume the engine can read;
  it is written into the server's own temporary folder only.
"""
from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from MedSRExtension.core import formats
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.volume import Volume

#: File endings the data folder lists and an upload may have (what ``load_volume`` reads as one file).
VOLUME_SUFFIXES = formats.VOLUME_SUFFIXES
DEFAULT_UPLOAD_LIMIT_MB = 512
TOKEN_COOKIE = "medsr_token"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost' (the names no other machine can reach)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback
                       for info in socket.getaddrinfo(host, None))
        except OSError:
            return False


def needs_token(host: str) -> bool:
    return not is_loopback(host)


def choose_token(host: str, given: Optional[str]) -> Optional[str]:
    """The token the server requires: the given one, a random one beyond loopback, else none."""
    if given:
        if len(given) < 16:
            raise MedSRError("the token is too short: give at least 16 characters, or leave --token out "
                             "to get a random one")
        return given
    return secrets.token_urlsafe(24) if needs_token(host) else None


def token_matches(expected: Optional[str], offered: Optional[str]) -> bool:
    """Constant-time comparison; no token required means everything matches."""
    if expected is None:
        return True
    return offered is not None and hmac.compare_digest(expected.encode(), offered.encode())


def is_volume_name(name: str) -> bool:
    return name.lower().endswith(VOLUME_SUFFIXES)


class DataFolder:
    """The one folder ``--data DIR`` lets the page read; nothing outside it is ever opened."""

    def __init__(self, folder: Optional[str]):
        self.root: Optional[Path] = None
        if folder:
            root = Path(folder).expanduser()
            if not root.is_dir():
                raise MedSRError(f"--data {folder}: not a folder; give a folder that holds the volumes to offer")
            self.root = root.resolve()

    def names(self) -> list[str]:
        """The volume files in the folder and its subfolders (relative names), links out of it left out."""
        if self.root is None:
            return []
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if self._inside(Path(dirpath, d)))
            for name in sorted(filenames):
                path = Path(dirpath, name)
                if is_volume_name(name) and self._inside(path):
                    found.append(path.relative_to(self.root).as_posix())
        return found

    def _inside(self, path: Path) -> bool:
        real = Path(os.path.realpath(path))
        return real == self.root or self.root in real.parents

    def resolve(self, name: str) -> Path:
        """The real path of ``name`` inside the folder, or a MedSRError saying why not."""
        if self.root is None:
            raise MedSRError("no data folder was given; start the server with --data DIR")
        candidate = Path(name)
        if candidate.is_absolute() or ".." in candidate.parts:
            raise MedSRError(f"'{name}' is not a name inside the data folder")
        path = self.root / candidate
        if not self._inside(path):
            raise MedSRError(f"'{name}' leads outside the data folder; links out of it are not followed")
        if not path.is_file() or not is_volume_name(path.name):
            raise MedSRError(f"'{name}' is not a volume file in the data folder")
        return Path(os.path.realpath(path))


@dataclass(frozen=True)
class Upload:
    name: str
    path: Path
    volume: Volume


def safe_file_name(name: str) -> str:
    """The base name of an uploaded file, reduced to harmless characters (keeps its ending)."""
    base = os.path.basename(name.replace("\\", "/")) or "upload"
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in base).lstrip(".")
    return cleaned or "upload"


def check_upload(name: str, content: Optional[bytes], folder: Path, limit_mb: float = DEFAULT_UPLOAD_LIMIT_MB,
                 size: Optional[int] = None) -> Upload:
    """Write an upload into ``folder`` (the server's temporary folder) and read it as a volume.

    Refused with a one-line MedSRError (and nothing kept) when it is too large, has no volume file
    ending, or cannot be read as a volume."""
    from MedSRExtension.core.volume_io import load_volume
    shown = os.path.basename(name or "upload")
    length = len(content) if content is not None else (size or 0)
    if max(length, size or 0) > limit_mb * 1024 * 1024:
        raise MedSRError(f"'{shown}' is {length / 2**20:.0f} MB, over the {limit_mb:g} MB upload limit; "
                         "put it in the --data folder instead")
    if not content:
        raise MedSRError(f"'{shown}' is empty; choose a volume file")
    if not is_volume_name(shown):
        raise MedSRError(f"'{shown}' is not a volume file; upload NIfTI (.nii, .nii.gz), NRRD, MHA or DICOM")
    safe = safe_file_name(shown)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{secrets.token_hex(4)}_{safe}"
    target.write_bytes(content)
    try:
        volume = load_volume(target)
    except Exception as exc:  # any reader failure means: not a readable volume
        target.unlink(missing_ok=True)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reason = reason.replace(str(target), shown).replace(target.name, shown)  # never the server's path
        raise MedSRError(f"'{shown}' could not be read as a volume ({reason[:160]}); upload NIfTI, NRRD or MHA")
    return Upload(safe, target, volume)
