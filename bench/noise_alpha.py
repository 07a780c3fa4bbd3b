"""The alpha sweep (Jiang & Zhang, Fig. 6 style): stage-3 test accuracy vs T for several alpha (eq. 10), with
alpha = inf drawn as stage 2 (the membrane term vanishes) and the T = 1 accuracy as a dotted line.

    .venv/bin/python bench/noise_alpha.py --init runs/noise/fmnist.pt     # the experiment-1 checkpoint
    .venv/bin/python bench/noise_alpha.py --dataset fashion-mnist --epochs 200   # train it first (~5 min)

alpha <= 2 leaves no residual noise N' (eq. 7; training/noise/options.py's ``residual_gain`` is 0 for the default
N_noise range of width 1), so those curves are the deterministic normalised-potential network; alpha > 2
adds N' of growing range.  Every noisy evaluation is averaged over ``--eval-seeds`` noise draws.  Writes JSON
and a PNG.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from _results import write_results

from loihic.compiler.fileio import file_sha256
from loihic.training.checkpoint import load_checkpoint
from loihic.training.data import load_dataset
from loihic.training.noise import NoiseConfig, evaluate_noise, residual_gain, train_noise
from loihic.version import __version__


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    cmap = plt.get_cmap("viridis")
    curves = res["curves"]
    for i, (name, acc) in enumerate(curves.items()):
        ts = sorted(int(k) for k in acc)
        style = dict(color="k", ls="-.", marker="x") if name == "inf" else dict(color=cmap(i / len(curves)), marker=".")
        label = "alpha = inf (stage 2)" if name == "inf" else f"alpha = {name}"
        ax.plot(ts, [100 * acc[str(t)]["mean"] for t in ts], label=label, **style)
    ax.axhline(100 * res["t1_stage2"], color="k", ls=":", lw=1, label="single-step SNN (T=1, stage 2)")
    ax.set_xlabel("time steps T")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"stage 3 vs alpha: {res['model']} on {res['dataset']} (beta {res['beta']})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--init", default=None, help="a noise-trained checkpoint (else train one with --epochs)")
    ap.add_argument("--dataset", default="fashion-mnist", help="when training")
    ap.add_argument("--model", default="ap2-512fc", help="when training")
    ap.add_argument("--epochs", type=int, default=200, help="when training")
    ap.add_argument("--seed", type=int, default=0, help="training seed (when training) and first noise seed")
    ap.add_argument("--alphas", type=float, nargs="+", default=[1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0])
    ap.add_argument("--beta", type=float, default=0.5)
    ap.add_argument("--timesteps", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6, 8, 10])
    ap.add_argument("--eval-seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="default bench/results/noise_alpha_<dataset>.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    if args.init:
        ckpt = load_checkpoint(args.init, "snn")
        source = {"init": args.init, "sha256": file_sha256(args.init)}
    else:
        ckpt = train_noise(args.model, args.dataset, args.epochs, args.seed, progress=True)
        source = {"trained": {"epochs": args.epochs, "seed": args.seed}}
    if ckpt["snn"].get("method") != "noise":
        print(f"error: {args.init}: not a noise-trained checkpoint (snn.method {ckpt['snn'].get('method')!r})")
        return 2
    dataset = ckpt["dataset"]
    x, y = load_dataset(dataset, "test")
    noise = NoiseConfig.from_checkpoint(ckpt)
    seeds = [args.seed + k for k in range(args.eval_seeds)]

    def mean_acc(stage: str, steps: int, alpha: float) -> dict:
        accs = [evaluate_noise(ckpt, x, y, steps, stage, alpha, args.beta, seed=s) for s in seeds]
        return {"mean": statistics.fmean(accs), "runs": accs}

    curves: dict[str, dict[str, dict]] = {}
    gains = {}
    for alpha in [*args.alphas, math.inf]:
        name = "inf" if math.isinf(alpha) else f"{alpha:g}"
        stage, a = ("2", 4.0) if math.isinf(alpha) else ("3", alpha)  # stage 2 ignores alpha
        curves[name] = {str(t): mean_acc(stage, t, a) for t in args.timesteps}
        gains[name] = 1.0 if math.isinf(alpha) else residual_gain(noise, alpha)
        print(
            f"alpha {name:>4s}: " + " ".join(f"T={t} {100 * curves[name][str(t)]['mean']:.2f}" for t in args.timesteps),
            file=sys.stderr,
            flush=True,
        )
    res = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "loihic": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "dataset": dataset,
        "model": ckpt["model"],
        "checkpoint": source,
        "beta": args.beta,
        "eval_seeds": seeds,
        "test_samples": int(len(x)),
        "t1_stage2": mean_acc("2", 1, 4.0)["mean"],
        "residual_gain_k": gains,
        "curves": curves,
        "seconds": time.perf_counter() - t_start,
    }
    out = Path(args.out or f"bench/results/noise_alpha_{dataset}.json")
    write_results(res, out, plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
