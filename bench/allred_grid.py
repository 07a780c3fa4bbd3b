"""Allred & Roy's comparison (issue 3, experiments 2 and 3): converted SNN accuracy vs leak, for
{soft, hard reset} x {baseline, L4-norm adjusted}, each with its own threshold-scale sweep (and, for
L4, r_s sweep) chosen on TRAINING data only, over several seeds; then accuracy vs T curves.

    .venv/bin/python bench/allred_grid.py --dataset mnist --model lenet5 --epochs 5 --timesteps 16 \
        --seeds 0 1 2 --out bench/results/allred_lenet5_mnist.json

Per seed: one ANN (trained with that seed); per (leak, reset): threshold balancing (max, Poisson,
that seed) -> baseline and L4 networks -> sweeps on ``--sweep-samples`` training images -> the chosen
setting evaluated on the test set.  All of this is the float SNN (soft reset cannot be deployed on
Lava; the compiled hard-reset networks are checked against it by the other benchmarks).
Writes JSON plus two PNGs next to it (accuracy vs leak; accuracy vs T).

The grid runs on the sweep runner (:mod:`loihic.deploy.scale.sweep`): first one cell per seed (the ANN), then one
cell per (seed, leak, reset) (conversion, the threshold-scale and r_s sweeps of both methods, the test-set
evaluation, the accuracy-vs-T curve); each finished cell is written to ``--cells-dir`` (default ``OUT.cells/``)
at once, and a re-run skips the finished ones (``--force`` recomputes).  ``--engine ray`` runs each cell as
a Ray task (``--ray-address`` for a cluster); the result is the same as with the default ``--engine local``,
which gives the numbers of the earlier sequential script.  ``seconds`` is the time of this run (a resumed
run counts only the cells it computed).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _results import SWEEP_OPTIONS, add_sweep_options, sweep_kwargs

from loihic.compiler.errors import LoihicError
from loihic.deploy.scale.ray_lava import ray_session
from loihic.deploy.scale.sweep import SweepError, run_sweep
from loihic.training.adjust import with_l4, with_threshold_scale
from loihic.training.ann import train_ann
from loihic.training.convert import convert
from loihic.training.data import load_dataset, subset
from loihic.training.snn import evaluate_snn
from loihic.version import __version__

PAPER_NOTE = (
    "Allred & Roy: L4 helps most at fast leak and with hard reset; e.g. VGG-5/CIFAR-10 no leak: baseline "
    "lost 3.27 points (86.05%), L4 regained 1.13 of them."
)


def _best(
    ckpt: dict, xs: np.ndarray, ys: np.ndarray, scales: list[float], rs_values: list[float] | None, seed: int
) -> tuple[dict, dict]:
    """Sweep threshold scale (and r_s) on training data; return the best checkpoint and the sweep."""
    best, best_acc, sweep = None, -1.0, []
    for rs in rs_values or [None]:
        base = ckpt if rs is None else with_l4(ckpt, rs)[0]
        for f in scales:
            cand = with_threshold_scale(base, f)
            acc = evaluate_snn(cand, xs, ys, seed=seed + 1000)
            sweep.append({"rs": rs, "threshold_scale": f, "train_accuracy": acc})
            if acc > best_acc:
                best, best_acc = cand, acc
    chosen = max(sweep, key=lambda r: r["train_accuracy"])
    return best, {"chosen": chosen, "sweep": sweep}


def _setting(args: argparse.Namespace) -> dict:
    """The options a cell's result depends on (everything but the grid axes, the output and the engine)."""
    keys = ("dataset", "model", "epochs", "limit_train", "timesteps", "threshold_scales", "rs", "sweep_samples")
    keys += ("test_samples", "calib_samples", "curve_timesteps", "curve_leak", "threads")
    return {k: getattr(args, k) for k in keys}


_DATA: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # per process: the cells of one worker share the data


