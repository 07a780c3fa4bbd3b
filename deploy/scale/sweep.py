"""A resumable sweep runner for experiment grids: one task per cell, on this process or on a Ray cluster.

A *cell* is a dict of JSON-able parameters (seeds included, so a cell's result is a function of the cell
alone); the *cell function* ``fn(params, context) -> dict`` computes it (``context``: read-only data shared
by all cells, e.g. trained networks; sent once to Ray's object store).  Each finished cell is written at once
to ``<out_dir>/<key>.json`` (``key``: a hash of the parameters), atomically (a temporary file, then
``os.replace``), as ``{"params", "status": "ok" | "error", "result", "error", "seconds"}``.  A re-run skips
every cell whose file holds ``status`` ``ok`` and the same parameters (resume after Ctrl-C, a killed driver
or a crashed machine); ``force=True`` recomputes all.  A cell that raises is recorded with its traceback,
the other cells still run, and :class:`SweepError` then names every failed cell (nothing is dropped
silently); failed cells are run again by the next run.

Engines: ``"local"`` runs the cells in order in this process (no Ray needed; the default), ``"ray"`` runs
each cell as one Ray task (one CPU each) on a local Ray instance (``address`` None / ``"local"``) or on a
cluster (``address`` as for ``ray.init``, e.g. ``ray://head:10001`` or ``auto``); results are returned in
cell order either way, so the two engines give the same output.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from loihic.compiler.errors import LoihicError

ENGINES = ("local", "ray")
CellFn = Callable[[dict[str, Any], Any], dict[str, Any]]


class SweepError(LoihicError):
    """One or more cells of a sweep failed (each is recorded in its file with the traceback)."""


@dataclasses.dataclass(frozen=True)
class SweepResult:
    results: list[dict[str, Any]]  # per cell, in cell order
    ran: list[int]  # indices of the cells computed by this run
    skipped: list[int]  # indices of the cells found finished in out_dir


def _canonical(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters as JSON sees them (tuples -> lists), so a reloaded file compares equal."""
    return json.loads(json.dumps(dict(params), sort_keys=True))


def cell_key(params: Mapping[str, Any]) -> str:
    """The file stem of a cell: a hash of its canonical parameters."""
    text = json.dumps(_canonical(params), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cell_path(out_dir: Path | str, params: Mapping[str, Any]) -> Path:
    return Path(out_dir) / f"{cell_key(params)}.json"


def _write_atomic(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)


def _finished(path: Path, params: dict[str, Any]) -> dict[str, Any] | None:
    """The recorded result if ``path`` holds a successful run of exactly these parameters."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("status") == "ok" and record.get("params") == params:
        return record["result"]
    return None


def _run_cell(fn: CellFn, params: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run one cell; an exception becomes a recorded error (KeyboardInterrupt / SystemExit propagate)."""
    t0 = time.perf_counter()
    try:
        result = fn(dict(params), context)
        json.dumps(result)  # a result that cannot be written is this cell's failure, not the sweep's
        return {"status": "ok", "result": result, "error": None, "seconds": time.perf_counter() - t0}
    except Exception as exc:
        err = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        return {"status": "error", "result": None, "error": err, "seconds": time.perf_counter() - t0}


def run_sweep(
    fn: CellFn,
    cells: Sequence[Mapping[str, Any]],
    out_dir: Path | str,
    engine: str = "local",
    address: str | None = None,
    context: Any = None,
    force: bool = False,
    progress: bool = True,
    desc: str = "sweep",
    retries: int = 1,
) -> SweepResult:
    """Compute every cell of ``cells`` with ``fn`` (module docstring); raise :class:`SweepError` if any failed.

    ``retries``: how often Ray reruns a task whose worker died (engine ``ray`` only; a Python exception in
    the cell is recorded, not retried)."""
    if engine not in ENGINES:
        raise LoihicError(f"sweep engine {engine!r}: expected one of {', '.join(ENGINES)}")
    params = [_canonical(c) for c in cells]
    keys = [cell_key(p) for p in params]
    if len(set(keys)) != len(keys):
        raise LoihicError("sweep: two cells have the same parameters")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any] | None] = [None] * len(params)
    skipped = []
    for i, p in enumerate(params):
        if not force and (done := _finished(out / f"{keys[i]}.json", p)) is not None:
            results[i] = done
            skipped.append(i)
    todo = [i for i in range(len(params)) if results[i] is None]
    failed: list[tuple[int, str]] = []

    from tqdm import tqdm

    bar = tqdm(total=len(params), initial=len(skipped), desc=desc, unit="cell", file=sys.stderr, disable=not progress)

    def record(i: int, rec: dict[str, Any]) -> None:
        _write_atomic(out / f"{keys[i]}.json", {"params": params[i], **rec})
        if rec["status"] == "ok":
            results[i] = rec["result"]
        else:
            failed.append((i, rec["error"]))
        bar.update(1)

    try:
        if engine == "local":
            for i in todo:
                record(i, _run_cell(fn, params[i], context))
        elif todo:
            _run_ray(fn, params, todo, context, address, retries, record)
    finally:
        bar.close()
    if failed:
        lines = [f"cell {params[i]} ({out / (keys[i] + '.json')}): {err.splitlines()[0]}" for i, err in failed]
        raise SweepError(f"{len(failed)} of {len(params)} sweep cells failed:\n  " + "\n  ".join(lines))
    return SweepResult(results=results, ran=todo, skipped=skipped)  # type: ignore[arg-type]


def _run_ray(
    fn: CellFn,
    params: list[dict[str, Any]],
    todo: list[int],
    context: Any,
    address: str | None,
    retries: int,
    record: Callable[[int, dict[str, Any]], None],
) -> None:
    from loihic.deploy.scale.ray_lava import ray_session

    with ray_session(address) as ray:
        task = ray.remote(num_cpus=1, max_retries=retries)(_run_cell)
        fn_ref, ctx_ref = ray.put(fn), ray.put(context)
        refs = {task.remote(fn_ref, params[i], ctx_ref): i for i in todo}
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                i = refs.pop(ref)
                try:
                    rec = ray.get(ref)
                except Exception as exc:  # the worker died more often than Ray retries
                    rec = {
                        "status": "error",
                        "result": None,
                        "error": "Ray task failed: " + " ".join(str(exc).split())[-400:],
                        "seconds": None,
                    }
                record(i, rec)
