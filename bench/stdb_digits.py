"""Hybrid training (issue 5; Datta et al. Fig. 9): ANN, conversion alone and conversion + STDB at several T,
with hard (Lava) and soft (paper) reset; the hard-reset network at one T compiled and run on the emulator
(full test set) and on Lava (spike for spike); training seconds per epoch, STDB at T vs the ANN.

    .venv/bin/python bench/stdb_digits.py --out bench/results/stdb_digits.json      # digits MLP, T 8 16 4 2
    .venv/bin/python bench/stdb_digits.py --dataset mnist --model lenet5 --ann-epochs 10 --epochs 10 \
        --timesteps 100 50 25 --out bench/results/stdb_lenet5_mnist.json           # the paper's row

Paper (Fig. 9, LeNet-5/MNIST): ANN 98.83%, converted at T=100 98.82%, hybrid at T=100 98.88%.  For
every T the ANN is threshold-balanced at T (``max`` norm, Poisson input, ``--calib-samples``) and
evaluated (conversion alone), then fine-tuned with STDB at T from that conversion.  Float accuracies use
``evaluate_snn`` on the test set with ``--seed`` spikes.  Writes JSON (``--out``) and a PNG of accuracy vs
T next to it.  Every seed and setting is recorded.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _results import write_results
from torch import nn

from loihic.compiler import ir
from loihic.compiler.config import CompileConfig
from loihic.compiler.encoding import encode_all as encoded
from loihic.compiler.load.checkpoint import ann_network
from loihic.compiler.netx.read import read_netx
from loihic.deploy.verification.accuracy import emulator_accuracy
from loihic.deploy.verification.parity import verify
from loihic.training.ann import train_ann
from loihic.training.checkpoint import save_checkpoint
from loihic.training.convert import convert
from loihic.training.data import load_dataset, subset
from loihic.training.deployment import compile_checkpoint
from loihic.training.models import build_model
from loihic.training.snn import evaluate_snn
from loihic.training.stdb import DEFAULT_ALPHA, DEFAULT_BETA, train_stdb
from loihic.version import __version__

PAPER = {
    "ann": 0.9883,
    "converted_T100": 0.9882,
    "hybrid_T100": 0.9888,
    "model": "lenet5",
    "dataset": "mnist",
    "source": "Datta et al., Fig. 9",
}


def log(msg: str) -> None:
    print(f"[stdb] {msg}", file=sys.stderr, flush=True)


def ann_epoch_seconds(
    network: ir.Network, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, epochs: int, device: str
) -> float:
    """Seconds per epoch of the ANN's own training loop (ann.py: Adam, cross-entropy) on the same data."""
    torch.manual_seed(seed)
    net = build_model(network).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = torch.randperm(len(xt), generator=gen)
        for b in range(0, len(xt), batch_size):
            idx = order[b : b + batch_size]
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(xt[idx].to(device)), yt[idx].to(device)).backward()
            opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def deployed_accuracy(ckpt: dict, stem: Path, x: np.ndarray, y: np.ndarray, steps: int, seed: int) -> float:
    """Accuracy of ``ckpt`` compiled to netx (default CompileConfig) on the bit-exact emulator."""
    save_checkpoint(stem.with_suffix(".pt"), ckpt, force=True)
    net = compile_checkpoint(
        str(stem.with_suffix(".pt")), str(stem.with_suffix(".net")), CompileConfig(), force=True
    ).path
    return emulator_accuracy(read_netx(net), x, y, steps, ckpt["snn"]["encoding"], seed, progress=False)


