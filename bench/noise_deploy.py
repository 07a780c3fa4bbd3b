"""The noise method's deployment stage (issue 21): the compiled network against the method's own figure.

    OMP_NUM_THREADS=1 .venv/bin/python bench/noise_deploy.py                  # fashion-mnist and mnist

For each data set: ``train_noise`` (AP2-512FC, ``--epochs``, ``--seed``, one torch thread), then

- stage 3 at T (Jiang & Zhang eqs. 7-10, the figure the method reports; same seed), full test set;
- before the stage: the float network Loihi runs (plain LIF plus the noise mean as a bias, 8-bit input and the
  compiler's input bits), the compiled network (``loihic compile``'s defaults) on the emulator;
- the deployment stage (training/noise/deploy.py, ``--deploy-epochs``; per-step gradient, the default, and
  full BPTT through the T steps for comparison), then the float network, the compiled network on the emulator
  (defaults again: the stage's input width and biases) and their prediction agreement on every test image;
- stage 3 of a noise network trained ``--epochs + --deploy-epochs`` epochs (the stage is more training);
- Lava against the emulator on the first ``--lava-samples`` test images (``loihic verify``, every spike of every
  layer) for the compiled network after the stage;
- training time: noise training, the stage, and direct BPTT at T (training/noise/train.py ``train_bptt``, the
  README's comparison) trained epoch by epoch until its plain LIF reaches the deployed accuracy of noise + stage
  (or ``--bptt-max-epochs``): the time the method saves with its deployment stage included.  Seconds are wall
  and CPU time of this process (one thread), evaluation excluded; the machine is shared, so CPU time is the
  steadier figure.

Writes bench/results/noise_deploy.json.  Needs MNIST and Fashion-MNIST (``make data``) and Lava.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _results import write_results

from loihic.compiler.config import CompileConfig
from loihic.compiler.encoding import encode_chunks
from loihic.compiler.netx.read import read_netx
from loihic.deploy.emulator.network import Emulator, predict
from loihic.deploy.netx_run import message_bits
from loihic.training.checkpoint import save_checkpoint, with_input_bits
from loihic.training.data import load_dataset
from loihic.training.deployment import compile_checkpoint
from loihic.training.noise import evaluate_noise, noise_outputs, steady_offset, train_bptt, train_noise, with_offset
from loihic.training.noise.deploy import deploy_stage
from loihic.training.snn import evaluate_snn
from loihic.version import __version__


class Clock:
    """Wall and CPU seconds of a block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def json(self) -> dict[str, float]:
        return {"wall_s": self.wall, "cpu_s": self.cpu}


def emulator_predictions(net: Path, x: np.ndarray, steps: int, seed: int) -> np.ndarray:
    model = read_netx(net)
    emu = Emulator(model, device="cpu", input_message_bits=message_bits(model))
    out = np.empty(len(x), dtype=np.int64)
    for start, spikes in encode_chunks(x, steps, str(model.meta["encoding"]), seed):
        res = emu.run(spikes)
        out[start : start + len(spikes)] = predict(res.output_spikes, res.output_v, emu.output_spiking)
    return out


def float_predictions(ckpt: dict[str, Any], x: np.ndarray, steps: int, seed: int) -> np.ndarray:
    return float_counts(ckpt, x, steps, seed).argmax(axis=1)


def float_counts(ckpt: dict[str, Any], x: np.ndarray, steps: int, seed: int) -> np.ndarray:
    return noise_outputs(ckpt, x, steps, "lif", seed=seed)


