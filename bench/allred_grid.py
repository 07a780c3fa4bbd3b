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
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from loihic import __version__
from loihic.compiler.errors import LoihicError
from loihic.training.adjust import with_l4, with_threshold_scale
from loihic.training.ann import train_ann
from loihic.training.convert import convert
from loihic.training.data import load_dataset, subset
from loihic.training.snn import evaluate_snn

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
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="bench/results/allred_grid.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x_train, y_train = load_dataset(args.dataset, "train")
    x_test, y_test = load_dataset(args.dataset, "test")
    if args.test_samples:
        x_test, y_test = x_test[: args.test_samples], y_test[: args.test_samples]
    rows, curves = [], []
    t0 = time.perf_counter()
    for seed in args.seeds:
        ann = train_ann(args.model, args.dataset, args.epochs, seed, limit_train=args.limit_train, progress=False)
        xs, ys = subset(x_train, y_train, args.sweep_samples, seed)
        for leak, reset in itertools.product(args.leaks, args.resets):
            snn = convert(
                ann,
                x_train,
                args.timesteps,
                reset=reset,
                leak=leak,
                seed=seed,
                calib_samples=args.calib_samples,
                progress=False,
            )
            for method in ("baseline", "l4"):
                best, info = _best(snn, xs, ys, args.threshold_scales, args.rs if method == "l4" else None, seed)
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
                    f"[allred] seed {seed} leak {leak} {reset} {method}: {100 * acc:.2f}% "
                    f"(chosen {info['chosen']}) [{time.perf_counter() - t0:.0f} s]",
                    file=sys.stderr,
                    flush=True,
                )
            if leak == args.curve_leak:
                chosen = {r["method"]: r["chosen"] for r in rows[-2:]}
                for steps, method in itertools.product(args.curve_timesteps, ("baseline", "l4")):
                    c = chosen[method]
                    try:
                        net = convert(
                            ann,
                            x_train,
                            steps,
                            reset=reset,
                            leak=leak,
                            seed=seed,
                            calib_samples=args.calib_samples,
                            progress=False,
                        )
                    except LoihicError as exc:  # e.g. a deep layer that never fires within so few steps
                        curves.append(
                            {
                                "seed": seed,
                                "reset": reset,
                                "method": method,
                                "timesteps": steps,
                                "test_accuracy": None,
                                "error": str(exc),
                            }
                        )
                        continue
                    net = net if c["rs"] is None else with_l4(net, c["rs"])[0]
                    net = with_threshold_scale(net, c["threshold_scale"])
                    curves.append(
                        {
                            "seed": seed,
                            "reset": reset,
                            "method": method,
                            "timesteps": steps,
                            "test_accuracy": evaluate_snn(net, x_test, y_test, seed=seed),
                        }
                    )
    summary = _summarise(rows)
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "loihic_version": __version__,
        "args": vars(args),
        "paper": PAPER_NOTE,
        "rows": rows,
        "summary": summary,
        "curves": curves,
        "seconds": time.perf_counter() - t0,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
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
