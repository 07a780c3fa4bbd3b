"""How far a plain ReLU ANN of a noise model's architecture gets: a ceiling for what the SNN can reach.

    .venv/bin/python bench/ann_ceiling.py        # Fashion-MNIST, ap2-512fc, 30 epochs

The architecture of ``training/noise/options.py``'s ``noise_network`` (no bias) with ReLU units, trained with Adam
(lr 1e-3, batch 64) and cross-entropy, test accuracy after every epoch.  Writes JSON.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from _results import write_results
from torch import nn

from loihic.compiler.load.checkpoint import network_data
from loihic.training.data import dataset_info, load_dataset
from loihic.training.models import build_model
from loihic.training.noise import noise_network
from loihic.version import __version__


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--model", default="ap2-512fc")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="default bench/results/ann_ceiling_<dataset>_<model>.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    info = dataset_info(args.dataset)
    network = noise_network(args.model, info.input_shape, info.num_classes)
    x, y = load_dataset(args.dataset, "train")
    xt, yt = load_dataset(args.dataset, "test")
    torch.manual_seed(args.seed)
    net = build_model(network)
    opt = torch.optim.Adam(net.parameters(), args.lr)
    xs, ys, xts = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(xt)
    gen = torch.Generator().manual_seed(args.seed)
    accs = []
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(xs), generator=gen)
        for b in range(0, len(xs), 64):
            idx = order[b : b + 64]
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(xs[idx]), ys[idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            accs.append(float((net(xts).argmax(1).numpy() == yt).mean()))
        print(f"epoch {epoch + 1}: {100 * accs[-1]:.2f}%", file=sys.stderr, flush=True)
    res = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "loihic": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "dataset": args.dataset,
        "model": args.model,
        "layers": network_data(network.layers),
        "seed": args.seed,
        "lr": args.lr,
        "epochs": args.epochs,
        "test_accuracy_per_epoch": accs,
        "best": max(accs),
        "best_epoch": int(np.argmax(accs)) + 1,
        "final": accs[-1],
    }
    out = Path(args.out or f"bench/results/ann_ceiling_{args.dataset}_{args.model}.json")
    write_results(res, out, quiet=True)
    print(f"wrote {out}: best {100 * res['best']:.2f}% (epoch {res['best_epoch']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