def compiled_row(ckpt: dict[str, Any], ref: dict[str, Any], work: Path, name: str, x, y, args) -> dict[str, Any]:
    """Compile ``ckpt`` with loihic compile's defaults; emulator accuracy, the float reference ``ref``'s, and
    their agreement."""
    pt, net = work / f"{name}.pt", work / f"{name}.net"
    save_checkpoint(pt, ckpt, force=True)
    compiled = compile_checkpoint(str(pt), str(net), CompileConfig(), force=True, default_offset=True)
    emu = emulator_predictions(net, x, args.timesteps, args.seed)
    counts = float_counts(ref, x, args.timesteps, args.seed)
    flt = counts.argmax(axis=1)
    top = np.sort(counts, axis=1)[:, -2:]
    tied = top[:, 0] == top[:, 1]  # the float's top spike count is shared: argmax takes the lowest index
    return {
        "float_top_count_tied": float(tied.mean()),
        "agreement_where_tied": float((emu == flt)[tied].mean()) if tied.any() else None,
        "agreement_where_not_tied": float((emu == flt)[~tied].mean()) if (~tied).any() else None,
        "input_bits": compiled.meta["input_bits"],
        "offset": compiled.meta.get("offset"),
        "emulator": float((emu == y).mean()),
        "float": float((flt == y).mean()),
        "float_emulator_agreement": float((emu == flt).mean()),
        "net": str(net),
    }


