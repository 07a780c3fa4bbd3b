"""Compiled vs float accuracy of a direct-encoded SNN for each graded input width (``compile --input-bits``).

    .venv/bin/python bench/input_bits.py --init runs/noise/fmnist.pt --offset 0.25 --samples 2000

For every B the checkpoint (with the constant ``--offset`` folded into its bias, as ``compile --offset``)
is compiled with B-bit input and run on the emulator; the reference is the float plain-LIF network fed the
same B-bit input (``training.checkpoint.with_input_bits``).  Records each layer's scale, what limited it
and its weight SQNR.  Writes JSON.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import torch
from _results import write_results

from loihic.compiler.config import CompileConfig
from loihic.compiler.fileio import file_sha256
from loihic.compiler.netx.read import read_netx
from loihic.deploy.verification.accuracy import emulator_accuracy
from loihic.training.checkpoint import load_checkpoint, save_checkpoint, with_input_bits
from loihic.training.data import load_dataset
from loihic.training.deployment import compile_checkpoint
from loihic.training.noise import evaluate_noise, with_offset
from loihic.version import __version__


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--init", required=True, help="a direct-encoded SNN checkpoint (e.g. noise-trained)")
    ap.add_argument("--offset", type=float, default=None, help="constant current folded into the bias")
    ap.add_argument("--bits", type=int, nargs="+", default=[8, 6, 5, 4, 3])
    ap.add_argument("--timesteps", type=int, default=10)
    ap.add_argument("--samples", type=int, default=None, help="first N test samples (default all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="bench/results/input_bits.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.init, "snn")
    if args.offset is not None:
        ckpt = with_offset(ckpt, args.offset)
    x, y = load_dataset(ckpt["dataset"], "test")
    if args.samples:
        x, y = x[: args.samples], y[: args.samples]
    rows = []
    with tempfile.TemporaryDirectory(prefix="loihic-bits-") as tmp:
        pt = save_checkpoint(Path(tmp) / "c.pt", ckpt)
        for bits in args.bits:
            _compiled = compile_checkpoint(str(pt), str(Path(tmp) / f"{bits}.net"), CompileConfig(input_bits=bits))
            net, report = _compiled.path, _compiled.layers
            model = read_netx(net)
            emu = emulator_accuracy(model, x, y, args.timesteps, model.meta["encoding"], args.seed, progress=False)
            flt = evaluate_noise(with_input_bits(ckpt, bits), x, y, args.timesteps, "lif", seed=args.seed)
            rows.append(
                {
                    "input_bits": bits,
                    "float_accuracy": flt,
                    "emulator_accuracy": emu,
                    "layers": [
                        {k: r[k] for k in ("layer", "scale", "scale_limited_by", "sqnr_db", "fan_in")} for r in report
                    ],
                }
            )
            print(f"{bits} bits: float {100 * flt:.2f}%, emulator {100 * emu:.2f}%", file=sys.stderr, flush=True)
    res = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "loihic": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "checkpoint": {"path": args.init, "sha256": file_sha256(args.init)},
        "dataset": ckpt["dataset"],
        "model": ckpt["model"],
        "offset": args.offset,
        "timesteps": args.timesteps,
        "seed": args.seed,
        "test_samples": int(len(x)),
        "rows": rows,
    }
    write_results(res, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
