"""The emulator at the speed limit (issue 13): one run, side by side, on two slayer-exported networks.

    .venv/bin/python bench/emulator_speed.py --out bench/results/emulator_speed.json

Networks (lava-dl slayer CUBA blocks, seeded random weights, exported with slayer's own ``export_hdf5``):

* ``mlp``: 784-128-10, T=100, batch 256, 15% random input spikes (the issue's network);
* ``lenet5``: LeNet-5-sized conv net on 28x28 (conv 6@5x5 pad 2, conv 16@10x10 stride 2 (LeNet-5's
  conv + 2x2 average pool folded, as loihic compiles it), flatten 1600, dense 120, 84, 10), T=100,
  batch 64, driven by Poisson-encoded MNIST test digits when MNIST is installed (``make data``), else
  15% random spikes.

Columns, in ms per sample (best of ``--repeats`` rounds, the runs interleaved within each round; the
machine is shared, so ratios within one run are what to read):

* ``emulator``: ``Emulator(...).run`` (layer-major, the default), output only (bulk evaluation), and with
  every layer recorded (``record_layers=True``, what ``verify`` does);
* ``emulator_step``: the old step-major path (``mode="step"``);
* ``slayer``: slayer's own float forward of the same blocks (``torch.no_grad``, eval), not bit-exact;
* ``gemm_limit``: only the float32 matmuls / conv2d over all B*T rows, inputs already laid out (the issue's
  definition); ``gemm_limit_in_emulator_blocks``: the same in the emulator's cache-sized blocks of samples;
* ``lava``: Lava's CPU simulator through ``run_lava``: marginal cost per sample
  ``(t(N) - t(2)) / (N - 2)`` next to its start-up ``t(2) - 2 * marginal`` (output only for the MLP,
  every layer recorded for lenet5).

Everything is measured twice: with one torch thread and with torch's default thread count.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402

from loihic.compiler.netx.read import NxConv, NxDense, read_netx  # noqa: E402
from loihic.deploy.emulator import kernels as emulator_kernels  # noqa: E402
from loihic.deploy.emulator.layer_major import plan_blocks  # noqa: E402
from loihic.deploy.emulator.network import Emulator  # noqa: E402
from loihic.deploy.lava.compat import install  # noqa: E402
from loihic.version import __version__  # noqa: E402

install()
from lava.lib.dl import slayer  # noqa: E402

NEURON = dict(threshold=1.0, current_decay=0.25, voltage_decay=0.03)


def _version(dist: str) -> str:
    return importlib.metadata.version(dist)


def mlp_blocks() -> list:
    torch.manual_seed(0)
    cuba = slayer.block.cuba
    return [cuba.Dense(NEURON, 784, 128, weight_scale=2), cuba.Dense(NEURON, 128, 10, weight_scale=2)]


def lenet_blocks() -> list:
    torch.manual_seed(1)
    c = slayer.block.cuba
    return [
        c.Input(None, delay_shift=False),
        c.Conv(NEURON, 1, 6, 5, padding=2, weight_scale=2),
        c.Conv(NEURON, 6, 16, 10, stride=2, weight_scale=2),
        c.Flatten(),
        c.Dense(NEURON, 1600, 120, weight_scale=2),
        c.Dense(NEURON, 120, 84, weight_scale=2),
        c.Dense(NEURON, 84, 10, weight_scale=2),
    ]


def export(blocks: list, x: np.ndarray, path: Path) -> None:
    with torch.no_grad():  # slayer infers the neuron shapes export needs from a first forward
        s = torch.as_tensor(x[:2], dtype=torch.float32)
        for b in blocks:
            b.eval()
            s = b(s)
    with h5py.File(path, "w") as h:
        layer = h.create_group("layer")
        for i, b in enumerate(blocks):
            b.export_hdf5(layer.create_group(f"{i}"))


def inputs(name: str, batch: int, steps: int, seed: int) -> tuple[np.ndarray, str]:
    rng = np.random.default_rng(seed)
    if name == "mlp":
        return (rng.random((batch, 784, steps)) < 0.15).astype(np.uint8), "15% random spikes"
    try:
        from loihic.compiler.encoding import encode
        from loihic.training.data import load_dataset

        x, _ = load_dataset("mnist", "test")
        return encode(x[:batch], steps, "poisson", seed), "MNIST test digits, Poisson-encoded"
    except Exception:  # noqa: BLE001 - MNIST not installed: random spikes of the same shape
        return (rng.random((batch, 1, 28, 28, steps)) < 0.15).astype(np.uint8), "15% random spikes"


def gemm_limit(model, x: np.ndarray, block: int | None = None):  # noqa: ANN001, ANN201
    """The float32 matmuls/convs over all B*T rows, on inputs prepared beforehand (spikes of the rates
    the emulator measured); returns a closure that runs only them.  ``block``: in blocks of that many
    samples (the emulator's CPU blocks), else all B*T rows at once (the issue's definition)."""
    batch, steps = x.shape[0], x.shape[-1]
    block = block or batch
    emu = Emulator(model, device="cpu")
    rates = [float(s.mean()) for s in emu.run(x[:8], record_layers=True).layer_spikes]
    g = torch.Generator().manual_seed(0)
    ops, shape, rate = [], model.input.shape, float((x != 0).mean())
    for k, layer in enumerate(model.neuron_layers):
        rows = torch.rand((batch * steps, *shape), generator=g) < rate
        w = torch.as_tensor(layer.weight, dtype=torch.float32)
        if isinstance(layer, NxConv):
            ops.append(("conv", rows.float(), w, layer))
        elif isinstance(layer, NxDense):
            ops.append(("dense", rows.float().reshape(batch * steps, -1), w.T, None))
        shape, rate = layer.shape, rates[k]

    def run() -> None:
        for r0 in range(0, batch * steps, block * steps):
            for kind, a, w, layer in ops:
                a = a[r0 : r0 + block * steps]
                if kind == "dense":
                    torch.matmul(a, w)
                else:
                    conv = dict(
                        stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups
                    )
                    F.conv2d(a, w, **conv)

    return run


def interleaved(runs: dict, repeats: int, fewer: tuple[str, ...] = ()) -> dict[str, float]:
    """Best time of each run over ``repeats`` rounds, the runs interleaved within each round (so that a
    burst of load on the shared machine hits all of them alike); ``fewer`` get a third of the rounds."""
    for fn in runs.values():
        fn()  # warm-up: allocations, numba's compiled kernels
    times: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(repeats):
        for k, fn in runs.items():
            if k in fewer and r % 3:
                continue
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: min(v) for k, v in times.items()}


def lava_costs(path: Path, x: np.ndarray, n_big: int, record: bool, repeats: int) -> dict:
    """Lava's start-up and marginal cost per sample from the best of ``repeats`` rounds of t(2), t(N)."""
    from loihic.deploy.lava.run import run_lava

    model = read_netx(str(path))
    reps = (x.shape[0] + n_big - 1) // x.shape[0]
    big = np.concatenate([x] * reps)[:n_big]
    run_lava(str(path), x[:2], progress=False, model=model, record_layers=record)  # warm: imports, caches
    times: dict[int, list[float]] = {2: [], n_big: []}
    for _ in range(repeats):
        for xs in (x[:2], big):
            t = time.perf_counter()
            run_lava(str(path), xs, progress=False, model=model, record_layers=record)
            times[len(xs)].append(time.perf_counter() - t)
    t2, tn = min(times[2]), min(times[n_big])
    marginal = (tn - t2) / (n_big - 2)
    return {
        "samples": [2, n_big],
        "seconds": [t2, tn],
        "all_seconds": {str(k): v for k, v in times.items()},
        "marginal_ms_per_sample": 1000 * marginal,
        "startup_s": t2 - 2 * marginal,
        "record_layers": record,
    }