def _data(dataset: str, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    if (dataset, split, limit) not in _DATA:
        x, y = load_dataset(dataset, split)
        _DATA[dataset, split, limit] = (x[:limit], y[:limit]) if limit else (x, y)
    return _DATA[dataset, split, limit]


def _ann_cell(c: dict, context: None) -> dict:
    """Cell of the first sweep: the ANN of one seed, as bytes (``torch.save``, base64) for the grid cells."""
    torch.set_num_threads(c["threads"])
    ann = train_ann(c["model"], c["dataset"], c["epochs"], c["seed"], limit_train=c["limit_train"], progress=False)
    buf = io.BytesIO()
    torch.save(ann, buf)
    return {"test_accuracy": ann["metrics"]["test_accuracy"], "checkpoint": base64.b64encode(buf.getvalue()).decode()}


def _load_ann(result: dict) -> dict:
    return torch.load(io.BytesIO(base64.b64decode(result["checkpoint"])), weights_only=True)


def _grid_cell(c: dict, anns: dict[int, dict]) -> dict:
    """Cell of the grid: one (seed, leak, reset): conversion, the threshold (and r_s) sweeps of both methods on
    training data, the chosen settings on the test set, and the accuracy-vs-T curve if ``leak == curve_leak``."""
    torch.set_num_threads(c["threads"])
    seed, leak, reset = c["seed"], c["leak"], c["reset"]
    ann = anns[seed]
    x_train, y_train = _data(c["dataset"], "train")
    x_test, y_test = _data(c["dataset"], "test", c["test_samples"])
    xs, ys = subset(x_train, y_train, c["sweep_samples"], seed)
    conv = {"reset": reset, "leak": leak, "seed": seed, "calib_samples": c["calib_samples"], "progress": False}
    snn = convert(ann, x_train, c["timesteps"], **conv)
    rows, curves = [], []
    for method in ("baseline", "l4"):
        best, info = _best(snn, xs, ys, c["threshold_scales"], c["rs"] if method == "l4" else None, seed)
        acc = evaluate_snn(best, x_test, y_test, seed=seed)
        rows.append(
            {
                "seed": seed,
                "leak": leak,
                "reset": reset,
                "method": method,
                "ann_accuracy": ann["metrics"]["test_accuracy"],
                "test_accuracy": acc,
                **info,
            }
        )
        print(
            f"[allred] seed {seed} leak {leak} {reset} {method}: {100 * acc:.2f}% (chosen {info['chosen']})",
            file=sys.stderr,
            flush=True,
        )
    if leak == c["curve_leak"]:
        chosen = {r["method"]: r["chosen"] for r in rows}
        for steps, method in itertools.product(c["curve_timesteps"], ("baseline", "l4")):
            point = {"seed": seed, "reset": reset, "method": method, "timesteps": steps}
            try:
                net = convert(ann, x_train, steps, **conv)
            except LoihicError as exc:  # e.g. a deep layer that never fires within so few steps
                curves.append({**point, "test_accuracy": None, "error": str(exc)})
                continue
            ch = chosen[method]
            net = net if ch["rs"] is None else with_l4(net, ch["rs"])[0]
            net = with_threshold_scale(net, ch["threshold_scale"])
            curves.append({**point, "test_accuracy": evaluate_snn(net, x_test, y_test, seed=seed)})
    return {"rows": rows, "curves": curves}


def _run_grid(args: argparse.Namespace, setting: dict, sweep: dict) -> list[dict]:
    """The two sweeps: one ANN per seed, then the grid cells; the grid cells' results in grid order."""
    keys = ("model", "dataset", "epochs", "limit_train", "threads")
    ann_cells = [{"stage": "ann", **{k: setting[k] for k in keys}, "seed": s} for s in args.seeds]
    done = run_sweep(_ann_cell, ann_cells, desc="allred ANNs", **sweep).results
    anns = {s: _load_ann(r) for s, r in zip(args.seeds, done, strict=True)}
    cells = [
        {"stage": "grid", **setting, "seed": seed, "leak": leak, "reset": reset}
        for seed in args.seeds
        for leak, reset in itertools.product(args.leaks, args.resets)
    ]
    return run_sweep(_grid_cell, cells, context=anns, desc="allred grid", **sweep).results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--limit-train", type=int, default=None)
    ap.add_argument("--timesteps", type=int, default=16, help="T at which conversion loses accuracy")
    ap.add_argument("--leaks", type=float, nargs="+", default=[1.0, 0.99, 0.97, 0.95, 0.9])
    ap.add_argument("--resets", nargs="+", default=["soft", "hard"])
    ap.add_argument("--threshold-scales", type=float, nargs="+", default=[0.6, 0.7, 0.8, 0.9, 1.0, 1.1])
    ap.add_argument("--rs", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 4.0])
    ap.add_argument("--sweep-samples", type=int, default=1000, help="training images for the sweeps")
    ap.add_argument("--test-samples", type=int, default=None, help="default: the whole test set")
    ap.add_argument("--calib-samples", type=int, default=512)
    ap.add_argument("--curve-timesteps", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    ap.add_argument("--curve-leak", type=float, default=1.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1, help="torch threads per cell")
    ap.add_argument("--out", default="bench/results/allred_grid.json")
    add_sweep_options(ap)
    args = ap.parse_args()
    t0 = time.perf_counter()
    setting = _setting(args)
    sweep = sweep_kwargs(args, args.out)
    try:
        with ray_session(args.ray_address) if args.engine == "ray" else contextlib.nullcontext():
            done = _run_grid(args, setting, sweep)  # one Ray instance for both sweeps
    except SweepError as exc:
        print(f"allred_grid: error: {exc}", file=sys.stderr)
        return 1
    rows = [r for d in done for r in d["rows"]]
    curves = [c for d in done for c in d["curves"]]
    summary = _summarise(rows)
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "loihic_version": __version__,
        "args": {k: v for k, v in vars(args).items() if k not in SWEEP_OPTIONS},
        "paper": PAPER_NOTE,
        "rows": rows,
        "summary": summary,
        "curves": curves,
        "seconds": time.perf_counter() - t0,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".part")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(out)
    _plot(summary, curves, out, args)
    for s in summary:
        print(
            f"leak {s['leak']:<5} {s['reset']:<5} "
            f"baseline {100 * s['baseline_mean']:.2f}±{100 * s['baseline_std']:.2f}"
            f"  L4 {100 * s['l4_mean']:.2f}±{100 * s['l4_std']:.2f}  gain {100 * s['gain_mean']:+.2f}"
        )
    return 0


