"""Atomic file writes: write to a temp file in the target folder, then rename over the target."""

from __future__ import annotations

import os
from pathlib import Path


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give ``tmp`` the mode a plain ``open`` would (mkstemp makes 0600) and rename it to ``path``."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, Path(path))
