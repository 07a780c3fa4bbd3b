"""Datta et al. reproduction (issue 3, experiment 1): LeNet-5 on MNIST, ANN vs converted SNN, plus the
same network compiled to Loihi fixed point on the emulator (full test set) and on Lava.

    .venv/bin/python bench/datta_reproduction.py --dataset mnist --model lenet5 --epochs 10 \
        --out bench/results/datta_lenet5_mnist.json

Paper (Fig. 9, LeNet-5/MNIST): ANN 98.83%, converted at T=100 98.82%.  Conversion here is threshold
balancing with Poisson input (Datta Fig. 3), hard reset (what Lava runs), no leak; modes ``max`` and
``scaled:k``.  The compiled network is the max-mode one at the first T.  Writes JSON (and the
artefacts into --workdir); every seed is recorded.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from loihic.compiler.config import CompileConfig
from loihic.compiler.encoding import encode_all as encoded
from loihic.compiler.netx.read import read_netx
from loihic.deploy.verification.accuracy import emulator_accuracy
from loihic.deploy.verification.parity import verify
from loihic.training.ann import train_ann
from loihic.training.checkpoint import save_checkpoint
from loihic.training.convert import convert
from loihic.training.data import load_dataset
from loihic.training.deployment import compile_checkpoint
from loihic.training.snn import evaluate_snn
from loihic.version import __version__

PAPER = {"ann": 0.9883, "converted_T100": 0.9882, "hybrid_T100": 0.9888, "source": "Datta et al., Fig. 9"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--limit-train", type=int, default=None)
    ap.add_argument("--timesteps", type=int, nargs="+", default=[100, 200])
    ap.add_argument("--scaled-k", type=float, default=0.8)
    ap.add_argument("--calib-samples", type=int, default=512)
    ap.add_argument("--test-samples", type=int, default=None, help="default: the whole test set")
    ap.add_argument("--lava-samples", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)")
    ap.add_argument("--workdir", default="runs/bench/datta")
    ap.add_argument("--out", default="bench/results/datta_lenet5_mnist.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    x_train, _ = load_dataset(args.dataset, "train")
    x_test, y_test = load_dataset(args.dataset, "test")
    if args.test_samples:
        x_test, y_test = x_test[: args.test_samples], y_test[: args.test_samples]
    res: dict = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "loihic_version": __version__,
        "seed": args.seed,
        "dataset": args.dataset,
        "model": args.model,
        "epochs": args.epochs,
        "limit_train": args.limit_train,
        "test_samples": len(x_test),
        "paper": PAPER,
        "seconds": {},
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads},
    }

    def log(msg: str) -> None:
        print(f"[datta] {msg}", file=sys.stderr, flush=True)

    t = time.perf_counter()
    ann = train_ann(args.model, args.dataset, args.epochs, args.seed, limit_train=args.limit_train)
    save_checkpoint(work / "ann.pt", ann, force=True)
    res["seconds"]["train_ann"] = time.perf_counter() - t
    res["ann_accuracy"] = ann["metrics"]["test_accuracy"]
    log(f"ANN {100 * res['ann_accuracy']:.2f}% ({res['seconds']['train_ann']:.0f} s)")

    res["converted"] = []
    first = None
    for steps in args.timesteps:
        for norm in ("max", f"scaled:{args.scaled_k}"):
            t = time.perf_counter()
            snn = convert(
                ann, x_train, steps, norm=norm, reset="hard", seed=args.seed, calib_samples=args.calib_samples
            )
            acc = evaluate_snn(snn, x_test, y_test, seed=args.seed, progress=True)
            row = {
                "timesteps": steps,
                "norm": norm,
                "float_snn_accuracy": acc,
                "seconds": time.perf_counter() - t,
                "thresholds": snn["snn"]["thresholds"],
            }
            res["converted"].append(row)
            log(f"T={steps} {norm}: float SNN {100 * acc:.2f}%")
            if first is None:
                first = (snn, steps)

    snn, steps = first
    save_checkpoint(work / "snn.pt", snn, force=True)
    _compiled = compile_checkpoint(str(work / "snn.pt"), str(work / "model.net"), CompileConfig(), force=True)
    net, rows = _compiled.path, _compiled.layers
    model = read_netx(net)
    t = time.perf_counter()
    res["emulator_accuracy"] = emulator_accuracy(model, x_test, y_test, steps, "poisson", args.seed)
    res["seconds"]["emulator"] = time.perf_counter() - t
    res["compiled"] = {"timesteps": steps, "norm": "max", "report": rows}
    res["quantization_gap"] = res["converted"][0]["float_snn_accuracy"] - res["emulator_accuracy"]
    log(f"emulator {100 * res['emulator_accuracy']:.2f}% on {len(x_test)} ({res['seconds']['emulator']:.0f} s)")

    n = min(args.lava_samples, len(x_test))
    spikes = encoded(x_test[:n], steps, "poisson", args.seed)
    rep = verify(str(net), spikes, y_test[:n], workers=args.workers, model=model)
    res["lava"] = rep.to_json()
    log(
        f"Lava {n} samples: {'IDENTICAL' if rep.identical else 'MISMATCH'}, accuracy {100 * rep.accuracy_lava:.2f}% "
        f"({rep.lava_seconds:.0f} s)"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=str))
    print(
        json.dumps(
            {
                "ann": res["ann_accuracy"],
                "converted": [(r["timesteps"], r["norm"], r["float_snn_accuracy"]) for r in res["converted"]],
                "emulator": res["emulator_accuracy"],
                "lava_identical": rep.identical,
                "lava_accuracy": rep.accuracy_lava,
            }
        )
    )
    return 0 if rep.identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
