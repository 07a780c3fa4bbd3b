"""Default compile (automatic input width) against float, on the two direct-coded networks of issue 12.

1. Fashion-MNIST AP2-512FC trained 2 epochs with ``loihic train --method noise`` (direct-coded, T=5);
2. an MNIST MLP (``loihic train --model mlp``, 3 epochs) converted with ``--encoding direct`` at T=16.

Each is compiled with default options (``loihic compile X -o X.net``: automatic input bits, and for the noise
network its default ``--offset auto``) and with every forced width 8..2, evaluated on the emulator over the
full test set, next to its float model fed the same B-bit input (``with_input_bits``).  Writes JSON::

    python bench/input_bits_auto.py --out bench/results/input_bits_auto.json

Needs MNIST and Fashion-MNIST (``make data``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _results import write_results

from loihic.compiler.netx.read import read_netx
from loihic.training.checkpoint import load_checkpoint, with_input_bits
from loihic.training.data import load_dataset


def cli(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "loihic", *args], capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"loihic {' '.join(args)} failed: {proc.stderr.strip().splitlines()[-1]}")
    return proc.stdout


def accuracy(*args: str) -> float:
    return float(json.loads(cli("evaluate", *args, "--json").strip().splitlines()[-1])["accuracy"])


def float_accuracy(ckpt_path: Path, bits: int, steps: int, noise: bool, samples: int | None) -> float:
    from loihic.training.noise import evaluate_noise, steady_offset, with_offset
    from loihic.training.snn import evaluate_snn

    ck = with_input_bits(load_checkpoint(ckpt_path), bits)
    x, y = load_dataset(ck["dataset"], "test")
    x, y = (x[:samples], y[:samples]) if samples else (x, y)
    if noise:  # the float network the compiled one quantizes: plain LIF plus the noise mean as a bias
        return evaluate_noise(with_offset(ck, steady_offset()), x, y, steps, "lif")
    return evaluate_snn(ck, x, y, timesteps=steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("--workdir", default="runs/input_bits_auto")
    ap.add_argument("--samples", type=int, default=None, help="test samples (default: all)")
    ap.add_argument("--out", default="bench/results/input_bits_auto.json")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    sample_opt = ["--samples", str(args.samples)] if args.samples else []
    res: dict = {"command": "python bench/input_bits_auto.py", "args": vars(args), "networks": {}}
    t0 = time.perf_counter()
    fm, mn_ann, mn = work / "fmnist_noise.pt", work / "mnist_ann.pt", work / "mnist_direct.pt"
    # --deploy-epochs 0: the noise-trained network as such (training/noise/deploy.py is measured elsewhere)
    cli("train", "--method", "noise", "--model", "ap2-512fc", "--dataset", "fashion-mnist", "--epochs", "2",
        "--deploy-epochs", "0", "-o", str(fm), "--force")  # fmt: skip
    cli("train", "--model", "mlp", "--dataset", "mnist", "--epochs", "3", "-o", str(mn_ann), "--force")
    cli("convert", str(mn_ann), "--encoding", "direct", "-T", "16", "-o", str(mn), "--force")
    for name, ckpt, steps, noise in (
        ("fashion-mnist ap2-512fc noise", fm, 5, True),
        ("mnist mlp direct", mn, 16, False),
    ):
        row: dict = {"checkpoint": str(ckpt), "timesteps": steps, "forced": {}}
        stage3 = accuracy(str(ckpt), "-T", str(steps), *sample_opt) if noise else None
        net = work / f"{ckpt.stem}_default.net"
        cli("compile", str(ckpt), "-o", str(net), "--force")
        meta = read_netx(net).meta
        row["default"] = {
            "input_bits": meta["input_bits"],
            "error_proxy": meta["input_bits_error"],
            "emulator": accuracy(str(net), "-T", str(steps), *sample_opt),
            "float_same_bits": float_accuracy(ckpt, meta["input_bits"], steps, noise, args.samples),
        }
        for bits in (8, 6, 5, 4, 3, 2):
            forced = work / f"{ckpt.stem}_{bits}.net"
            cli("compile", str(ckpt), "--input-bits", str(bits), "-o", str(forced), "--force")
            row["forced"][str(bits)] = {
                "emulator": accuracy(str(forced), "-T", str(steps), *sample_opt),
                "float_same_bits": float_accuracy(ckpt, bits, steps, noise, args.samples),
            }
        row["float_8bit"] = row["forced"]["8"]["float_same_bits"]
        row["float_stage3"] = stage3
        row["default_gap_points"] = 100 * (row["float_8bit"] - row["default"]["emulator"])
        res["networks"][name] = row
        print(
            f"{name}: default compile chose {meta['input_bits']} bits: "
            f"emulator {100 * row['default']['emulator']:.2f}%, "
            f"float (8-bit input) {100 * row['float_8bit']:.2f}%"
            + (f", float stage 3 {100 * stage3:.2f}%" if stage3 is not None else "")
        )
    res["seconds"] = time.perf_counter() - t0
    write_results(res, args.out)


if __name__ == "__main__":
    main()