def _summarise(rows: list[dict]) -> list[dict]:
    out = []
    keys = sorted({(r["leak"], r["reset"]) for r in rows}, key=lambda k: (-k[0], k[1]))
    for leak, reset in keys:
        acc = {
            m: np.array([r["test_accuracy"] for r in rows if (r["leak"], r["reset"], r["method"]) == (leak, reset, m)])
            for m in ("baseline", "l4")
        }
        gain = acc["l4"] - acc["baseline"]
        out.append(
            {
                "leak": leak,
                "reset": reset,
                "seeds": len(gain),
                "baseline_mean": float(acc["baseline"].mean()),
                "baseline_std": float(acc["baseline"].std()),
                "l4_mean": float(acc["l4"].mean()),
                "l4_std": float(acc["l4"].std()),
                "gain_mean": float(gain.mean()),
                "gain_std": float(gain.std()),
                "chosen_rs": [
                    r["chosen"]["rs"] for r in rows if (r["leak"], r["reset"], r["method"]) == (leak, reset, "l4")
                ],
            }
        )
    return out


def _plot(summary: list[dict], curves: list[dict], out: Path, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, reset in zip(axes, ("soft", "hard"), strict=True):
        rows = [s for s in summary if s["reset"] == reset]
        leaks = [s["leak"] for s in rows]
        for m, color in (("baseline", "tab:gray"), ("l4", "tab:blue")):
            ax.errorbar(
                leaks,
                [100 * s[f"{m}_mean"] for s in rows],
                yerr=[100 * s[f"{m}_std"] for s in rows],
                marker="o",
                capsize=3,
                color=color,
                label="L4-adjusted" if m == "l4" else "baseline",
            )
        ax.set_title(f"{reset} reset")
        ax.set_xlabel("leak per step (1 = none)")
        ax.invert_xaxis()
    axes[0].set_ylabel("test accuracy %")
    axes[0].legend()
    fig.suptitle(f"{args.model} / {args.dataset}, T={args.timesteps}, seeds {args.seeds} (mean ± std)")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".leak.png"), dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for (reset, m), style in zip(
        itertools.product(("soft", "hard"), ("baseline", "l4")), ("--", "-", ":", "-."), strict=True
    ):
        pts = [c for c in curves if c["reset"] == reset and c["method"] == m]
        ts = sorted({c["timesteps"] for c in pts})
        ts = [t for t in ts if all(c["test_accuracy"] is not None for c in pts if c["timesteps"] == t)]
        means = [100 * np.mean([c["test_accuracy"] for c in pts if c["timesteps"] == t]) for t in ts]
        ax.plot(ts, means, style, marker="o", label=f"{reset}, {'L4' if m == 'l4' else 'baseline'}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("time steps T")
    ax.set_ylabel("test accuracy %")
    ax.set_title(f"{args.model} / {args.dataset}, leak {args.curve_leak}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out.with_suffix(".timesteps.png"), dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
