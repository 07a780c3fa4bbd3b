"""Fuzzed input files through the real CLI (issue 10.4).

For every file type loihic reads (netx, loihic checkpoint, torch.export .pt2, NIR, .npy inputs, .npy labels)
valid seed files (:mod:`sim_tests.fuzz.seeds`) are mutated (:mod:`sim_tests.fuzz.mutate`, seeded) and each
mutant goes through the command that reads it (:mod:`sim_tests.fuzz.campaign`), all in one driver process
(:mod:`sim_tests.fuzz.driver`).  Each must end with a valid output or exactly one ``loihic: error:`` line, a
non-zero exit, no traceback and no file left behind, within 20 s, with memory capped (a file that declares a
huge array must be refused, not loaded).

Sigma-delta netx files are a type of their own (``sdnn``: loihic's dense SDNN and lava-dl's PilotNet SDNN head,
mutated in their 'SDNN' neuron groups too), read by ``loihic simulate``.  ``LOIHIC_FUZZ_TYPES`` (e.g. ``sdnn``)
restricts a campaign to some types.

- normal suite: ``LOIHIC_FUZZ_SUBSET`` (default 20) mutants per type;
- ``make conformance`` / ``make test-slow`` (marker ``slow``): ``LOIHIC_FUZZ_COUNT`` (default 200) per type, seed
  ``LOIHIC_FUZZ_SEED`` (default 0); summary in ``runs/fuzz/summary-seed<S>.json``.

Failing cases are saved under ``runs/fuzz/failures/<type>-<k>/`` (the mutant and a case.json with the command).
The defects this suite found (:data:`FIXED`) are fixed; each keeps a reproduction that must end cleanly.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from sim_tests.fuzz.campaign import REPO, TYPES, Case, make_cases, run_cases, save_failure, verdict
from sim_tests.fuzz.seeds import build_seeds

ENV_SEED, ENV_COUNT, ENV_SUBSET = "LOIHIC_FUZZ_SEED", "LOIHIC_FUZZ_COUNT", "LOIHIC_FUZZ_SUBSET"
ENV_TYPES = "LOIHIC_FUZZ_TYPES"  # e.g. "sdnn" or "netx,sdnn": only these file types (default: all of TYPES)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


# --- defects this suite found, now fixed; each keeps a reproduction below -----------------------------------
FIXED: dict[str, str] = {
    "read-before-size-check": "compiler/netx/read.py read every dataset whole before checking its declared size: "
    "a dataset declaring 2^40 elements was allocated (MemoryError traceback, or minutes of filling)",
    "read-int-of-inf": "compiler/netx/read.py int() of an inf vThMant/iDecay/vDecay/shape: OverflowError escaped",
    "read-nan-pair": "compiler/netx/read.py cast a NaN stride/padding/dilation with astype(int): a RuntimeWarning "
    "line before the error, and nonsense sizes in it",
    "open-npy-no-mmap": "deploy/commands.py (simulate --input; now deploy/cli/) loaded the whole array without "
    "checking the declared shape against the file size: MemoryError traceback",
    "open-npy-token-error": "deploy/commands.py (now deploy/cli/) did not catch numpy's header parser error "
    "(tokenize.TokenError)",
}


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_seeds(tmp_path_factory.mktemp("fuzz-seeds"))


def _types() -> tuple[str, ...]:
    raw = os.environ.get(ENV_TYPES, "").strip()
    types = tuple(t.strip() for t in raw.split(",") if t.strip()) if raw else TYPES
    unknown = set(types) - set(TYPES)
    assert not unknown, f"{ENV_TYPES}: unknown types {sorted(unknown)}; expected some of {TYPES}"
    return types


# the normal suite's subset runs fewer cases of these types (time budget of ``make test``); the full run all
SUBSET_CAP = {"temporal": 6}


def _campaign(
    seeds: dict[str, Path], work: Path, per_type: int, seed: int, cap: dict[str, int] | None = None
) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # h5py / numpy notes while *writing* the mutants
        cases = make_cases(seeds, work / "cases", per_type, seed, _types())
    cases = [c for c in cases if c.k < (cap or {}).get(c.type, per_type)]
    results = run_cases(cases, work)
    counts: Counter = Counter()
    failures = []
    for case in cases:
        res = results[case.id]
        why = verdict(case, res)
        if why is None:
            counts[(case.type, "valid output" if res["rc"] == 0 else "refused")] += 1
            continue
        counts[(case.type, "FAILED")] += 1
        entry = {"case": case.id, "mutation": case.mutation, "why": why}
        entry["saved"] = str(save_failure(case, res, why, REPO / "runs" / "fuzz" / "failures"))
        failures.append(entry)
    per_type = {t: {k[1]: v for k, v in counts.items() if k[0] == t} for t in _types()}
    return {"seed": seed, "per_type": per_type, "failures": failures}


def _check(summary: dict[str, Any]) -> None:
    assert not summary["failures"], json.dumps(summary["failures"][:8], indent=1)


def test_fuzz_subset(seeds, tmp_path):
    _check(_campaign(seeds, tmp_path, _env_int(ENV_SUBSET, 20), _env_int(ENV_SEED, 0), SUBSET_CAP))


@pytest.mark.slow
def test_fuzz_full(seeds, tmp_path):
    summary = _campaign(seeds, tmp_path, _env_int(ENV_COUNT, 200), _env_int(ENV_SEED, 0))
    out = REPO / "runs" / "fuzz"
    out.mkdir(parents=True, exist_ok=True)
    types = "" if _types() == TYPES else "-" + "+".join(_types())
    (out / f"summary-seed{summary['seed']}{types}.json").write_text(json.dumps(summary, indent=1) + "\n")
    _check(summary)


# --- one reproduction per fixed defect: each must now end in one clean error line ---------------------
def _netx_with(seed: Path, folder: Path, key: str, **dataset: Any) -> str:
    (folder / "in.net").write_bytes(seed.read_bytes())
    with h5py.File(folder / "in.net", "r+") as f:
        del f[key]
        f.create_dataset(key, **dataset)
    return "in.net"


def _npy_header(seed: Path, folder: Path, shape: tuple[int, ...] | None, corrupt: bool = False) -> str:
    x = np.load(seed)
    with open(folder / "in.npy", "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": x.dtype.str, "fortran_order": False, "shape": shape})
        fh.write(x.tobytes())
    if corrupt:  # an unbalanced header dict: numpy's header tokenizer raises tokenize.TokenError
        data = bytearray((folder / "in.npy").read_bytes())
        data[20:40] = b"(" * 20
        (folder / "in.npy").write_bytes(bytes(data))
    return "in.npy"


def _reproductions(seeds: dict[str, Path], root: Path) -> list[Case]:
    simulate_net = ["simulate", "in.net", "--input", str(seeds["S.npy"]), "-o", "out.npy"]
    simulate_npy = ["simulate", str(seeds["model.net"]), "--input", "in.npy", "-o", "out.npy"]
    s_shape = np.load(seeds["S.npy"]).shape
    made = {
        # 2^40 int64 paddings declared (8 TiB), a few bytes stored
        "read-before-size-check": lambda d: _netx_with(
            seeds["conv.net"], d, "layer/1/padding", shape=(2**40,), dtype=np.int64, chunks=(1 << 20,), fillvalue=2
        ),
        "read-int-of-inf": lambda d: _netx_with(seeds["model.net"], d, "layer/2/neuron/vDecay", data=np.inf),
        "read-nan-pair": lambda d: _netx_with(seeds["conv.net"], d, "layer/1/stride", data=np.asarray([np.nan, 1.0])),
        "open-npy-no-mmap": lambda d: _npy_header(seeds["S.npy"], d, (2**40, *s_shape[1:])),
        "open-npy-token-error": lambda d: _npy_header(seeds["S.npy"], d, s_shape, corrupt=True),
    }
    cases = []
    for key, make in made.items():
        folder = root / key
        folder.mkdir(parents=True)
        name = make(folder)
        argv = simulate_net if name == "in.net" else simulate_npy
        cases.append(Case(key, "netx" if name == "in.net" else "npy", 0, "", FIXED[key], argv, str(folder), "out.npy"))
    return cases


@pytest.fixture(scope="module")
def reproduced(seeds: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    """Each reported defect's reproduction, all run in one driver process: case -> verdict (None = fixed)."""
    root = tmp_path_factory.mktemp("known")
    cases = _reproductions(seeds, root)
    results = run_cases(cases, root)
    return {c.id: verdict(c, results[c.id]) for c in cases}


@pytest.mark.parametrize("key", list(FIXED))
def test_fixed_defect_stays_fixed(reproduced, key):
    assert reproduced[key] is None, f"{FIXED[key]}: {reproduced[key]}"
