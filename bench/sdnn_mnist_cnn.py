"""The MNIST CNN of bench/user_pytorch_mnist.py (a user's PyTorch model through torch.export) as a sigma-delta
network and as a rate-coded LIF network at T=64: accuracy on the whole test set, Lava on 16 images, synaptic
operations per image against the ANN's MACs, emulator time per image.  Needs MNIST (``make data``)::

    nice .venv/bin/python bench/sdnn_mnist_cnn.py --out bench/results/sdnn_mnist_cnn.json

The model is trained as in bench/user_pytorch_mnist.py (3 epochs, seed 0), exported with torch.export, and taken
through the CLI: ``loihic convert mnist_cnn.pt2 --calib calib.npy --neuron sdnn --sdnn-pooling fold|layer -o
sdnn.pt`` (the default accuracy budget 0.01 chooses the delta thresholds; average pooling folded into the next
layer, or a layer of its own), ``loihic compile sdnn.pt -o sdnn.net``; the rate network through
``loihic.convert(pt2, calib, timesteps=64)`` (the CLI's defaults) and ``loihic.compile``.  bench/_sdnn_vs_rate.py
says what is counted.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from _results import write_results
from _sdnn_vs_rate import macs_as_written, rate_side, sdnn_side, table
from user_pytorch_mnist import float_accuracy, train_mnist_cnn

from loihic.training.data import load_dataset
from loihic.training.imported import load_ann


def full_rate_run(res: dict) -> dict:
    """The rate network of bench/user_pytorch_mnist.py (the same model, calibration draw and T=64) on the whole test
    set, from its recorded JSON; ``same_model`` when its float accuracy equals this run's (a sanity check that the
    same weights came out of training, not a proof)."""
    path = Path(__file__).parent / "results" / "user_pytorch_mnist.json"
    if not path.is_file():
        return {}
    rec = json.loads(path.read_text())
    return {
        "source": "bench/results/user_pytorch_mnist.json",
        "emulator_accuracy": rec["emulator_accuracy"],
        "float_accuracy": rec["float_accuracy"],
        "timesteps": rec["args"]["timesteps"],
        "same_model": rec["float_accuracy"] == res["float_accuracy"] and rec["args"]["epochs"] == res["args"]["epochs"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rate-timesteps", type=int, default=64)
    ap.add_argument("--calib-samples", type=int, default=512)
    ap.add_argument("--test-samples", type=int, default=None, help="default: the full 10,000")
    ap.add_argument("--lava-samples", type=int, default=16)
    ap.add_argument("--time-samples", type=int, default=200, help="images timed through loihic.evaluate")
    ap.add_argument("--stream-samples", type=int, default=1000, help="SDNN: images run as streams of 8")
    ap.add_argument("--rate-samples", type=int, default=1000, help="rate: test images (T=64 is slow)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-rate", action="store_true")
    ap.add_argument("--pooling", nargs="+", default=["layer", "fold"], choices=["fold", "layer"])
    ap.add_argument("--fold-samples", type=int, default=None, help="test images of --sdnn-pooling fold (default: all)")
    ap.add_argument("--workdir", default="runs/sdnn_mnist_cnn")
    ap.add_argument("--out", default="bench/results/sdnn_mnist_cnn.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    xtr, ytr = load_dataset("mnist", "train")
    xte, yte = load_dataset("mnist", "test")
    if args.test_samples:
        xte, yte = xte[: args.test_samples], yte[: args.test_samples]
    res: dict = {"command": "python bench/sdnn_mnist_cnn.py", "args": vars(args), "python": platform.python_version()}
    t = time.perf_counter()
    model = train_mnist_cnn(xtr, ytr, args.epochs, args.seed)
    res["train_seconds"] = time.perf_counter() - t
    res["float_accuracy"] = float_accuracy(model, xte, yte)
    pt2 = work / "mnist_cnn.pt2"
    torch.export.save(torch.export.export(model, (torch.tensor(xte[:2]),)), pt2)
    rng = np.random.default_rng(args.seed)
    calib = xtr[rng.choice(len(xtr), args.calib_samples, replace=False)]
    np.save(work / "calib.npy", calib)
    written = macs_as_written(load_ann(pt2))
    res["ann_layers_as_written"] = written
    res["sdnn"] = {}
    for pooling in args.pooling:
        n = args.fold_samples if pooling == "fold" and args.fold_samples else len(xte)
        sd = sdnn_side(pt2, work / "calib.npy", xte[:n], yte[:n], work, written, args.lava_samples, args.time_samples,
                       args.seed, ("--sdnn-pooling", pooling), tag=pooling,
                       stream_samples=args.stream_samples)  # fmt: skip
        sd["float_accuracy_same_images"] = float_accuracy(model, xte[:n], yte[:n])
        sd["gap_points"] = 100 * (sd["float_accuracy_same_images"] - sd["accuracy"])
        res["sdnn"][pooling] = sd
        write_results(res, args.out)  # the SDNN halves first: the rate half takes longer
    if not args.skip_rate:
        n = args.rate_samples
        res["rate"] = rate_side(
            pt2, calib, xte[:n], yte[:n], args.rate_timesteps, work, written, args.lava_samples, args.time_samples,
            args.seed,
        )  # fmt: skip
        res["rate"]["float_accuracy_same_images"] = float_accuracy(model, xte[:n], yte[:n])
        res["rate"]["full_test_set"] = full_rate_run(res)
        res["rate"]["gap_points"] = 100 * (res["rate"]["float_accuracy_same_images"] - res["rate"]["accuracy"])
        write_results(res, args.out)
    print(table("MNIST CNN (bench/user_pytorch_mnist.py)", res["float_accuracy"], res["sdnn"], res.get("rate")))


if __name__ == "__main__":
    main()
