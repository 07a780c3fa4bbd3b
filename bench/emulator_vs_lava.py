"""Samples per second of the emulator and of Lava's CPU simulator on the same compiled network and
the same encoded inputs, their ratio, and whether every spike agreed.  Writes JSON.

    .venv/bin/python bench/emulator_vs_lava.py --out bench/results/emulator_vs_lava.json

The network is the demo's: an MLP trained on scikit-learn digits (seeded), threshold-balanced to an
SNN at T steps, compiled.  Lava time is the whole ``run_lava`` call (network build, compile, process
spawn, run, read-back) and, separately, its steady-state stepping rate; the emulator time is the
whole batched run.  Target (issue 2): emulator >= 100x faster per sample, spike-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from loihic.compiler.config import CompileConfig
from loihic.compiler.encoding import encode_all as encoded
from loihic.compiler.netx.read import read_netx
from loihic.deploy.emulator.network import Emulator, default_device
from loihic.deploy.verification.parity import verify
from loihic.training.ann import train_ann
from loihic.training.checkpoint import save_checkpoint
from loihic.training.convert import convert
from loihic.training.data import load_dataset
from loihic.training.deployment import compile_checkpoint
from loihic.version import __version__


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench/results/emulator_vs_lava.json")
    ap.add_argument("--model", default="mlp", choices=["mlp", "lenet5"])
    ap.add_argument("--timesteps", type=int, default=48)
    ap.add_argument("--lava-samples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None, help="torch threads for the emulator (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    x_train, _ = load_dataset("digits", "train")
    x_test, y_test = load_dataset("digits", "test")
    with tempfile.TemporaryDirectory() as tmp:
        ann = train_ann(args.model, "digits", args.epochs, args.seed, progress=False)
        snn = convert(ann, x_train, args.timesteps, seed=args.seed, progress=False)
        save_checkpoint(Path(tmp) / "snn.pt", snn)
        net_path = compile_checkpoint(str(Path(tmp) / "snn.pt"), str(Path(tmp) / "m.net"), CompileConfig()).path
        model = read_netx(net_path)
        n = min(args.lava_samples, len(x_test))
        spikes = encoded(x_test[:n], args.timesteps, "poisson", args.seed)

        rep = verify(str(net_path), spikes, y_test[:n], model=model)  # emulator + Lava, all layers recorded

        emu = Emulator(model)  # output only, as in bulk evaluation
        emu.run(spikes[:8])  # warm-up (allocations, CUDA context)
        t = time.perf_counter()
        emu.run(spikes)
        emu_seconds = time.perf_counter() - t
        full = encoded(x_test, args.timesteps, "poisson", args.seed)
        t = time.perf_counter()
        emu.run(full)
        emu_full_seconds = time.perf_counter() - t

    lava_sps = n / rep.lava_seconds
    emu_sps = n / emu_seconds
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "loihic_version": __version__,
        "seed": args.seed,
        "model": args.model,
        "dataset": "digits",
        "timesteps": args.timesteps,
        "samples": n,
        "spike_identical": rep.identical,
        "mismatches": rep.mismatches,
        "spikes_compared": rep.spikes_compared,
        "accuracy_emulator": rep.accuracy_emulator,
        "accuracy_lava": rep.accuracy_lava,
        "lava_seconds": rep.lava_seconds,
        "lava_samples_per_second": lava_sps,
        "emulator_device": str(default_device()),
        "emulator_seconds": emu_seconds,
        "emulator_samples_per_second": emu_sps,
        "emulator_full_test_set": {
            "samples": len(x_test),
            "seconds": emu_full_seconds,
            "samples_per_second": len(x_test) / emu_full_seconds,
        },
        "speedup_per_sample": emu_sps / lava_sps,
        "target_speedup": 100,
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "spike_identical",
                    "lava_samples_per_second",
                    "emulator_samples_per_second",
                    "speedup_per_sample",
                )
            }
        )
    )
    return 0 if rep.identical else 1


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    raise SystemExit(main())
