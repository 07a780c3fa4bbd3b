"""Time to a target accuracy (Jiang & Zhang, Figs. 4-5): noise-based T=1 training (stages 1-3) against direct
surrogate-gradient BPTT at T = N, same network, neuron, surrogate (eq. 4), loss, optimizer, lr, seed and
machine, one process, one torch thread.

    .venv/bin/python bench/noise_vs_bptt.py                  # Fashion-MNIST, ap2-512fc, T = 10

After every training epoch each method's network is evaluated on the test set at T = N: the noise network in
stage 3 (alpha, beta; the paper's "Ours (stage 3)") and, for reference, as the deployable plain LIF with the
steady offset folded in ("lif+mean"); the BPTT network as the plain LIF it is (what the compiler deploys).
Training seconds exclude evaluation (both include loading the data set, the same for both); a warm-up run
of each trainer first keeps torch's one-off initialisation out of the first method's time.  A method stops
at ``--max-epochs`` or once its cumulative training time passes ``--max-train-seconds``.  For each target
accuracy: the first epoch and the training seconds at which each method reached it, and the saving
1 - t_noise / t_bptt (paper, Fashion-MNIST at 92%: 135 s vs 528 s, about 75% less).  Writes JSON and a
PNG (accuracy vs training time, and time to each target).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _results import write_results

from loihic.training.data import load_dataset
from loihic.training.noise import evaluate_noise, steady_offset, train_bptt, train_noise
from loihic.training.snn import evaluate_snn
from loihic.version import __version__

PAPER = {"dataset": "fashion-mnist", "target": 0.92, "noise_seconds": 135, "bptt_seconds": 528, "source": "Fig. 5"}


class _BudgetSpentError(Exception):
    """Raised from the epoch callback when a method has spent its training-time budget."""


def run_method(name: str, train: Any, evaluate: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Train with ``train(on_epoch=...)``; after each epoch evaluate with every function in ``evaluate``."""
    history: dict[str, list[float]] = {"epoch": [], "train_seconds": []}
    for key in evaluate:
        history[key] = []
    clock = {"start": time.perf_counter(), "eval": 0.0}

    def on_epoch(epoch: int, ckpt: dict[str, Any]) -> None:
        t_eval = time.perf_counter()
        history["epoch"].append(epoch)
        history["train_seconds"].append(t_eval - clock["start"] - clock["eval"])
        for key, fn in evaluate.items():
            history[key].append(fn(ckpt))
        clock["eval"] += time.perf_counter() - t_eval
        print(
            f"[{name}] epoch {epoch}: {history['train_seconds'][-1]:.1f} s "
            + " ".join(f"{k} {100 * history[k][-1]:.2f}%" for k in evaluate),
            file=sys.stderr,
            flush=True,
        )
        if history["train_seconds"][-1] >= args.max_train_seconds:
            raise _BudgetSpentError

    try:
        train(on_epoch=on_epoch)
        stopped = "max-epochs"
    except _BudgetSpentError:
        stopped = "max-train-seconds"
    return {"history": history, "stopped_by": stopped, "eval_seconds": clock["eval"]}