def lava_identity(net: str, samples: int, steps: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "loihic", "verify", net, "--samples", str(samples), "-T", str(steps), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode not in (0, 1):
        raise SystemExit(f"loihic verify {net} failed: {proc.stderr.strip().splitlines()[-1]}")
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    return {k: v for k, v in rep.items() if isinstance(v, (bool, int, float, str)) or v is None}


def bptt_until(dataset: str, target: float, x, y, args) -> dict[str, Any]:
    """Direct BPTT at T, epoch by epoch, until its plain LIF reaches ``target`` (evaluation excluded)."""
    history: dict[str, list[float]] = {"epoch": [], "wall_s": [], "cpu_s": [], "lif": []}
    t0, c0, spent = time.perf_counter(), time.process_time(), {"wall": 0.0, "cpu": 0.0}

    class ReachedError(Exception):
        pass

    def on_epoch(epoch: int, ckpt: dict[str, Any]) -> None:
        w, c = time.perf_counter(), time.process_time()
        history["epoch"].append(epoch)
        history["wall_s"].append(w - t0 - spent["wall"])
        history["cpu_s"].append(c - c0 - spent["cpu"])
        history["lif"].append(evaluate_snn(ckpt, x, y, timesteps=args.timesteps, seed=args.seed))
        spent["wall"] += time.perf_counter() - w
        spent["cpu"] += time.process_time() - c
        print(f"  bptt epoch {epoch}: {history['cpu_s'][-1]:.1f} s cpu, lif {100 * history['lif'][-1]:.2f}%",
              file=sys.stderr, flush=True)  # fmt: skip
        if history["lif"][-1] >= target:
            raise ReachedError

    try:
        train_bptt(args.model, dataset, args.bptt_max_epochs, args.seed, timesteps=args.timesteps,
                   progress=False, on_epoch=on_epoch)  # fmt: skip
    except ReachedError:
        pass
    reached = next((i for i, a in enumerate(history["lif"]) if a >= target), None)
    return {
        "target": target,
        "history": history,
        "reached": None if reached is None else {k: history[k][reached] for k in ("epoch", "wall_s", "cpu_s", "lif")},
    }


def run_dataset(dataset: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    x, y = load_dataset(dataset, "test")
    steps, seed = args.timesteps, args.seed
    print(f"{dataset}: noise training, {args.epochs} epochs", file=sys.stderr, flush=True)
    with Clock() as t_noise:
        ck = train_noise(args.model, dataset, args.epochs, seed, timesteps=steps, progress=False)
    row: dict[str, Any] = {"dataset": dataset, "test_samples": int(len(x))}
    row["stage3"] = evaluate_noise(ck, x, y, steps, "3", seed=seed)
    row["stage2_t1"] = ck["metrics"]["test_accuracy"]
    folded = with_offset(ck, steady_offset())
    row["before"] = {"float_lif_mean_8bit": evaluate_noise(folded, x, y, steps, "lif", seed=seed)}
    before = compiled_row(ck, folded, work, f"{dataset}_before", x, y, args)
    before["float"] = float(
        (float_predictions(with_input_bits(folded, before["input_bits"]), x, steps, seed) == y).mean()
    )
    row["before"]["compiled"] = before
    row["times"] = {"noise": t_noise.json()}
    for name, through_time in (("after", False), ("after_bptt_stage", True)):
        print(f"{dataset}: deployment stage ({name})", file=sys.stderr, flush=True)
        with Clock() as t_stage:
            dep = deploy_stage(ck, args.deploy_epochs, seed, steps, args.deploy_lr, through_time=through_time,
                               progress=False)  # fmt: skip
        row["times"][f"stage_{name}"] = t_stage.json()
        row[name] = {
            "deploy_stage": dep["snn"]["deploy_stage"],
            "metrics": {k: v for k, v in dep["metrics"].items() if k != "noise_metrics"},
            "float": dep["metrics"]["test_accuracy"],
            "compiled": compiled_row(dep, dep, work, f"{dataset}_{name}", x, y, args),
        }
    row["compiled_minus_stage3_points"] = 100 * (row["after"]["compiled"]["emulator"] - row["stage3"])
    # the stage is more training: stage 3 of a noise network trained as many epochs more, for comparison
    longer = args.epochs + args.deploy_epochs
    print(f"{dataset}: noise training, {longer} epochs (comparison)", file=sys.stderr, flush=True)
    with Clock() as t_longer:
        ck_longer = train_noise(args.model, dataset, longer, seed, timesteps=steps, progress=False)
    row["stage3_longer"] = {"epochs": longer, "accuracy": evaluate_noise(ck_longer, x, y, steps, "3", seed=seed)}
    row["times"]["noise_longer"] = t_longer.json()
    print(f"{dataset}: Lava on {args.lava_samples} images", file=sys.stderr, flush=True)
    row["lava"] = lava_identity(row["after"]["compiled"]["net"], args.lava_samples, steps)
    target = row["after"]["float"]
    print(f"{dataset}: direct BPTT at T={steps} until {100 * target:.2f}%", file=sys.stderr, flush=True)
    bptt = bptt_until(dataset, target, x, y, args)
    row["bptt"] = bptt
    ours = {k: row["times"]["noise"][k] + row["times"]["stage_after"][k] for k in ("wall_s", "cpu_s")}
    row["times"]["noise_plus_stage"] = ours
    row["time_saving_vs_bptt"] = (
        None if bptt["reached"] is None else {k: 1.0 - ours[k] / bptt["reached"][k] for k in ("wall_s", "cpu_s")}
    )
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("--datasets", nargs="+", default=["fashion-mnist", "mnist"])
    ap.add_argument("--model", default="ap2-512fc")
    ap.add_argument("--epochs", type=int, default=2, help="noise training epochs")
    ap.add_argument("--timesteps", type=int, default=5)
    ap.add_argument("--deploy-epochs", type=int, default=1)
    ap.add_argument("--deploy-lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lava-samples", type=int, default=16)
    ap.add_argument("--bptt-max-epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="bench/results/noise_deploy.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        "args": vars(args),
        "loihic": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "datasets": {},
    }
    with tempfile.TemporaryDirectory(prefix="loihic-noise-deploy-") as tmp:
        for dataset in args.datasets:
            row = run_dataset(dataset, Path(tmp), args)
            for key in ("before", "after", "after_bptt_stage"):
                row.get(key, {}).get("compiled", {}).pop("net", None)
            res["datasets"][dataset] = row
            a = row["after"]
            print(
                f"{dataset}: stage 3 {100 * row['stage3']:.2f}% | compiled before "
                f"{100 * row['before']['compiled']['emulator']:.2f}% after {100 * a['compiled']['emulator']:.2f}% "
                f"(float {100 * a['float']:.2f}%, agreement "
                f"{100 * a['compiled']['float_emulator_agreement']:.2f}%) | Lava identical {row['lava']['identical']}",
                file=sys.stderr,
                flush=True,
            )
            write_results(res, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
