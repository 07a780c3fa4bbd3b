"""Messages per inference vs read-out error of compiled sigma-delta networks, for the automatic delta thresholds.

    .venv/bin/python bench/sdnn_thresholds.py --out bench/results/sdnn_thresholds.json

A seeded random ReLU MLP (12-24-16-5) and conv net (2x8x8: conv3x3+BN, avgpool, conv3x3/2, dense 3), the
networks of sim_tests/unit/test_sdnn_compile.py, calibrated on random images in [0, 1]; for each budget
``deploy.sdnn_thresholds.choose_thresholds`` tries thresholds ``fraction * activation std`` per layer on the
emulator (inputs held, stream timing) and keeps the largest fraction within the budget.  Records every trial
(fraction, mean messages per inference, max read-out change relative to the zero-threshold network), the chosen
one, and the derived bound on |read-out - float ANN| of the chosen network on held-out images.  Writes JSON.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
from _results import write_results

from loihic.compiler.driver import compile_source
from loihic.deploy import sdnn_thresholds as st
from loihic.version import __version__

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sim_tests.unit.test_sdnn_compile import convnet, mlp  # noqa: E402

FRACTIONS = (2.0, 1.0, 0.5, 0.25, 0.1, 0.05, 0.02)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench/results/sdnn_thresholds.json")
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.01, 0.05, 0.2])
    ap.add_argument("--calibration", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    res = {"version": __version__, "python": platform.python_version(), "args": vars(args), "networks": {}}
    for name, make in (("mlp", mlp), ("conv", convnet)):
        rng = np.random.default_rng(args.seed)
        net = make(rng)
        x_cal = rng.random((args.calibration, *net.input.shape))
        x_test = rng.random((args.calibration, *net.input.shape))
        rows = []
        for budget in args.budgets:
            choice = st.choose_thresholds(net, x_cal, budget, FRACTIONS)
            with tempfile.TemporaryDirectory() as tmp:
                comp = compile_source(choice.network, Path(tmp) / "m.net")
                k = st.settle_index(net)
                run = st.run_sdnn(comp.path, comp.network, x_test, k + 2)
                z = st.ann_forward(choice.network, x_test)[-1]
                err = np.abs(run.output[..., k] - z)
                bound = st.error_bound(comp.network, x_test, "float")
            rows.append(
                {
                    "budget": budget,
                    "chosen_fraction": choice.chosen.fraction,
                    "chosen_thresholds": choice.chosen.thresholds,
                    "trials": [t.__dict__ for t in choice.trials],
                    "compile_table": comp.layers,
                    "test_messages_per_inference": float(run.messages.mean()),
                    "test_max_error_vs_float_ann": float(err.max()),
                    "test_max_float_ann_output": float(np.abs(z).max()),
                    "test_max_derived_bound": float(bound.max()),
                    "test_bound_holds": bool(np.all(err <= bound + 1e-9)),
                }
            )
            print(
                f"{name} budget {budget}: fraction {choice.chosen.fraction}, messages "
                f"{choice.trials[-1].messages:.1f} (th 0) -> {choice.chosen.messages:.1f}, cal error "
                f"{choice.chosen.error:.4f}; test max |out - ANN| {err.max():.4f} (bound {bound.max():.3f}, "
                f"|out| up to {np.abs(z).max():.3f})"
            )
        res["networks"][name] = rows
    write_results(res, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
