"""Per-sample time of the emulator and of Lava's CPU simulator on a recurrent network shaped like the NIR paper's
Braille network (Pedersen et al. 2024: 12 taxels -> 38 recurrent CUBA-LIF -> 7 classes, T = 256), and whether
every spike agreed on the samples Lava ran.  Writes JSON.

    .venv/bin/python bench/recurrent_emulator_vs_lava.py --out bench/results/recurrent_emulator_vs_lava.json

The weights are random (seeded; the paper's trained graph is the NIR front end's business), with biases, a
current decay and a voltage decay, compiled by loihic; the inputs are sparse random spike trains (``--density``,
5% by default), like the Braille data's taxel events.  Lava time is the whole ``run_lava`` call per sample (a
recurrent file runs one network per sample: build, compile, spawn, 256 + 2 steps, read-back); the emulator time is
one batched run of ``--batch`` samples after a warm-up run (numba compiled), divided by the batch.  Target
(issue 20): the emulator >= 100x faster per sample.
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

import torch

from loihic.compiler.netx.read import read_netx
from loihic.deploy.emulator.network import Emulator
from loihic.deploy.lava.run import run_lava
from loihic.version import __version__

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sim_tests.temporal_cases import spikes, temporal_net, write_temporal  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench/results/recurrent_emulator_vs_lava.json")
    ap.add_argument("--timesteps", type=int, default=256)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lava-samples", type=int, default=4)
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stream", action="store_true", help="stream timing (default: aligned)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for the emulator (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.timesteps
    net = temporal_net(args.seed, sizes=(12, 38, 7), recurrent=(0,), timesteps=steps)
    x = spikes(args.seed + 1, args.batch, 12, steps, args.density)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(write_temporal(Path(tmp) / "braille_like.net", net))
        model = read_netx(path)
        emu = Emulator(model, device="cpu", stream=args.stream)
        t0 = time.perf_counter()
        emu.run(x[:2])  # warm-up: numba compiles (or loads its cache)
        warmup_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = emu.run(x)
        emu_s = time.perf_counter() - t0
        n = args.lava_samples
        t0 = time.perf_counter()
        lava = run_lava(path, x[:n], record_layers=True, progress=False, stream=args.stream)
        lava_s = time.perf_counter() - t0
        ref = emu.run(x[:n], record_layers=True)
    mismatches = sum(int((a != b).sum()) for a, b in zip(ref.layer_spikes, lava.layer_spikes, strict=True))
    emu_ms, lava_ms = 1e3 * emu_s / args.batch, 1e3 * lava_s / n
    result = {
        "network": "12 -> 38 (recurrent CUBA-LIF, dense_rec) -> 7, random weights with biases (Braille-shaped)",
        "timing": "stream" if args.stream else "aligned",
        "timesteps": steps,
        "input_density": args.density,
        "seed": args.seed,
        "emulator": {
            "batch": args.batch,
            "backend": emu.backend,
            "threads": torch.get_num_threads(),
            "seconds": round(emu_s, 4),
            "ms_per_sample": round(emu_ms, 4),
            "warmup_seconds": round(warmup_s, 3),
        },
        "lava": {"samples": n, "seconds": round(lava_s, 3), "ms_per_sample": round(lava_ms, 2)},
        "speedup_per_sample": round(lava_ms / emu_ms, 1),
        "spikes_compared": int(sum(a.size for a in ref.layer_spikes)),
        "spikes_emitted_lava": int(sum(a.sum() for a in lava.layer_spikes)),
        "spike_mismatches": mismatches,
        "output_spikes_per_sample": float(res.output_spikes.sum() / args.batch),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "loihic": __version__},
        "command": " ".join(["bench/recurrent_emulator_vs_lava.py", *sys.argv[1:]]),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0 if mismatches == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
