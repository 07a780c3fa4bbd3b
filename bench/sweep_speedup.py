"""Speed-up of the Ray sweep engine over the local one (issue 11) on a small but real Allred grid.

    .venv/bin/python bench/sweep_speedup.py --out bench/results/sweep_speedup.json

Runs ``bench/allred_grid.py`` (digits MLP; the grid's options are ``GRID`` below) as a subprocess with
``--engine local`` and ``--engine ray`` (a local Ray instance of this machine's CPUs), each from scratch
(``--force``, own cells directory), ``--repeats`` times alternating, and records the wall time of each run
(Ray's start-up included) and whether the two grids' results are identical (they must be).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import write_results

GRID = (
    "--dataset digits --model mlp --epochs 10 --timesteps 48 --seeds 0 1 --leaks 1.0 0.99 0.97 0.95 0.9 "
    "--threshold-scales 0.4 0.6 0.8 1.0 1.2 --rs 0 1 2 4 --sweep-samples 1000 --curve-timesteps 16 32 "
    "--no-progress"
).split()
SAME = ("rows", "summary", "curves")


def _run(engine: str, tmp: Path, i: int) -> tuple[float, dict]:
    out = tmp / f"{engine}{i}.json"
    cmd = [sys.executable, str(Path(__file__).with_name("allred_grid.py")), *GRID, "--engine", engine]
    cmd += ["--force", "--out", str(out)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    res = json.loads(out.read_text())
    cells = [json.loads(p.read_text()) for p in out.with_suffix(".cells").glob("*.json")]
    res["cell_seconds"] = {
        stage: [c["seconds"] for c in cells if c["params"]["stage"] == stage] for stage in ("ann", "grid")
    }
    return seconds, res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="bench/results/sweep_speedup.json")
    args = ap.parse_args()
    seconds: dict[str, list[float]] = {"local": [], "ray": []}
    identical = True
    with tempfile.TemporaryDirectory() as d:
        ref = None
        for i in range(args.repeats):
            for engine in ("local", "ray"):
                s, res = _run(engine, Path(d), i)
                seconds[engine].append(s)
                ref = ref or res
                identical &= all(res[k] == ref[k] for k in SAME)
                print(f"[sweep_speedup] {engine} run {i}: {s:.1f} s", file=sys.stderr, flush=True)
    cells = len(ref["rows"]) // 2
    cell_s = ref["cell_seconds"]  # of the first local run
    best = {k: min(v) for k, v in seconds.items()}
    res = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "grid_command": "python bench/allred_grid.py " + " ".join(GRID) + " --engine local|ray --force",
        "cpus": os.cpu_count(),
        "ann_cells": len(ref["args"]["seeds"]),
        "grid_cells": cells,
        "cell_seconds_mean_local": {k: sum(v) / len(v) for k, v in cell_s.items()},
        "seconds": seconds,
        "best_seconds": best,
        "speedup_best": best["local"] / best["ray"],
        "speedup_mean": (sum(seconds["local"]) / len(seconds["local"])) / (sum(seconds["ray"]) / len(seconds["ray"])),
        "identical_results": identical,
        "note": "wall time of the whole script incl. Python/torch import and (ray) Ray start-up; shared 2-core machine",
    }
    write_results(res, args.out)
    print(json.dumps({k: res[k] for k in ("seconds", "speedup_best", "identical_results")}))
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
