"""Replay conformance cases: ``python -m sim_tests.conformance.replay FOLDER...`` or ``--seed S --index I...``
(``--sdnn``: the indices of sigma-delta cases).

A FOLDER is a saved failure (``net.net``, ``input.npy``, ``case.json``, see :mod:`sim_tests.conformance.harness`):
its files are run again on Lava and on the emulator and compared layer by layer.  ``--seed``/``--index``
regenerate cases from the generator instead (nothing is saved).  Prints one line per case; exit 1 if any differs.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from loihic.deploy.lava import compat as lava_compat

    lava_compat.install()
    from sim_tests.conformance import generator as gen
    from sim_tests.conformance.harness import check_files, run_case

    p = argparse.ArgumentParser(prog="python -m sim_tests.conformance.replay", description=__doc__.split("\n")[0])
    p.add_argument("folders", nargs="*", type=Path)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--index", type=int, nargs="*", default=[])
    p.add_argument("--stream", action="store_true", help="stream timing for --seed/--index cases")
    p.add_argument("--sdnn", action="store_true", help="--index numbers are SDNN cases (make_sdnn_case)")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    bad = 0
    for folder in args.folders:
        spec = json.loads((folder / "case.json").read_text())
        stream = bool(spec.get("stream", False))
        spec = {k: v for k, v in spec.items() if k not in ("outcome", "replay", "stream")}
        case = gen.Case(spec, [], np.load(folder / "input.npy"))
        out = check_files(case, folder / "net.net", stream)
        bad += not out.ok
        print(f"{folder}: {'identical' if out.ok else out.problem}")
    for index in args.index:
        make = gen.make_sdnn_case if args.sdnn else gen.make_case
        case = make(args.seed if args.seed is not None else 1010, index)
        out = run_case(case, save=False, stream=args.stream)
        bad += not out.ok
        print(f"{out.name}: {'identical' if out.ok else out.problem}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
