"""Writing a benchmark's results: the JSON (atomically: a killed run never leaves half a file) and,
given a plot function, the PNG next to it."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _plain(obj: Any) -> Any:
    return obj.item() if isinstance(obj, np.generic) else str(obj)


def write_results(
    res: dict[str, Any],
    out: str | Path,
    plot: Callable[[dict[str, Any], Path], None] | None = None,
    quiet: bool = False,
) -> Path:
    """Write ``res`` to ``out`` (JSON) and, if ``plot`` is given, ``plot(res, out.png)``; return the path."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_text(json.dumps(res, indent=1, default=_plain))
    tmp.replace(path)
    if plot is not None:
        plot(res, path.with_suffix(".png"))
    if not quiet:
        print(f"wrote {path}" + (f" and {path.with_suffix('.png')}" if plot else ""), file=sys.stderr)
    return path
