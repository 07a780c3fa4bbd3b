"""lava-dl's PilotNet SDNN on a short video: messages and synaptic operations per frame against the equivalent
ANN's multiply-accumulates per frame (issue 19 item 5), emulator time per frame on its numba and torch paths, and
Lava's time per frame on the same video with every message of every layer compared.  Writes JSON (and a PNG).

    .venv/bin/python bench/sdnn_video.py --out bench/results/sdnn_video.json

The video: lava-dl's PilotNet input frame (its ``test_pilotnet_sdnn`` input, 3x33x100, values -52..64), frame k
moved right by ``shift * k`` pixels (``np.roll``, wrapping round) and brightened by ``brighten * k``, for
``--frames`` frames, each frame held for ``--hold`` steps (default 1: one step per frame, as lava-dl's PilotNet SDNN
tutorial streams its video).  One stream from a fresh network, stream timing (each synapse one step late, so the
9-layer network's output lags its input by 8 steps and the first frames fill the pipeline).

Counting, per frame (the ``hold`` steps of the frame; with ``--hold 1`` one step):

* messages of a layer: its nonzero graded outputs (the input Delta's included; Lava sends nothing for a zero);
* synaptic operations of a synapse: each message of its source neuron times that neuron's fan-out.  Dense: the
  layer's output features.  Conv: the number of (output channel, output position) pairs whose receptive field holds
  the neuron (stride, padding and dilation counted exactly, zero weights included: Lava's conv touches them), from
  the gradient of ``sum(conv2d(x, ones))``.  The output Sigma layer feeds only the sink: no operations;
* the equivalent ANN's MACs: per synaptic layer its weight count times its output positions (conv) or its weight
  count (dense), every frame.

Timing: the whole video run as one sample, median of ``--repeats`` runs after a warm-up (numba compiled and cached),
``--threads`` torch threads (also the numba kernels' thread count; one sample uses one either way).  Lava: the
whole ``verify`` call's Lava part (``run_lava``: build, compile, processes, run, read-back) on the first
``--lava-frames`` frames and, to separate the start-up, on half as many: the marginal seconds per frame is the
difference over the extra frames (after one uncounted warm-up call of one frame).  ``verify`` compares every
message of every layer at every step between Lava and the emulator.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the repository root: sim_tests' golden files
from _results import write_results  # noqa: E402

from loihic.compiler.netx.model import NxConv, NxDense, NxFlatten  # noqa: E402
from loihic.compiler.netx.read import read_netx  # noqa: E402
from loihic.deploy.emulator.network import Emulator  # noqa: E402
from sim_tests.golden.lava_dl.make_lava_dl import unpack  # noqa: E402


def video(frame: np.ndarray, frames: int, hold: int, shift: int, brighten: int) -> np.ndarray:
    """(1, C, H, W, frames * hold) int64: frame k moved right ``shift * k`` pixels, brightened by ``brighten * k``."""
    clips = [np.roll(frame, shift * k, axis=2) + brighten * k for k in range(frames)]
    return np.repeat(np.stack(clips, -1), hold, axis=-1)[None].astype(np.int64)


def conv_fanout(layer: NxConv, in_shape: tuple[int, ...]) -> np.ndarray:
    """Per input neuron (C, H, W): how many (output channel, output position) pairs it reaches."""
    x = torch.zeros((1, *in_shape), dtype=torch.float64, requires_grad=True)
    w = torch.ones(layer.weight.shape, dtype=torch.float64)
    y = F.conv2d(x, w, stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)
    y.sum().backward()
    fan = x.grad[0].numpy()
    assert np.array_equal(fan, np.round(fan))
    return fan.astype(np.int64)


def synapses(model) -> list[dict]:  # noqa: ANN001
    """Per synaptic layer: its name, its source's fan-out per neuron (flattened, the source's order), its MACs."""
    out, shape = [], tuple(model.input.shape)
    conv_k = dense_k = 0
    for layer in model.layers:
        if isinstance(layer, NxFlatten):
            shape = tuple(layer.shape)
            continue
        if isinstance(layer, NxConv):
            conv_k += 1
            fan = conv_fanout(layer, shape).reshape(-1)
            macs = int(layer.weight.size) * int(np.prod(layer.shape[1:]))
            name = f"conv{conv_k}"
        else:
            assert isinstance(layer, NxDense)
            dense_k += 1
            fan = np.full(int(np.prod(shape)), layer.weight.shape[0], np.int64)
            macs = int(layer.weight.size)
            name = f"dense{dense_k}"
        out.append({"name": name, "fanout": fan, "macs": macs, "out_shape": tuple(layer.shape)})
        shape = tuple(layer.shape)
    return out


def time_emulator(model, x: np.ndarray, backend: str, repeats: int) -> tuple[float, object]:  # noqa: ANN001
    emu = Emulator(model, "cpu", backend=backend)
    res = emu.run(x, record_layers=True)  # warm-up: numba compiles (or loads its cache), buffers are allocated
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        emu.run(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), res


def scan_ns_per_element(shape: tuple[int, int, int], repeats: int) -> dict:
    """The recurrences alone on one (B, T, n) block of float32 sums (conv1's output size; random integers, seed 0):
    nanoseconds per (sample, step, neuron) of the LIF numba scan (today's LIF path), the sigma-delta numba scan
    (SigmaDelta, ReLU) and the sigma-delta torch scan."""
    from loihic.deploy.emulator import kernels, lif, sigma_delta

    rng = np.random.default_rng(0)
    nb, nt, n = shape
    acc = torch.as_tensor(rng.integers(-3000, 3000, shape).astype(np.float32))
    vth, bias = sigma_delta.threshold(13), torch.as_tensor(sigma_delta.bias_term(rng.integers(-50, 50, n)))
    out = torch.zeros(shape, dtype=torch.float32)

    def lif_numba() -> None:
        u, v = torch.zeros((nb, n), dtype=torch.int64), torch.zeros((nb, n), dtype=torch.int64)
        kernels.scan_numba(acc, 0, True, 4096 - 1024, 4096 - 128, lif.threshold(300), bias, u, v, out)

    def sd(fn):  # noqa: ANN001, ANN202
        def run() -> None:
            state = [torch.zeros((nb, n), dtype=torch.int64) for _ in range(3)]
            fn("sigma_delta", True, acc, 0, True, True, vth, bias, state, out)

        return run

    res = {}
    for name, fn in (
        ("lif_numba", lif_numba),
        ("sd_numba", sd(kernels.sd_scan_numba)),
        ("sd_torch", sd(kernels.sd_scan_torch)),
    ):
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        res[name] = 1e9 * float(np.median(times)) / acc.numel()
    res["sd_numba_over_lif_numba"] = res["sd_numba"] / res["lif_numba"]
    res["sd_torch_over_sd_numba"] = res["sd_torch"] / res["sd_numba"]
    res["block"] = list(shape)
    return res


def lava_run(path: Path, model, x: np.ndarray) -> dict:  # noqa: ANN001
    from loihic.deploy.verification.parity import verify

    rep = verify(str(path), x, model=model, progress=False)
    return {
        "steps": int(x.shape[-1]),
        "identical": bool(rep.identical),
        "mismatches": int(rep.mismatches),
        "messages_compared": int(rep.spikes_compared),
        "lava_seconds": rep.lava_seconds,
        "emulator_seconds_in_verify": rep.emulator_seconds,
    }


def plot(res: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fr = res["per_frame"]
    k = np.arange(len(fr["synops"]))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.bar(k, np.array(fr["synops"]) / res["ann_macs_per_frame"], color="tab:blue", label="synops / ANN MACs")
    ax.axhline(0.3, color="tab:red", ls="--", label="goal 0.3x")
    ax.axhline(1.0, color="gray", ls=":", label="ANN (1x)")
    ax.set_xlabel(f"frame (held {res['video']['hold']} step(s) each)")
    ax.set_ylabel("synaptic ops / ANN MACs")
    ax.set_title("lava-dl PilotNet SDNN on a moving, brightening frame")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def main() -> int:  # noqa: PLR0915
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench/results/sdnn_video.json")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--hold", type=int, default=1, help="steps per frame")
    ap.add_argument("--shift", type=int, default=2, help="pixels moved right per frame")
    ap.add_argument("--brighten", type=int, default=3, help="added to every pixel per frame")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lava-frames", type=int, default=16, help="frames run on Lava (0: skip Lava)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    tmp = Path(tempfile.mkdtemp())
    path = unpack("pilotnet_sdnn.net", tmp)
    frame = np.load(unpack("pilotnet_sdnn_input.npy", tmp)).transpose(2, 1, 0, 3)[..., 0].astype(np.int64)
    model = read_netx(path, sigma_delta=True)
    x = video(frame, args.frames, args.hold, args.shift, args.brighten)
    steps = x.shape[-1]

    sec_numba, res = time_emulator(model, x, "numba", args.repeats)
    sec_torch, res_torch = time_emulator(model, x, "torch", max(3, args.repeats // 4))
    same_paths = all(np.array_equal(a, b) for a, b in zip(res.layer_spikes, res_torch.layer_spikes, strict=True))

    scans = scan_ns_per_element((1, steps, int(np.prod(model.layers[0].shape))), args.repeats)
    syn = synapses(model)
    layers = res.layer_spikes  # (1, *shape, steps) per neuron layer: input Delta, 4 convs, 4 dense
    names = ["input", *[s["name"] for s in syn]]
    assert len(layers) == len(syn) + 1
    sent = [m[0].reshape(-1, steps) != 0 for m in layers]
    ops = np.stack([(m * s["fanout"][:, None]).sum(0) for m, s in zip(sent[:-1], syn, strict=True)])
    msgs = np.stack([m.sum(0) for m in sent])  # (layers, steps)
    per_frame = lambda a: a.reshape(a.shape[0], args.frames, args.hold).sum(-1)  # noqa: E731
    msgs_f, ops_f = per_frame(msgs), per_frame(ops)
    ann = sum(s["macs"] for s in syn)
    synops = ops_f.sum(0)
    ratio = synops / ann
    depth = len(syn)  # stream timing: the last synapse first sees frame 0 at step `depth - 1`
    filled = max(1, -(-depth // args.hold))  # frames after which every layer has seen the first frame

    res_json: dict = {
        "what": "lava-dl PilotNet SDNN on a short video: messages and synaptic ops per frame vs the ANN's MACs; "
        "emulator (numba, torch) and Lava time per frame; emulator == Lava",
        "command": "OMP_NUM_THREADS=1 .venv/bin/python bench/sdnn_video.py " + " ".join(sys.argv[1:]),
        "args": vars(args),
        "seed": None,
        "seed_note": "no randomness: the video is lava-dl's input frame moved and brightened deterministically",
        "network": "lava-dl gts/pilotnet_sdnn/network.net (sim_tests/golden/lava_dl/pilotnet_sdnn.net.gz)",
        "video": {
            "frames": args.frames,
            "hold": args.hold,
            "steps": steps,
            "frame_k": f"np.roll(frame, {args.shift} * k, axis=W) + {args.brighten} * k",
            "timing": "stream (one fresh network, no reset; each synapse one step late)",
        },
        "layers": names,
        "ann_macs_per_frame": ann,
        "ann_macs_per_layer": {s["name"]: s["macs"] for s in syn},
        "fanout_per_source": {
            n: {"min": int(s["fanout"].min()), "max": int(s["fanout"].max()), "sum": int(s["fanout"].sum())}
            for n, s in zip(names[:-1], syn, strict=True)
        },
        "per_frame": {
            "messages": msgs_f.sum(0).tolist(),
            "messages_per_layer": {n: msgs_f[k].tolist() for k, n in enumerate(names)},
            "synops": synops.tolist(),
            "synops_per_source_layer": {n: ops_f[k].tolist() for k, n in enumerate(names[:-1])},
            "synops_over_ann_macs": [round(float(r), 4) for r in ratio],
        },
        "summary": {
            "pipeline_depth_synapses": depth,
            "first_frame_with_every_layer_reached": filled - 1,
            "synops_over_ann_first_frame": float(ratio[0]),
            "synops_over_ann_mean_after_first_frame": float(ratio[1:].mean()) if args.frames > 1 else None,
            "synops_over_ann_mean_after_pipeline_fill": float(ratio[filled:].mean()) if args.frames > filled else None,
            "synops_over_ann_max_after_first_frame": float(ratio[1:].max()) if args.frames > 1 else None,
            "whole_video_synops_over_ann": float(synops.sum() / (ann * args.frames)),
            "goal": "synops per frame below 0.3x the ANN's MACs after the first frame",
            "neurons": int(sum(int(np.prod(m.shape[1:-1])) for m in layers)),
        },
        "emulator": {
            "threads": args.threads,
            "repeats": args.repeats,
            "numba_seconds_per_frame": sec_numba / args.frames,
            "torch_seconds_per_frame": sec_torch / args.frames,
            "torch_over_numba": sec_torch / sec_numba,
            "numba_equals_torch_every_layer": same_paths,
            "scan_ns_per_element": scans,
        },
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
    }
    if args.lava_frames:
        long = video(frame, args.lava_frames, args.hold, args.shift, args.brighten)
        half = long[..., : (args.lava_frames // 2) * args.hold]
        lava_run(path, model, long[..., : args.hold])  # warm-up, not counted: imports, first compiles, caches
        runs = [lava_run(path, model, half), lava_run(path, model, long)]
        extra = args.lava_frames - args.lava_frames // 2
        marginal = (runs[1]["lava_seconds"] - runs[0]["lava_seconds"]) / extra
        res_json["lava"] = {
            "runs": runs,
            "identical_every_layer_every_step": all(r["identical"] for r in runs),
            "whole_call_seconds_per_frame": runs[1]["lava_seconds"] / args.lava_frames,
            "marginal_seconds_per_frame": marginal,
            "emulator_speedup_whole_call": runs[1]["lava_seconds"] / args.lava_frames / (sec_numba / args.frames),
            "emulator_speedup_marginal": marginal / (sec_numba / args.frames),
            "goal": "emulator >= 200x faster than Lava per frame",
        }
    write_results(res_json, args.out, plot)
    s = res_json["summary"]
    print(
        f"ANN MACs/frame {ann}; synops/ANN first frame {s['synops_over_ann_first_frame']:.3f}, "
        f"mean after it {s['synops_over_ann_mean_after_first_frame']:.3f}, "
        f"after the pipeline fill {s['synops_over_ann_mean_after_pipeline_fill']}; emulator numba "
        f"{1e3 * sec_numba / args.frames:.3f} ms/frame, torch {1e3 * sec_torch / args.frames:.3f} ms/frame "
        f"(x{sec_torch / sec_numba:.2f})"
    )
    if "lava" in res_json:
        lv = res_json["lava"]
        print(
            f"Lava {lv['whole_call_seconds_per_frame']:.3f} s/frame whole call, {lv['marginal_seconds_per_frame']:.3f}"
            f" marginal; speedup {lv['emulator_speedup_whole_call']:.0f}x / {lv['emulator_speedup_marginal']:.0f}x; "
            f"identical {lv['identical_every_layer_every_step']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