def measure(name: str, blocks: list, x: np.ndarray, path: Path, repeats: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    model = read_netx(str(path))
    batch = x.shape[0]
    xs = torch.as_tensor(x, dtype=torch.float32)
    emu, emu_rec = Emulator(model, device="cpu"), Emulator(model, device="cpu")
    emu_torch = Emulator(model, device="cpu", backend="torch")
    step = Emulator(model, device="cpu", mode="step")
    block = plan_blocks(emu, batch, x.shape[-1])[0]

    def slayer_forward() -> None:
        with torch.no_grad():
            s = xs
            for b in blocks:
                s = b(s)

    runs = {
        "emulator": lambda: emu.run(x),
        "emulator_record_layers": lambda: emu_rec.run(x, record_layers=True),
        "emulator_torch_backend": lambda: emu_torch.run(x),
        "emulator_step": lambda: step.run(x),
        "slayer": slayer_forward,
        "gemm_limit": gemm_limit(model, x),
        "gemm_limit_in_emulator_blocks": gemm_limit(model, x, block),
    }
    ms = {k: 1000 * t / batch for k, t in interleaved(runs, repeats, fewer=("emulator_step",)).items()}
    return {"threads": threads, "emulator_block_samples": block, "ms_per_sample": ms}


def ratios(row: dict) -> list[dict]:
    """Per thread setting: emulator vs the GEMM limit (how many times slower), slayer and Lava (how many
    times faster)."""
    out = []
    for run in row["runs"]:
        ms = run["ms_per_sample"]
        r = {
            "threads": run["threads"],
            "emulator_over_gemm_limit": ms["emulator"] / ms["gemm_limit"],
            "emulator_over_gemm_limit_in_blocks": ms["emulator"] / ms["gemm_limit_in_emulator_blocks"],
            "slayer_over_emulator": ms["slayer"] / ms["emulator"],
            "step_over_layer": ms["emulator_step"] / ms["emulator"],
        }
        if "lava" in row:
            lava = row["lava"]["marginal_ms_per_sample"]
            key = "emulator_record_layers" if row["lava"]["record_layers"] else "emulator"
            r["lava_marginal_over_emulator"] = lava / ms[key]
            r["lava_compared_with"] = key
        out.append(r)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench/results/emulator_speed.json")
    ap.add_argument("--timesteps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--lava-samples", type=int, nargs=2, default=[42, 10], help="N for the MLP and for lenet5")
    ap.add_argument("--lava-repeats", type=int, default=2)
    ap.add_argument("--no-lava", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--networks", nargs="+", default=["mlp", "lenet5"], choices=["mlp", "lenet5"])
    args = ap.parse_args()
    default_threads = torch.get_num_threads()
    res: dict = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "loihic_version": __version__,
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numba": _version("numba") if emulator_kernels.HAVE_NUMBA else None,
            "cpu_count": os.cpu_count(),
            "torch_default_threads": default_threads,
            "device": "cpu",
            "platform": platform.platform(),
            "processor": platform.processor(),
            "load_average_at_start": list(os.getloadavg()),
        },
        "networks": {},
    }
    nets = {"mlp": (mlp_blocks, 256, 0), "lenet5": (lenet_blocks, 64, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (make, batch, n_lava_idx) in nets.items():
            if name not in args.networks:
                continue
            x, what = inputs(name, batch, args.timesteps, args.seed)
            blocks = make()
            path = Path(tmp) / f"{name}.net"
            export(blocks, x, path)
            row: dict = {"batch": batch, "timesteps": args.timesteps, "input": what, "runs": []}
            for threads in sorted({1, default_threads}):
                row["runs"].append(measure(name, blocks, x, path, args.repeats, threads))
                print(f"[{name}] threads {threads}: {row['runs'][-1]['ms_per_sample']}", file=sys.stderr)
            torch.set_num_threads(default_threads)
            if not args.no_lava:
                n_big = args.lava_samples[n_lava_idx]
                row["lava"] = lava_costs(path, x, n_big, record=name == "lenet5", repeats=args.lava_repeats)
                print(f"[{name}] lava: {row['lava']}", file=sys.stderr)
            row["ratios"] = ratios(row)
            print(f"[{name}] ratios: {row['ratios']}", file=sys.stderr)
            res["networks"][name] = row
    res["machine"]["load_average_at_end"] = list(os.getloadavg())
    write_results(res, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
