"""Output files: refused if they exist (unless forced), written atomically (a temp file in the target folder,
then renamed over the target), and the sha256 every output records of its source."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from loihic.compiler.errors import OutputExistsError


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give ``tmp`` the mode a plain ``open`` would (mkstemp makes 0600) and rename it to ``path``."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, Path(path))


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes: the provenance every output records of its source."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomically(path: Path, write: Callable[[str], None], suffix: str) -> Path:
    """``write(tmp)`` into a temp file next to ``path``, then publish it as ``path`` (all or nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent or ".")
    os.close(fd)
    try:
        write(tmp)
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_output(path: str | os.PathLike, force: bool) -> Path:
    """Fail before any work if ``path`` exists and ``force`` is not set, or is a folder."""
    p = Path(path)
    if p.exists() and not force:
        raise OutputExistsError(f"{p}: already exists (use --force to overwrite)")
    if p.is_dir():
        raise OutputExistsError(f"{p}: is a directory")
    return p
