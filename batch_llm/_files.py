"""Files the library writes are the user's alone.

The journal names batches and keeps their answers; the events file names batches, models and
metadata. Both are created readable by their owner only (0600), in folders the library
creates readable by their owner only (0700). Folders that exist already are not the library's
to change (``~/.cache``, a shared project folder).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["make_private_dirs", "open_private"]


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents, each with mode 0700."""
    missing: list[Path] = []
    for folder in (directory, *directory.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        # The umask can only take bits away from 0700, never give them to others.
        folder.mkdir(mode=0o700, exist_ok=True)  # another process may make it first


def open_private(path: Path, flags: int) -> int:
    """A descriptor of ``path`` opened with ``flags``, the file created if missing; a regular
    file is made mode 0600 whoever created it (a device such as ``/dev/stdout`` is left
    alone)."""
    fd = os.open(path, flags | os.O_CREAT, 0o600)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.chmod(path, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd
