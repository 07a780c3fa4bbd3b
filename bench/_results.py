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


# The sweep runner's options (loihic.deploy.scale.sweep), shared by the grid scripts; not part of a result's "args".
SWEEP_OPTIONS = ("engine", "ray_address", "force", "cells_dir", "progress")


def add_sweep_options(ap: Any) -> None:
    """``--engine``, ``--ray-address``, ``--force``, ``--cells-dir``, ``--no-progress`` on an argparse parser."""
    ap.add_argument("--engine", choices=("local", "ray"), default="local", help="local: in this process, in order")
    ap.add_argument("--ray-address", default=None, help="ray.init address (default: a local Ray on this machine)")
    ap.add_argument("--force", action="store_true", help="recompute every cell (default: resume, skip finished)")
    ap.add_argument("--cells-dir", default=None, help="one JSON per finished cell (default: OUT.cells/ next to OUT)")
    ap.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def sweep_kwargs(args: Any, out: str | Path) -> dict[str, Any]:
    """The keyword arguments of :func:`loihic.deploy.scale.sweep.run_sweep` from those options."""
    cells = Path(args.cells_dir) if args.cells_dir else Path(out).with_suffix(".cells")
    return {
        "out_dir": cells,
        "engine": args.engine,
        "address": args.ray_address,
        "force": args.force,
        "progress": args.progress,
    }