def first_reach(hist: dict[str, list[float]], key: str, target: float) -> dict[str, Any] | None:
    for i, acc in enumerate(hist[key]):
        if acc >= target:
            return {"epoch": hist["epoch"][i], "train_seconds": hist["train_seconds"][i], "accuracy": acc}
    return None


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    t = res["timesteps"]
    for method, key, style, color, label in (
        ("noise", "stage3", "-", "tab:blue", f"noise, stage 3 (T={t})"),
        ("noise", "lif+mean", ":", "tab:cyan", f"noise, deployable LIF + offset (T={t})"),
        ("bptt", "lif", "-", "tab:orange", f"direct BPTT at T={t}, LIF"),
    ):
        h = res[method]["history"]
        ax.plot(h["train_seconds"], [100 * a for a in h[key]], style, color=color, label=label)
    for target in res["targets"]:
        ax.axhline(100 * target["target"], color="grey", lw=0.6, ls="--")
    ax.set_xlabel("training time (s, evaluation excluded)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(bottom=max(0.0, 100 * min(tg["target"] for tg in res["targets"]) - 15))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{res['model']} on {res['dataset']}: accuracy vs training time", fontsize=9)
    labels, noise_s, bptt_s = [], [], []
    for target in res["targets"]:
        labels.append(f"{100 * target['target']:g}%")
        noise_s.append(target["noise"]["train_seconds"] if target["noise"] else np.nan)
        bptt_s.append(target["bptt"]["train_seconds"] if target["bptt"] else np.nan)
    pos = np.arange(len(labels))
    bx.bar(pos - 0.2, noise_s, 0.4, color="tab:blue", label="noise (stage 3)")
    bx.bar(pos + 0.2, bptt_s, 0.4, color="tab:orange", label=f"direct BPTT (T={t})")
    for i, target in enumerate(res["targets"]):
        missing = [key for key in ("noise", "bptt") if target[key] is None]
        if missing:
            what = "neither" if len(missing) == 2 else missing[0]
            bx.text(
                i,
                0,
                f"{what}\nreached" if what == "neither" else f"{what} not\nreached",
                ha="center",
                va="bottom",
                fontsize=7,
            )
    bx.set_xticks(pos, labels)
    bx.set_xlabel("target test accuracy")
    bx.set_ylabel("training time to reach it (s)")
    bx.legend(fontsize=7)
    bx.set_title("time to target (paper's Fig. 5 style)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--model", default="ap2-512fc")
    ap.add_argument("--timesteps", type=int, default=10, help="N: BPTT trains and both evaluate at this T")
    ap.add_argument("--targets", type=float, nargs="+", default=[0.80, 0.84, 0.86, 0.88, 0.90, 0.92])
    ap.add_argument("--max-epochs", type=int, default=200)
    ap.add_argument("--max-train-seconds", type=float, default=600.0, help="per method")
    ap.add_argument("--lr", type=float, default=None, help="both methods (default training/noise/options.py's)")
    ap.add_argument("--alpha", type=float, default=4.0)
    ap.add_argument("--beta", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="default bench/results/noise_vs_bptt_<dataset>.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out or f"bench/results/noise_vs_bptt_{args.dataset}.json")
    x, y = load_dataset(args.dataset, "test")
    steps, seed = args.timesteps, args.seed
    common = {"lr": args.lr, "progress": False}
    # warm-up: torch's one-off lazy initialisation (first forward/backward, allocator) would otherwise be
    # charged to whichever method runs first
    train_noise(args.model, args.dataset, 1, seed, limit_train=256, **common)
    train_bptt(args.model, args.dataset, 1, seed, timesteps=steps, limit_train=256, **common)
    noise = run_method(
        "noise",
        lambda on_epoch: train_noise(args.model, args.dataset, args.max_epochs, seed, on_epoch=on_epoch, **common),
        {
            "stage3": lambda c: evaluate_noise(c, x, y, steps, "3", args.alpha, args.beta, seed=seed),
            "lif+mean": lambda c: evaluate_noise(
                c, x, y, steps, "lif+mean", args.alpha, args.beta, seed=seed, offset=steady_offset(args.beta)
            ),
        },
        args,
    )
    bptt = run_method(
        "bptt",
        lambda on_epoch: train_bptt(
            args.model, args.dataset, args.max_epochs, seed, timesteps=steps, on_epoch=on_epoch, **common
        ),
        {"lif": lambda c: evaluate_snn(c, x, y, timesteps=steps, seed=seed)},
        args,
    )
    targets = []
    for target in sorted(args.targets):
        a, b = first_reach(noise["history"], "stage3", target), first_reach(bptt["history"], "lif", target)
        targets.append(
            {
                "target": target,
                "noise": a,
                "bptt": b,
                "time_saving": 1.0 - a["train_seconds"] / b["train_seconds"] if a and b else None,
            }
        )
        print(
            f"target {100 * target:g}%: noise "
            + (f"{a['train_seconds']:.1f} s (epoch {a['epoch']})" if a else "not reached")
            + ", bptt "
            + (f"{b['train_seconds']:.1f} s (epoch {b['epoch']})" if b else "not reached"),
            file=sys.stderr,
        )
    res = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "loihic": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": args.threads,
        "cpu": platform.processor(),
        "dataset": args.dataset,
        "model": args.model,
        "timesteps": steps,
        "seed": seed,
        "alpha": args.alpha,
        "beta": args.beta,
        "lr": args.lr,
        "max_epochs": args.max_epochs,
        "max_train_seconds": args.max_train_seconds,
        "test_samples": int(len(x)),
        "evaluation": "test set after every epoch; noise: stage 3 (and lif+mean c=beta(1-lambda)); bptt: plain LIF",
        "paper": PAPER,
        "targets": targets,
        "noise": noise,
        "bptt": bptt,
    }
    write_results(res, out, plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