def plot(res: dict, path: Path) -> None:
    """Accuracy vs T, conversion alone vs conversion + STDB: float SNN (left), compiled on the emulator (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["rows"]
    ts = sorted({r["timesteps"] for r in rows})
    deployed = any("stdb_deployed_accuracy" in r for r in rows)
    fig, axes = plt.subplots(1, 2 if deployed else 1, figsize=(11 if deployed else 6, 4), squeeze=False)
    panels = [("", "float SNN")] + ([("_deployed", "compiled (Loihi fixed point, emulator)")] if deployed else [])
    for ax, (suffix, what) in zip(axes[0], panels, strict=False):
        ax.axhline(100 * res["ann_accuracy"], color="k", ls="--", lw=1, label="ANN")
        for reset, style in (("hard", "-"), ("soft", ":")):
            sel = {r["timesteps"]: r for r in rows if r["reset"] == reset and f"stdb{suffix}_accuracy" in r}
            if not sel:
                continue
            t_sel = [t for t in ts if t in sel]
            for tag, marker, color, label in (
                ("converted", "o", "tab:blue", "conversion alone"),
                ("stdb", "s", "tab:red", "conversion + STDB"),
            ):
                ax.plot(
                    t_sel,
                    [100 * sel[t][f"{tag}{suffix}_accuracy"] for t in t_sel],
                    marker + style,
                    color=color,
                    label=f"{label} ({reset} reset)",
                )
        if not suffix and res["dataset"] == PAPER["dataset"] and res["model"] == PAPER["model"]:
            ax.plot([100], [100 * PAPER["converted_T100"]], "x", color="tab:blue", ms=9, label="paper, converted")
            ax.plot([100], [100 * PAPER["hybrid_T100"]], "+", color="tab:red", ms=11, label="paper, hybrid")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ts, [str(t) for t in ts])
        ax.set_xlabel("time steps T")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(what, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    epochs = ", ".join(
        f"T={t}: {e}" for t, e in sorted(res["stdb_epochs_per_timesteps"].items(), key=lambda kv: int(kv[0]))
    )
    fig.suptitle(f"{res['model']} on {res['dataset']}: STDB vs conversion (STDB epochs {epochs})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--ann-epochs", type=int, default=8)
    ap.add_argument(
        "--epochs", type=int, nargs="+", default=[5], help="STDB epochs: one value, or one per --timesteps entry"
    )
    ap.add_argument("--timesteps", type=int, nargs="+", default=[8, 16, 4, 2], help="the first is deployed")
    ap.add_argument("--resets", nargs="+", default=["hard", "soft"], choices=["hard", "soft"])
    ap.add_argument("--lr", type=float, default=None, help="STDB lr (default: training.stdb's per data set)")
    ap.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    ap.add_argument("--beta", type=float, default=DEFAULT_BETA)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threshold-scale", type=float, default=1.0)
    ap.add_argument("--calib-samples", type=int, default=512)
    ap.add_argument("--limit-train", type=int, default=None, help="STDB on a seeded subset of the training set")
    ap.add_argument("--test-samples", type=int, default=None, help="default: the whole test set")
    ap.add_argument("--deploy-timesteps", type=int, default=None, help="T compiled and run (default: the first)")
    ap.add_argument("--lava-samples", type=int, default=200)
    ap.add_argument(
        "--deployed-samples",
        type=int,
        default=None,
        help="test samples for the compiled (emulator) accuracy of every hard-reset row (default: all; 0: skip)",
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)")
    ap.add_argument("--device", default="cpu", help="STDB training device (cpu, cuda)")
    ap.add_argument("--workdir", default=None, help="keep the checkpoints and netx file here")
    ap.add_argument("--out", default="bench/results/stdb_digits.json")
    args = ap.parse_args()
    if len(args.epochs) not in (1, len(args.timesteps)):
        ap.error(f"--epochs takes one value or one per --timesteps entry ({len(args.timesteps)}), got {args.epochs}")
    epochs_at = dict(
        zip(args.timesteps, args.epochs * len(args.timesteps) if len(args.epochs) == 1 else args.epochs, strict=True)
    )
    torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    x_train, y_train = load_dataset(args.dataset, "train")
    x_test, y_test = load_dataset(args.dataset, "test")
    if args.test_samples:
        x_test, y_test = x_test[: args.test_samples], y_test[: args.test_samples]
    x_stdb, y_stdb = subset(x_train, y_train, args.limit_train, args.seed)
    deploy_t = args.deploy_timesteps or args.timesteps[0]
    res: dict = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "loihic_version": __version__,
        "seed": args.seed,
        "dataset": args.dataset,
        "model": args.model,
        "ann_epochs": args.ann_epochs,
        "test_samples": len(x_test),
        "train_samples_stdb": len(x_stdb),
        "paper": PAPER,
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": args.threads,
            "device": args.device,
            "cpu": platform.processor(),
        },
        "evaluation": "float SNN (training.snn.evaluate_snn), test set, Poisson spikes with --seed",
    }
    work_ctx = tempfile.TemporaryDirectory()
    work = Path(args.workdir) if args.workdir else Path(work_ctx.name)
    work.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    ann = train_ann(args.model, args.dataset, args.ann_epochs, args.seed, progress=False)
    res["ann_accuracy"] = ann["metrics"]["test_accuracy"]
    res["ann_train_seconds"] = time.perf_counter() - t
    res["ann_seconds_per_epoch"] = ann_epoch_seconds(
        ann_network(ann, weights=False), x_stdb, y_stdb, args.batch_size, args.seed, 2, args.device
    )
    log(f"ANN {100 * res['ann_accuracy']:.2f}%, {res['ann_seconds_per_epoch']:.3f} s/epoch")

    rows, deploy_ckpt = [], None
    for steps in args.timesteps:
        for reset in args.resets:
            t = time.perf_counter()
            snn = convert(
                ann,
                x_train,
                steps,
                norm="max",
                reset=reset,
                seed=args.seed,
                calib_samples=args.calib_samples,
                progress=False,
            )
            conv_s = time.perf_counter() - t
            out = train_stdb(
                snn,
                x_stdb,
                y_stdb,
                steps,
                epochs_at[steps],
                args.seed,
                lr=args.lr,
                alpha=args.alpha,
                beta=args.beta,
                reset=reset,
                batch_size=args.batch_size,
                x_test=x_test,
                y_test=y_test,
                threshold_scale=args.threshold_scale,
                device=args.device,
                progress=True,
            )
            st = out["stdb"]
            row = {
                "timesteps": steps,
                "reset": reset,
                "thresholds": snn["snn"]["thresholds"],
                "converted_accuracy": st["test_accuracy_init"]
                if args.threshold_scale == 1.0
                else evaluate_snn(snn, x_test, y_test, seed=args.seed),
                "converted_scaled_accuracy": st["test_accuracy_init"],
                "stdb_accuracy": st["history"]["test_accuracy"][-1],
                "stdb_best_epoch_accuracy": max(st["history"]["test_accuracy"]),
                "history": st["history"],
                "lr": st["lr"],
                "convert_seconds": conv_s,
                "stdb_seconds_per_epoch": float(np.median(st["history"]["seconds"])),
            }
            row["epoch_cost_vs_ann"] = row["stdb_seconds_per_epoch"] / res["ann_seconds_per_epoch"]
            if reset == "hard" and args.deployed_samples != 0:  # what the chip runs: compiled, quantized
                n_dep = len(x_test) if args.deployed_samples is None else min(args.deployed_samples, len(x_test))
                row["deployed_samples"] = n_dep
                for tag, ck in (("converted", snn), ("stdb", out)):
                    row[f"{tag}_deployed_accuracy"] = deployed_accuracy(
                        ck, work / f"{tag}_T{steps}", x_test[:n_dep], y_test[:n_dep], steps, args.seed
                    )
                log(
                    f"T={steps} deployed (emulator, {n_dep} samples): converted "
                    f"{100 * row['converted_deployed_accuracy']:.2f}%, STDB {100 * row['stdb_deployed_accuracy']:.2f}%"
                )
            if reset == "soft":  # what Lava would run: the soft-trained weights with hard reset
                hard = {**out, "snn": {**out["snn"], "reset": "hard"}}
                row["stdb_accuracy_deployed_hard"] = evaluate_snn(hard, x_test, y_test, seed=args.seed)
            rows.append(row)
            log(
                f"T={steps} {reset}: converted {100 * row['converted_accuracy']:.2f}% -> STDB "
                f"{100 * row['stdb_accuracy']:.2f}% ({row['stdb_seconds_per_epoch']:.2f} s/epoch, "
                f"{row['epoch_cost_vs_ann']:.0f}x ANN)"
            )
            if steps == deploy_t and reset == "hard":
                deploy_ckpt = out
            res["rows"] = rows  # partial results survive a crash or a kill in the next row
            write_results(res, args.out, quiet=True)
    res["rows"] = rows
    res["stdb_epochs_per_timesteps"] = epochs_at
    res["stdb"] = {
        k: v
        for k, v in (deploy_ckpt or out)["stdb"].items()
        if k not in ("optimizer_state", "history", "init_thresholds", "timesteps", "reset")
    }
    res["reset_difference"] = [
        {
            "timesteps": s,
            "hard": h["stdb_accuracy"],
            "soft": o["stdb_accuracy"],
            "soft_trained_run_hard": o["stdb_accuracy_deployed_hard"],
            "soft_minus_hard": o["stdb_accuracy"] - h["stdb_accuracy"],
        }
        for s in args.timesteps
        for h in rows
        if h["timesteps"] == s and h["reset"] == "hard"
        for o in rows
        if o["timesteps"] == s and o["reset"] == "soft"
    ]

    identical = True
    if deploy_ckpt is not None:
        save_checkpoint(work / "stdb.pt", deploy_ckpt, force=True)
        _compiled = compile_checkpoint(str(work / "stdb.pt"), str(work / "stdb.net"), CompileConfig(), force=True)
        net, report = _compiled.path, _compiled.layers
        model = read_netx(net)
        t = time.perf_counter()
        emu = emulator_accuracy(
            model, x_test, y_test, deploy_t, deploy_ckpt["snn"]["encoding"], args.seed, progress=False
        )
        flt = deploy_ckpt["stdb"]["history"]["test_accuracy"][-1]
        res["deployment"] = {
            "timesteps": deploy_t,
            "reset": "hard",
            "float_accuracy": flt,
            "emulator_accuracy": emu,
            "float_minus_emulator": flt - emu,
            "emulator_seconds": time.perf_counter() - t,
            "report": report,
        }
        n = min(args.lava_samples, len(x_test))
        if n > 0:
            spikes = encoded(x_test[:n], deploy_t, deploy_ckpt["snn"]["encoding"], args.seed)
            rep = verify(str(net), spikes, y_test[:n], workers=args.workers, model=model)
            res["deployment"]["lava"] = rep.to_json()
            identical = rep.identical
            log(
                f"emulator {100 * emu:.2f}% (float {100 * flt:.2f}%); Lava {n} samples "
                f"{'IDENTICAL' if rep.identical else 'MISMATCH'}, {100 * rep.accuracy_lava:.2f}%"
            )
    res["seconds_total"] = time.perf_counter() - t_all
    res["complete"] = True
    write_results(res, args.out, plot)
    work_ctx.cleanup()
    print(
        json.dumps(
            {
                "ann": res["ann_accuracy"],
                "rows": [(r["timesteps"], r["reset"], r["converted_accuracy"], r["stdb_accuracy"]) for r in rows],
                "deployment": {
                    k: v for k, v in res.get("deployment", {}).items() if k in ("float_accuracy", "emulator_accuracy")
                },
                "lava_identical": identical,
            }
        )
    )
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
