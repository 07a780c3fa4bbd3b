"""Lava's cost per sample against the length of the run (issue 13): time ``run_lava`` for several N.

    .venv/bin/python bench/lava_per_sample.py --n 4 24 44 84 164 --out bench/results/lava_per_sample.json

Network: the issue's MLP (784-128-10 CUBA, slayer-exported, T=100, 15% random input spikes), built by
``bench/emulator_speed.py``.  Per N: wall time of one ``run_lava`` call (best of ``--repeats``), and
the time per sample; a flat ``s_per_sample`` column means Lava's cost per sample does not grow with N.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import emulator_speed as es  # noqa: E402

from loihic.deploy.lava.run import run_lava  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[4, 24, 44, 84, 164])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("bench/results/lava_per_sample.json"))
    args = ap.parse_args()
    x, source = es.inputs("mlp", max(args.n), 100, seed=0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mlp.net"
        es.export(es.mlp_blocks(), x[:8], path)
        run_lava(str(path), x[:2], progress=False)  # warm: imports, caches
        for n in args.n:
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                run_lava(str(path), x[:n], progress=False)
                best = min(best, time.perf_counter() - t0)
            rows.append({"n": n, "seconds": best, "s_per_sample": best / n})
            print(json.dumps(rows[-1]), file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(sys.argv), "input": source, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
