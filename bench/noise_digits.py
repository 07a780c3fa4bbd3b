"""Noise-based T=1 training (Jiang & Zhang) end to end: float accuracy of stages 2 and 3 and of the deployable
plain-LIF variants at T = 1, 5, 10, then the compiled networks on the emulator (whole test set) and on
Lava (first ``--lava-samples`` test samples, checked spike-identical to the emulator), each compiled
with 8-bit and with fewer (``--input-bits``) graded input bits, next to the float network it quantizes.
Writes JSON and a PNG of accuracy vs T next to it; ``--save`` keeps the trained checkpoint
(``bench/noise_alpha.py`` sweeps it).

    .venv/bin/python bench/noise_digits.py                      # digits, ap2-512fc, 100 epochs
    .venv/bin/python bench/noise_digits.py --dataset fashion-mnist --model ap2-512fc --epochs 200 \
        --lava-samples 200 --save runs/noise/fmnist.pt                # issue 4, experiment 1

Float modes (training/noise/evaluate.py): "2", "3" (stage 3, alpha 4, beta 0.5), "lif" (what a plain compiled
network runs), "lif+mean" and "lif+noise" (plain LIF plus a constant current c, and plus c + the stage-3
residual noise N'), each with c = beta (1 - lambda) = 0.25 (steady state matches stage 3's mean) and c =
beta = 0.5.  Modes with noise are averaged over ``--eval-seeds`` noise draws.  Compiled: the plain network
and the offset networks (c folded into the bias) at each T.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from _results import write_results

from loihic.compiler.config import CompileConfig
from loihic.compiler.encoding import direct_bits
from loihic.compiler.encoding import encode_all as encoded
from loihic.compiler.netx.read import read_netx
from loihic.deploy.verification.accuracy import emulator_accuracy
from loihic.deploy.verification.parity import verify
from loihic.training.checkpoint import save_checkpoint, with_input_bits
from loihic.training.data import load_dataset
from loihic.training.deployment import compile_checkpoint
from loihic.training.noise import evaluate_noise, steady_offset, train_noise, with_offset
from loihic.version import __version__

PAPER_FMNIST_T5 = 0.9389  # Jiang & Zhang, Table 1: Fashion-MNIST AP2-512FC-10FC, stage 3, T = 5


def plot(res: dict, path: Path) -> None:
    """Accuracy vs T: float stages 2/3 and the deployable LIF variants (lines), compiled on the emulator (markers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, acc in res["float"].items():
        ts = sorted(int(k[1:]) for k in acc)
        style = "-" if name.startswith("stage") else "--"
        ax.plot(ts, [100 * acc[f"T{t}"]["mean"] for t in ts], style, marker=".", label=f"float {name}")
    for name, dep in res["deployed"].items():
        ts = sorted(int(k[1:]) for k in dep if k.startswith("T"))
        ax.plot(
            ts, [100 * dep[f"T{t}"]["emulator_accuracy"] for t in ts], "s", ms=7, mfc="none", label=f"compiled {name}"
        )
    if res["dataset"] == "fashion-mnist" and res["model"] == "ap2-512fc":
        ax.plot([5], [100 * PAPER_FMNIST_T5], "k*", ms=11, label="paper, stage 3 (T=5)")
    ax.set_xlabel("time steps T")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"noise-trained {res['model']} on {res['dataset']} ({res['epochs']} epochs, seed {res['seed']})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--model", default="ap2-512fc")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=None, help="default: training/noise/options.py DATASET_LR or 1e-4")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--limit-train", type=int, default=None)
    ap.add_argument("--timesteps", default="1,5,10")
    ap.add_argument("--alpha", type=float, default=4.0)
    ap.add_argument("--beta", type=float, default=0.5)
    ap.add_argument("--eval-seeds", type=int, default=3, help="noise draws averaged for the noisy float modes")
    ap.add_argument("--samples", type=int, default=None, help="test samples for float and emulator (default all)")
    ap.add_argument("--lava-samples", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--input-bits", default="8,4", help="graded input bits the networks are compiled with (compile --input-bits)"
    )
    ap.add_argument("--out", default=None, help="default bench/results/noise_<dataset>_<model>.json")
    ap.add_argument("--save", default=None, help="also write the trained checkpoint here (overwrites)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    steps_list = [int(t) for t in args.timesteps.split(",")]
    input_bits = [int(b) for b in args.input_bits.split(",")]
    out = Path(args.out or f"bench/results/noise_{args.dataset}_{args.model}.json")
    t_start = time.perf_counter()

    t0 = time.perf_counter()
    ckpt = train_noise(
        args.model,
        args.dataset,
        args.epochs,
        args.seed,
        lr=args.lr,
        batch_size=args.batch_size,
        limit_train=args.limit_train,
        progress=True,
    )
    train_s = time.perf_counter() - t0
    if args.save:
        save_checkpoint(args.save, ckpt, force=True)
    x, y = load_dataset(args.dataset, "test")
    if args.samples:
        x, y = x[: args.samples], y[: args.samples]
    c_steady, c_beta = steady_offset(args.beta), float(args.beta)
    variants = {  # name -> (mode, offset, noisy)
        "stage2": ("2", None, True),
        "stage3": ("3", None, True),
        "lif": ("lif", None, False),
        f"lif+mean c={c_steady:g}": ("lif+mean", c_steady, False),
        f"lif+mean c={c_beta:g}": ("lif+mean", c_beta, False),
        f"lif+noise c={c_steady:g}": ("lif+noise", c_steady, True),
        f"lif+noise c={c_beta:g}": ("lif+noise", c_beta, True),
    }
    t0 = time.perf_counter()
    floats: dict[str, dict[str, object]] = {}
    for name, (mode, offset, noisy) in variants.items():
        floats[name] = {}
        for steps in steps_list:
            seeds = range(args.eval_seeds if noisy else 1)
            accs = [
                evaluate_noise(ckpt, x, y, steps, mode, args.alpha, args.beta, seed=s, offset=offset) for s in seeds
            ]
            floats[name][f"T{steps}"] = {"mean": statistics.fmean(accs), "runs": accs}
        print(
            f"float {name:22s} " + "  ".join(f"T={t}: {100 * floats[name][f'T{t}']['mean']:.2f}%" for t in steps_list),
            file=sys.stderr,
        )
    float_s = time.perf_counter() - t0

    deployed: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="loihic-noise-") as tmp:
        nets = {
            "plain": ckpt,
            f"offset c={c_steady:g}": with_offset(ckpt, c_steady),
            f"offset c={c_beta:g}": with_offset(ckpt, c_beta),
        }
        for bits in input_bits:
            for base, ck in nets.items():
                name = base if bits == 8 else f"{base}, {bits}-bit input"
                pt, net = Path(tmp) / "n.pt", Path(tmp) / f"{len(deployed)}.net"
                save_checkpoint(pt, ck, force=True)
                _compiled = compile_checkpoint(str(pt), str(net), CompileConfig(input_bits=bits))
                path, rows = _compiled.path, _compiled.layers
                model = read_netx(str(path))
                encoding = model.meta["encoding"]
                deployed[name] = {
                    "input_bits": bits,
                    "encoding": encoding,
                    "layer_scales": {r["layer"]: r["scale"] for r in rows},
                    "layer_sqnr_db": {r["layer"]: r["sqnr_db"] for r in rows},
                    "first_layer_limited_by": rows[0]["scale_limited_by"],
                }
                for steps in steps_list:
                    # the float network the compiled one quantizes: plain LIF, same bias, same B-bit input
                    flt = evaluate_noise(with_input_bits(ck, bits), x, y, steps, "lif", seed=args.seed)
                    t0 = time.perf_counter()
                    emu = emulator_accuracy(model, x, y, steps, encoding, args.seed, device="cpu", progress=False)
                    emu_s = time.perf_counter() - t0
                    n = min(args.lava_samples, len(x))
                    rep = verify(
                        str(path),
                        encoded(x[:n], steps, encoding, args.seed),
                        y[:n],
                        input_message_bits=direct_bits(encoding),
                        device="cpu",
                        progress=False,
                        model=model,
                    )
                    deployed[name][f"T{steps}"] = {
                        "float_accuracy": flt,
                        "emulator_accuracy": emu,
                        "emulator_samples": int(len(x)),
                        "emulator_seconds": emu_s,
                        "lava_samples": n,
                        "lava_identical": rep.identical,
                        "lava_mismatches": rep.mismatches,
                        "lava_spikes_compared": rep.spikes_compared,
                        "lava_accuracy": rep.accuracy_lava,
                        "emulator_accuracy_on_lava_samples": rep.accuracy_emulator,
                        "lava_seconds": rep.lava_seconds,
                    }
                    print(
                        f"deployed {name:28s} T={steps}: float {100 * flt:.2f}%, emulator {100 * emu:.2f}% "
                        f"({len(x)}), Lava {100 * rep.accuracy_lava:.2f}% ({n}), identical {rep.identical}",
                        file=sys.stderr,
                    )

    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "loihic": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": args.threads,
        "dataset": args.dataset,
        "model": args.model,
        "epochs": args.epochs,
        "seed": args.seed,
        "hyperparams": ckpt["hyperparams"],
        "train_metrics": ckpt["metrics"],
        "alpha": args.alpha,
        "beta": args.beta,
        "eval_seeds": args.eval_seeds,
        "test_samples": int(len(x)),
        "float": floats,
        "deployed": deployed,
        "seconds": {"train": train_s, "float_eval": float_s, "total": time.perf_counter() - t_start},
    }
    write_results(result, out, plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
