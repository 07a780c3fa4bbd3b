"""A fuzz campaign: mutated files -> the real CLI commands that read them (in one driver process) -> verdicts.

Per file type, the command that reads it (emulator backend throughout)::

    netx        simulate M.net --input S.npy -o out.npy   |  evaluate M.net --data X.npy --labels Y.npy
    checkpoint  compile M.pt -o out.net
    pt2         convert M.pt2 --calib X.npy -T 8 -o out.pt
    nir         compile M.nir -o out.net                   (the snnTorch-like seed: -T 8)
    npy         simulate model.net --input M.npy -o out.npy  |  evaluate model.net --data M.npy --labels Y.npy
                |  convert ann.pt --calib M.npy -T 8 -o out.pt
    labels      evaluate model.net --data X.npy --labels M.npy
    sdnn        simulate M.net --input SD.npy -o out.npy   (sdnn.net; sdnn_conv.net with SDC.npy)
                |  evaluate M.net --data X.npy --labels Y.npy   (refused by name for an SDNN file)
    temporal    simulate M.net --input TS.npy -o out.npy [--stream]   (temporal.net: delays and a dense_rec layer)

A case passes when it ends with a valid output (exit 0, the output file written, no error line, no traceback)
or with a clean refusal (non-zero exit, exactly one ``loihic: error:`` line, no traceback, no file left in the
folder), within the deadline, and without an exception escaping ``main()``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim_tests.fuzz.mutate import MUTATORS

TYPES = (
    "netx",
    "checkpoint",
    "pt2",
    "nir",
    "npy",
    "labels",
    "sdnn",
    "temporal",
)  # new types go last: (seed, t, k) stays
DEADLINE_S = 20.0
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Case:
    id: str
    type: str
    k: int
    seed_file: str
    mutation: str
    argv: list[str]
    cwd: str
    output: str | None  # the file a success must write (evaluate writes none)


def _command(kind: str, k: int, seeds: dict[str, Path], m: str) -> tuple[str, list[str], str | None]:
    """(seed file name, argv, output) of case ``k`` of ``kind``; ``m`` is the mutated file's name."""
    s = {name: str(p) for name, p in seeds.items()}
    evaluate_net = ["evaluate", m, "--data", s["X.npy"], "--labels", s["Y.npy"]]
    if kind == "netx":
        seed = ("model.net", "conv.net")[k % 2]
        if k % 4 < 2:
            return seed, ["simulate", m, "--input", s["S.npy"], "-o", "out.npy"], "out.npy"
        return seed, evaluate_net, None
    if kind == "checkpoint":
        return ("mlp.pt", "lenet5.pt")[k % 2], ["compile", m, "-o", "out.net"], "out.net"
    if kind == "pt2":
        return (
            ("mlp.pt2", "conv.pt2")[k % 2],
            ["convert", m, "--calib", s["X.npy"], "-T", "8", "-o", "out.pt"],
            "out.pt",
        )
    if kind == "nir":
        if k % 2:
            return "snntorch.nir", ["compile", m, "-T", "8", "-o", "out.net"], "out.net"
        return "model.nir", ["compile", m, "-o", "out.net"], "out.net"
    if kind == "npy":
        if k % 3 == 0:
            return "S.npy", ["simulate", s["model.net"], "--input", m, "-o", "out.npy"], "out.npy"
        if k % 3 == 1:
            return "X.npy", ["evaluate", s["model.net"], "--data", m, "--labels", s["Y.npy"]], None
        return "X.npy", ["convert", s["ann.pt"], "--calib", m, "-T", "8", "-o", "out.pt"], "out.pt"
    if kind == "labels":
        return "Y.npy", ["evaluate", s["model.net"], "--data", s["X.npy"], "--labels", m], None
    if kind == "sdnn":
        seed, x = (("sdnn.net", "SD.npy"), ("sdnn_conv.net", "SDC.npy"))[k % 2]
        if k % 8 == 7:
            return seed, evaluate_net, None
        return seed, ["simulate", m, "--input", s[x], "-o", "out.npy"], "out.npy"
    if kind == "temporal":
        argv = ["simulate", m, "--input", s["TS.npy"], "-o", "out.npy"] + (["--stream"] if k % 2 else [])
        return "temporal.net", argv, "out.npy"
    raise ValueError(kind)


