"""LeNet-5 on MNIST (loihic's own architecture, ``loihic train --model lenet5``) as a sigma-delta network against
rate conversion at T=100: accuracy on the test set, synaptic operations per image against the ANN's MACs,
emulator time per image, Lava on 16 images.  Needs MNIST (``make data``)::

    nice .venv/bin/python bench/sdnn_lenet5_mnist.py --out bench/results/sdnn_lenet5_mnist.json

The ANN: ``loihic train --model lenet5 --dataset mnist --epochs 3 --seed 0`` (``train_ann``, no bias, as the
README's LeNet-5 report).  SDNN: ``loihic convert ann.pt --calib calib.npy --neuron sdnn --sdnn-pooling
fold|layer``, ``loihic compile``; rate: ``loihic.convert(ann, calib, timesteps=100)`` (threshold balancing, the
CLI's defaults), ``loihic.compile``.  bench/_sdnn_vs_rate.py says what is counted.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from _results import write_results
from _sdnn_vs_rate import macs_as_written, rate_side, sdnn_side, table

from loihic.training.ann import evaluate_ann, train_ann
from loihic.training.checkpoint import save_checkpoint
from loihic.training.data import load_dataset
from loihic.training.models import model_from_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rate-timesteps", type=int, default=100)
    ap.add_argument("--calib-samples", type=int, default=512)
    ap.add_argument("--test-samples", type=int, default=None, help="default: the full 10,000")
    ap.add_argument("--lava-samples", type=int, default=8)
    ap.add_argument("--time-samples", type=int, default=200, help="images timed through loihic.evaluate")
    ap.add_argument("--stream-samples", type=int, default=1000, help="SDNN: images run as streams of 8")
    ap.add_argument("--rate-samples", type=int, default=1000, help="rate: test images (T=100 is slow)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pooling", nargs="+", default=["fold", "layer"], choices=["fold", "layer"])
    ap.add_argument("--skip-rate", action="store_true")
    ap.add_argument("--workdir", default="runs/sdnn_lenet5_mnist")
    ap.add_argument("--out", default="bench/results/sdnn_lenet5_mnist.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    xtr, _ = load_dataset("mnist", "train")
    xte, yte = load_dataset("mnist", "test")
    if args.test_samples:
        xte, yte = xte[: args.test_samples], yte[: args.test_samples]
    res: dict = {
        "command": "python bench/sdnn_lenet5_mnist.py",
        "args": vars(args),
        "python": platform.python_version(),
    }
    t = time.perf_counter()
    ann = train_ann("lenet5", "mnist", args.epochs, args.seed, progress=False)
    res["train_seconds"] = time.perf_counter() - t
    res["float_accuracy"] = evaluate_ann(model_from_checkpoint(ann), xte, yte)
    save_checkpoint(work / "ann.pt", ann, force=True)
    rng = np.random.default_rng(args.seed)
    calib = xtr[rng.choice(len(xtr), args.calib_samples, replace=False)]
    np.save(work / "calib.npy", calib)
    written = macs_as_written(ann)
    res["ann_layers_as_written"] = written
    res["sdnn"] = {}
    for pooling in args.pooling:
        sd = sdnn_side(work / "ann.pt", work / "calib.npy", xte, yte, work, written, args.lava_samples,
                       args.time_samples, args.seed, ("--sdnn-pooling", pooling), tag=pooling,
                       stream_samples=args.stream_samples)  # fmt: skip
        sd["gap_points"] = 100 * (res["float_accuracy"] - sd["accuracy"])
        res["sdnn"][pooling] = sd
        write_results(res, args.out)
    if not args.skip_rate:
        n = args.rate_samples
        res["rate"] = rate_side(
            work / "ann.pt", calib, xte[:n], yte[:n], args.rate_timesteps, work, written, args.lava_samples,
            args.time_samples, args.seed,
        )  # fmt: skip
        res["rate"]["float_accuracy_same_images"] = evaluate_ann(model_from_checkpoint(ann), xte[:n], yte[:n])
        res["rate"]["gap_points"] = 100 * (res["rate"]["float_accuracy_same_images"] - res["rate"]["accuracy"])
        write_results(res, args.out)
    print(table("LeNet-5 / MNIST", res["float_accuracy"], res["sdnn"], res.get("rate")))


if __name__ == "__main__":
    main()
