"""A user's own PyTorch CNN on MNIST, trained in plain PyTorch, to Loihi through the torch.export front end.

The model is written as a user would (a custom class: input normalisation inside ``forward``, BatchNorm,
bias, ``F.relu``, ``torch.flatten``, dropout, average pooling), trained with plain PyTorch, saved with
``torch.export.save``, then taken through the same steps as the CLI (``loihic convert --calib``, ``compile``,
``evaluate --data``, ``verify --data``) with the Python API.  Writes JSON (and the .pt2/.net files under
``--workdir``)::

    python bench/user_pytorch_mnist.py --out bench/results/user_pytorch_mnist.json

Needs MNIST (``make data``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _results import write_results
from torch import nn

import loihic
from loihic.training.data import load_dataset


class MnistCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 5)
        self.pool = nn.AvgPool2d(2)
        self.fc1 = nn.Linear(32 * 5 * 5, 128)
        self.drop = nn.Dropout(0.25)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - 0.1307) / 0.3081
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = F.avg_pool2d(F.relu(self.conv2(x)), 2)
        x = self.drop(torch.flatten(x, 1))
        return self.fc2(self.drop(F.relu(self.fc1(x))))


def train_mnist_cnn(xtr: np.ndarray, ytr: np.ndarray, epochs: int, seed: int) -> MnistCNN:
    """The user's training loop (plain PyTorch, Adam 1e-3, batches of 128, seeded); the model in eval mode."""
    torch.manual_seed(seed)
    model = MnistCNN()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    X, Y = torch.tensor(xtr), torch.tensor(ytr)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(X))
        for i in range(0, len(X), 128):
            idx = perm[i : i + 128]
            opt.zero_grad()
            F.cross_entropy(model(X[idx]), Y[idx]).backward()
            opt.step()
    return model.eval()


def float_accuracy(model: nn.Module, xte: np.ndarray, yte: np.ndarray) -> float:
    with torch.no_grad():
        pred = torch.cat([model(torch.tensor(xte[i : i + 1000])).argmax(1) for i in range(0, len(xte), 1000)])
    return float((pred.numpy() == yte).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--timesteps", "-T", type=int, default=64)
    ap.add_argument("--calib-samples", type=int, default=512)
    ap.add_argument("--test-samples", type=int, default=None, help="default: the full 10,000")
    ap.add_argument("--lava-samples", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", default="runs/user_pytorch_mnist")
    ap.add_argument("--out", default="bench/results/user_pytorch_mnist.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    xtr, ytr = load_dataset("mnist", "train")
    xte, yte = load_dataset("mnist", "test")
    if args.test_samples:
        xte, yte = xte[: args.test_samples], yte[: args.test_samples]
    res: dict = {"command": "python bench/user_pytorch_mnist.py", "args": vars(args), "timing_s": {}}

    t = time.perf_counter()
    model = train_mnist_cnn(xtr, ytr, args.epochs, args.seed)
    res["timing_s"]["train"] = time.perf_counter() - t
    res["float_accuracy"] = float_accuracy(model, xte, yte)
    pt2 = work / "mnist_cnn.pt2"
    torch.export.save(torch.export.export(model, (torch.tensor(xte[:2]),)), pt2)

    t = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    calib = xtr[rng.choice(len(xtr), args.calib_samples, replace=False)]
    snn = loihic.convert(pt2, calib, timesteps=args.timesteps, seed=args.seed, progress=True)
    res["timing_s"]["convert"] = time.perf_counter() - t
    res["thresholds"] = snn["snn"]["thresholds"]
    net = loihic.compile(snn, work / "mnist_cnn.net", force=True)
    t = time.perf_counter()
    res["emulator_accuracy"] = loihic.evaluate(net, xte, yte, seed=args.seed)
    res["timing_s"]["emulator"] = time.perf_counter() - t
    res["test_samples"] = int(len(xte))
    res["gap_points"] = 100 * (res["float_accuracy"] - res["emulator_accuracy"])
    t = time.perf_counter()
    rep = loihic.verify(net, xte[: args.lava_samples], yte[: args.lava_samples], seed=args.seed)
    res["timing_s"]["lava_verify"] = time.perf_counter() - t
    res["lava"] = {
        "samples": rep.samples,
        "identical": rep.identical,
        "mismatches": rep.mismatches,
        "spikes_compared": rep.spikes_compared,
        "accuracy_emulator": rep.accuracy_emulator,
        "accuracy_lava": rep.accuracy_lava,
    }
    write_results(res, args.out)
    print(
        f"float {100 * res['float_accuracy']:.2f}%, compiled (emulator, T={args.timesteps}) "
        f"{100 * res['emulator_accuracy']:.2f}% on {len(xte)} images; Lava on {rep.samples}: "
        f"{'IDENTICAL' if rep.identical else 'MISMATCH'}"
    )


if __name__ == "__main__":
    main()
