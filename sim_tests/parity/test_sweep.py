"""The resumable sweep runner (deploy/scale/sweep.py): local engine (fast, unmarked) and Ray on a local cluster of this
machine's CPUs (``-m ray``, ``make test-ray``): resume after an interruption, failed cells reported, same results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from loihic.deploy.scale.sweep import SweepError, cell_path, run_sweep

CELLS = [{"x": x, "seed": 10 + x} for x in range(6)]


def square(params: dict, offset: int) -> dict:
    return {"y": params["x"] ** 2 + offset, "seed": params["seed"]}


def interrupted_at_3(params: dict, offset: int) -> dict:
    if params["x"] == 3:
        raise KeyboardInterrupt
    return square(params, offset)


def fails_at_2(params: dict, offset: int) -> dict:
    if params["x"] == 2:
        raise ValueError("cell two is broken")
    return square(params, offset)


def _files(d: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(d.glob("*.json"))}


def _without_seconds(files: dict[str, dict]) -> dict[str, dict]:
    return {k: {**v, "seconds": None} for k, v in files.items()}


def test_local_resume_after_an_interruption_runs_only_the_remaining_cells(tmp_path: Path) -> None:
    full = run_sweep(square, CELLS, tmp_path / "full", context=1, progress=False)
    assert full.ran == list(range(6)) and full.results[4] == {"y": 17, "seed": 14}
    with pytest.raises(KeyboardInterrupt):
        run_sweep(interrupted_at_3, CELLS, tmp_path / "cut", context=1, progress=False)
    assert len(_files(tmp_path / "cut")) == 3  # each finished cell was written as it finished
    resumed = run_sweep(square, CELLS, tmp_path / "cut", context=1, progress=False)
    assert resumed.skipped == [0, 1, 2] and resumed.ran == [3, 4, 5]
    assert resumed.results == full.results
    assert _without_seconds(_files(tmp_path / "cut")) == _without_seconds(_files(tmp_path / "full"))
    again = run_sweep(square, CELLS, tmp_path / "cut", context=1, progress=False)
    assert again.ran == [] and again.results == full.results
    forced = run_sweep(square, CELLS, tmp_path / "cut", context=1, progress=False, force=True)
    assert forced.ran == list(range(6))


def test_a_cell_with_other_parameters_is_not_taken_for_finished(tmp_path: Path) -> None:
    run_sweep(square, CELLS, tmp_path, context=1, progress=False)
    path = cell_path(tmp_path, CELLS[0])
    record = json.loads(path.read_text())
    record["params"]["seed"] = 99  # a file whose recorded parameters differ is recomputed
    path.write_text(json.dumps(record))
    again = run_sweep(square, [*CELLS, {"x": 6, "seed": 16}], tmp_path, context=1, progress=False)
    assert again.ran == [0, 6]
    assert json.loads(path.read_text())["params"] == CELLS[0]


def test_a_failing_cell_is_recorded_and_reported_and_rerun(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match=r"(?s)1 of 6 sweep cells failed.*'x': 2.*ValueError: cell two is broken"):
        run_sweep(fails_at_2, CELLS, tmp_path, context=0, progress=False)
    record = json.loads(cell_path(tmp_path, CELLS[2]).read_text())
    assert record["status"] == "error" and "cell two is broken" in record["error"] and record["result"] is None
    assert sum(r["status"] == "ok" for r in _files(tmp_path).values()) == 5  # the others still ran
    fixed = run_sweep(square, CELLS, tmp_path, context=0, progress=False)
    assert fixed.ran == [2] and fixed.results[2] == {"y": 4, "seed": 12}


def test_unknown_engine_is_refused(tmp_path: Path) -> None:
    from loihic.compiler.errors import LoihicError

    with pytest.raises(LoihicError, match="engine 'dask'"):
        run_sweep(square, CELLS, tmp_path, engine="dask", progress=False)


# --- Ray ------------------------------------------------------------------------------------------------------


@pytest.fixture
def ray_mod():  # noqa: ANN201
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    return ray


@pytest.mark.ray
def test_ray_gives_the_local_results_and_reports_a_failing_cell(tmp_path: Path, ray_mod) -> None:  # noqa: ANN001
    local = run_sweep(square, CELLS, tmp_path / "local", context=1, progress=False)
    ray_ = run_sweep(square, CELLS, tmp_path / "ray", engine="ray", context=1, progress=False)
    assert ray_.results == local.results
    assert _without_seconds(_files(tmp_path / "ray")) == _without_seconds(_files(tmp_path / "local"))
    with pytest.raises(SweepError, match=r"(?s)1 of 6 sweep cells failed.*ValueError: cell two is broken"):
        run_sweep(fails_at_2, CELLS, tmp_path / "fail", engine="ray", context=0, progress=False)
    assert json.loads(cell_path(tmp_path / "fail", CELLS[2]).read_text())["status"] == "error"
    assert not ray_mod.is_initialized()


DRIVER = """
import sys, time
from loihic.deploy.scale.sweep import run_sweep

def slow(params, ctx):
    time.sleep(1.5)
    return {"y": params["x"] ** 2 + ctx, "seed": params["seed"]}

cells = [{"x": x, "seed": 10 + x} for x in range(8)]
run_sweep(slow, cells, sys.argv[1], engine="ray", context=1, progress=False)
"""


@pytest.mark.ray
def test_ray_sweep_resumes_after_the_driver_is_killed(tmp_path: Path, ray_mod) -> None:  # noqa: ANN001
    cells = [{"x": x, "seed": 10 + x} for x in range(8)]
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(DRIVER))
    out = tmp_path / "cells"
    proc = subprocess.Popen([sys.executable, str(script), str(out)], start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        t0 = time.monotonic()
        while len(list(out.glob("*.json"))) < 2 and time.monotonic() - t0 < 180 and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, "the driver ended before it could be killed"
        finished = len(list(out.glob("*.json")))
        assert 2 <= finished < 8
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray instance it started (same session)
        proc.wait()
    left = {p.name for p in out.glob("*.json")}
    assert 2 <= len(left) < 8 and not list(out.glob(".*.part"))  # no half-written cell file
    resumed = run_sweep(square, cells, out, engine="ray", context=1, progress=False)
    assert len(resumed.skipped) == len(left) and len(resumed.ran) == 8 - len(left)
    assert resumed.results == [square(c, 1) for c in cells]