def make_cases(
    seeds: dict[str, Path], root: Path, per_type: int, seed: int, types: tuple[str, ...] = TYPES
) -> list[Case]:
    """``per_type`` mutants of each of ``types``; case ``k`` of a type is the same whichever others run."""
    cases = []
    for t, kind in enumerate(TYPES):
        if kind not in types:
            continue
        for k in range(per_type):
            rng = np.random.default_rng([seed, t, k])
            seed_name, _, _ = _command(kind, k, seeds, "")
            folder = root / f"{kind}-{k:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            name = "in" + Path(seed_name).suffix
            what = MUTATORS[kind](seeds[seed_name], folder / name, rng)
            _, argv, output = _command(kind, k, seeds, name)
            cases.append(Case(f"{kind}-{k:03d}", kind, k, seed_name, what, argv, str(folder), output))
    return cases


def run_cases(cases: list[Case], work: Path, budget_s: float | None = None) -> dict[str, dict[str, Any]]:
    """Run every case in driver processes; a driver that dies is restarted after the case it was running."""
    cases_path, out_path = work / "cases.json", work / "results.jsonl"
    cases_path.write_text(json.dumps([{**c.__dict__, "deadline_s": DEADLINE_S} for c in cases]))
    out_path.write_text("")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}
    results: dict[str, dict[str, Any]] = {}
    start, t0 = 0, time.monotonic()
    budget = budget_s or (len(cases) * DEADLINE_S + 120)
    while start < len(cases):
        left = budget - (time.monotonic() - t0)
        proc = subprocess.run(
            [sys.executable, "-m", "sim_tests.fuzz.driver", str(cases_path), str(out_path), str(start)],
            env=env,
            capture_output=True,
            text=True,
            timeout=max(left, 30),
        )
        started = None
        for line in out_path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("started"):
                started = rec["id"]
            else:
                results[rec["id"]] = rec
                started = None
        if started is not None and started not in results:  # the driver died inside this case
            results[started] = {
                "id": started,
                "rc": None,
                "exception": f"driver process died (exit {proc.returncode}): {proc.stderr[-1500:]}",
                "timeout": False,
                "stdout": "",
                "stderr": "",
                "new_files": [],
                "seconds": None,
            }
        done = {c.id for c in cases} & set(results)
        start = next((i for i, c in enumerate(cases) if c.id not in done), len(cases))
        if proc.returncode == 0 and start < len(cases):
            raise RuntimeError(f"driver ended early at {start}: {proc.stderr[-2000:]}")
    return results


def shown_lines(stderr: str) -> list[str]:
    """stderr as a terminal shows it: text after the last carriage return of each line, without tqdm bars."""
    shown = [raw.rsplit("\r", 1)[-1].strip() for raw in stderr.split("\n")]
    return [s for s in shown if s and "%|" not in s]


def verdict(case: Case, res: dict[str, Any]) -> str | None:
    """None when the case ended acceptably, else why not."""
    if res.get("exception"):
        return "exception escaped main(): " + res["exception"].strip().splitlines()[-1][:300]
    if res.get("timeout"):
        return f"no answer within {DEADLINE_S:.0f} s"
    text = res["stderr"] + res["stdout"]
    if "Traceback" in text:
        return "a traceback was printed"
    lines = shown_lines(res["stderr"])
    errors = [s for s in lines if s.startswith("loihic: error:")]
    if res["rc"] == 0:
        if errors:
            return f"exit 0 with an error line: {errors[0][:200]}"
        if case.output and case.output not in res["new_files"]:
            return f"exit 0 but {case.output} was not written"
        extra = set(res["new_files"]) - {case.output}
        return f"exit 0 and stray files {sorted(extra)}" if extra else None
    if res["new_files"]:
        return f"refused (exit {res['rc']}) but left files {res['new_files']}"
    if len(lines) != 1 or not errors:
        return f"refused (exit {res['rc']}) with {len(lines)} lines, expected one 'loihic: error:' line: {lines[:4]}"
    return None


def save_failure(case: Case, res: dict[str, Any], why: str, root: Path) -> Path:
    """The mutated file and a case.json (argv to replay: run it from this folder) under ``root``/<id>."""
    folder = root / case.id
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    name = next(a for a in case.argv if a.startswith("in."))
    shutil.copy2(Path(case.cwd) / name, folder / name)
    info = {
        **case.__dict__,
        "cwd": str(folder),
        "why": why,
        "result": res,
        "replay": f"cd {folder} && loihic " + " ".join(case.argv),
    }
    (folder / "case.json").write_text(json.dumps(info, indent=1) + "\n")
    return folder
