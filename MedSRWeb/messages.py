"""What the page may say: messages without the server's own paths.

An error from a reader can name the file it read: for an upload that is a path in the server's
temporary folder, for a data file a path on the server. The page shows the names the user knows
(the upload's name, the data file's name inside the data folder) and never a server path.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Optional

#: An absolute POSIX path, or one of Windows, inside a message.
_PATH = re.compile(r"(?:[A-Za-z]:\\|/)(?:[^\s'\"(),;:]+[/\\])+([^\s'\"(),;:]*)")


def without_paths(text: str, roots: Iterable[Optional[os.PathLike]] = ()) -> str:
    """``text`` with each server path replaced by its file name (the folders in ``roots`` are removed
    first, so a data file keeps its name inside the data folder)."""
    for root in roots:
        if root:
            for form in {str(root), os.path.realpath(str(root))}:
                text = text.replace(form.rstrip("/\\") + os.sep, "").replace(form, "")
    return _PATH.sub(lambda m: m.group(1) or "a server folder", text)


def upload_name(stored: Path, shown: str, text: str) -> str:
    """An upload's message with the stored file's name replaced by the name the user chose."""
    return text.replace(str(stored), shown).replace(stored.name, shown)
