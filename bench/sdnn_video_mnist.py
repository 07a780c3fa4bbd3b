"""A loihic-converted sigma-delta network on videos of moving MNIST digits: messages and synaptic operations per
frame against the ANN's multiply-accumulates per frame (issue 19 item 5, "shifted digits"), and Lava on one video
with every message of every layer compared.  Writes JSON (and a PNG).

    .venv/bin/python bench/sdnn_mnist_cnn.py --pooling layer    # trains, exports: runs/sdnn_mnist_cnn/*.pt2
    .venv/bin/python bench/sdnn_video_mnist.py --out bench/results/sdnn_video_mnist.json

The network: the MNIST CNN of bench/user_pytorch_mnist.py (``mnist_cnn.pt2`` and ``calib.npy`` in ``--workdir``,
written by bench/sdnn_mnist_cnn.py) converted with ``loihic convert --neuron sdnn --sdnn-pooling layer
--sdnn-budget B`` (the delta thresholds the largest within the accuracy budget ``B``: a video wants fewer messages
than a static image, so the default here is 0.05 against convert's 0.01), compiled, and its accuracy measured on
the whole MNIST test set (each image held T steps, as ``loihic evaluate``); or any compiled SDNN file of MNIST's
shape given with ``--net`` (no accuracy then).  The videos: ``--digits`` test digits (the first of the test set,
in order), each moving right ``--speed`` pixels per frame across a black background (zero fill, no wrap-around),
from ``-frames * speed / 2`` to ``+frames * speed / 2 - speed`` pixels off centre, each frame held ``--hold`` steps.
Each video is one stream from a fresh network (stream timing: each synapse one step late, so the output lags by
the number of synaptic layers).  ``--speed 0`` gives the static control: the digit held still.

Counted as in bench/sdnn_video.py (lava-dl's PilotNet on a panning, brightening frame): a layer's messages are
its nonzero graded outputs, a synapse's operations each message of its source times that neuron's exact fan-out,
the ANN's MACs every synaptic layer's weights times its output positions, every frame.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import loihic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402
from sdnn_video import lava_run, synapses  # noqa: E402

from loihic.compiler.encoding import input_scale  # noqa: E402
from loihic.compiler.netx.read import read_netx  # noqa: E402
from loihic.deploy.emulator.network import Emulator  # noqa: E402
from loihic.training.data import load_dataset  # noqa: E402


def cli(*args: str) -> str:
    """``loihic ARGS`` as a user runs it; its stdout.  A failure ends the bench with its stderr."""
    proc = subprocess.run([sys.executable, "-m", "loihic", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"loihic {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def convert_and_compile(workdir: Path, budget: float, seed: int) -> tuple[Path, list[str]]:
    """``workdir/sdnn_video_b<budget>.net`` from ``workdir``'s mnist_cnn.pt2 and calib.npy; the commands run."""
    src, calib = workdir / "mnist_cnn.pt2", workdir / "calib.npy"
    for f in (src, calib):
        if not f.is_file():
            raise SystemExit(f"{f}: no such file; run bench/sdnn_mnist_cnn.py --pooling layer first (or give --net)")
    ckpt, net = workdir / f"sdnn_video_b{budget:g}.pt", workdir / f"sdnn_video_b{budget:g}.net"
    convert = [
        "convert", str(src), "--calib", str(calib), "--neuron", "sdnn", "--sdnn-pooling", "layer",
        "--sdnn-budget", f"{budget:g}", "--seed", str(seed), "-o", str(ckpt), "--force",
    ]  # fmt: skip
    compile_ = ["compile", str(ckpt), "-o", str(net), "--force"]
    cli(*convert)
    cli(*compile_)
    return net, ["loihic " + " ".join(convert), "loihic " + " ".join(compile_)]


def shift_right(img: np.ndarray, dx: int) -> np.ndarray:
    """(C, H, W) moved ``dx`` pixels right (left when negative), zero fill."""
    out = np.zeros_like(img)
    w = img.shape[-1]
    if dx >= 0:
        out[..., dx:] = img[..., : w - dx]
    else:
        out[..., : w + dx] = img[..., -dx:]
    return out


def videos(x: np.ndarray, frames: int, hold: int, speed: int, scale: int) -> np.ndarray:
    """(N, C, H, W, frames * hold) int64: each image moving right ``speed`` pixels per frame, as the Delta's
    integers ``round(scale * x)``."""
    start = -(frames * speed) // 2
    clips = np.stack([np.stack([shift_right(img, start + speed * k) for k in range(frames)], -1) for img in x])
    return np.repeat(np.rint(clips * scale).astype(np.int64), hold, axis=-1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("--net", default=None, help="a compiled sigma-delta netx file taking MNIST images (no convert)")
    ap.add_argument("--workdir", default="runs/sdnn_mnist_cnn", help="holds mnist_cnn.pt2 and calib.npy")
    ap.add_argument("--budget", type=float, default=0.05, help="convert's --sdnn-budget")
    ap.add_argument("--seed", type=int, default=0, help="convert's --seed (its calibration draw)")
    ap.add_argument("--test-samples", type=int, default=None, help="accuracy on the first N (default: all 10,000)")
    ap.add_argument("--digits", type=int, default=100, help="videos: the first test digits")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--hold", type=int, default=1, help="steps per frame")
    ap.add_argument("--speed", type=int, default=1, help="pixels moved right per frame (0: the digit held still)")
    ap.add_argument("--lava-digits", type=int, default=1, help="videos run on Lava (0: skip Lava)")
    ap.add_argument("--out", default="bench/results/sdnn_video_mnist.json")
    args = ap.parse_args()
    commands: list[str] = []
    if args.net is None:
        path, commands = convert_and_compile(Path(args.workdir), args.budget, args.seed)
    else:
        path = Path(args.net)
        if not path.is_file():
            raise SystemExit(f"{path}: no such file")

    model = read_netx(path, sigma_delta=True)
    x_test, y_test = load_dataset("mnist", "test")
    accuracy = None
    if args.net is None:
        n = len(x_test) if args.test_samples is None else args.test_samples
        accuracy = {"samples": n, "accuracy": loihic.evaluate(path, x_test[:n], y_test[:n])}
    x = videos(x_test[: args.digits], args.frames, args.hold, args.speed, input_scale("direct"))
    steps = x.shape[-1]
    t0 = time.perf_counter()
    res = Emulator(model, "cpu").run(x, record_layers=True)
    emu_seconds = time.perf_counter() - t0

    syn = synapses(model)
    names = ["input", *[s["name"] for s in syn]]
    assert len(res.layer_spikes) == len(syn) + 1, "expected an input Delta layer and one neuron layer per synapse"
    sent = [(m != 0).reshape(len(m), -1, steps) for m in res.layer_spikes]  # (N, neurons, steps)
    msgs = np.stack([m.sum(1) for m in sent], 1)  # (N, layers, steps)
    ops = np.stack([(m * s["fanout"][None, :, None]).sum(1) for m, s in zip(sent[:-1], syn, strict=True)], 1)
    per_frame = lambda a: a.reshape(*a.shape[:2], args.frames, args.hold).sum(-1)  # noqa: E731
    msgs_f, ops_f = per_frame(msgs), per_frame(ops)  # (N, layers, frames)
    ann = sum(s["macs"] for s in syn)
    ratio = ops_f.sum(1) / ann  # (N, frames)
    depth = len(syn)
    filled = max(1, -(-depth // args.hold))  # frames after which every layer has seen the first frame
    mean_ratio = ratio.mean(0)

    out: dict = {
        "what": "a loihic-converted MNIST SDNN on videos of moving digits: messages and synaptic ops per frame vs "
        "the ANN's MACs per frame; emulator == Lava",
        "command": ".venv/bin/python bench/sdnn_video_mnist.py " + " ".join(sys.argv[1:]),
        "args": vars(args),
        "seed": None,
        "seed_note": "no randomness: the first test digits, moved deterministically",
        "network": str(path),
        "commands": commands,
        "budget": args.budget if args.net is None else None,
        "static_accuracy": accuracy,
        "video": {
            "digits": args.digits,
            "frames": args.frames,
            "hold": args.hold,
            "steps": steps,
            "frame_k": f"digit moved right by {-(args.frames * args.speed) // 2} + {args.speed} * k pixels, zero fill",
            "timing": "stream (one fresh network per video, no reset; each synapse one step late)",
        },
        "layers": names,
        "ann_macs_per_frame": ann,
        "ann_macs_per_layer": {s["name"]: s["macs"] for s in syn},
        "per_frame_mean_over_digits": {
            "messages": msgs_f.sum(1).mean(0).round(1).tolist(),
            "messages_per_layer": {n: msgs_f[:, k].mean(0).round(1).tolist() for k, n in enumerate(names)},
            "synops": ops_f.sum(1).mean(0).round(1).tolist(),
            "synops_over_ann_macs": [round(float(r), 4) for r in mean_ratio],
        },
        "summary": {
            "pipeline_depth_synapses": depth,
            "first_frame_with_every_layer_reached": filled - 1,
            "synops_over_ann_first_frame": float(mean_ratio[0]),
            "synops_over_ann_mean_after_first_frame": float(ratio[:, 1:].mean()) if args.frames > 1 else None,
            "synops_over_ann_mean_after_pipeline_fill": float(ratio[:, filled:].mean())
            if args.frames > filled
            else None,
            "synops_over_ann_max_after_pipeline_fill_per_digit": float(ratio[:, filled:].max())
            if args.frames > filled
            else None,
            "messages_per_frame_after_pipeline_fill": float(msgs_f.sum(1)[:, filled:].mean())
            if args.frames > filled
            else None,
            "neurons": int(sum(int(np.prod(m.shape[1:-1])) for m in res.layer_spikes)),
            "goal": "synops per frame below 0.3x the ANN's MACs after the first frame",
        },
        "emulator_seconds_per_frame": emu_seconds / (args.digits * args.frames),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
    }
    if args.lava_digits:
        runs = [lava_run(path, model, x[i : i + 1]) for i in range(args.lava_digits)]
        out["lava"] = {"runs": runs, "identical_every_layer_every_step": all(r["identical"] for r in runs)}
    write_results(out, args.out, lambda res, png: plot(res, png))
    s = out["summary"]
    print(
        f"ANN MACs/frame {ann}; synops/ANN first frame {s['synops_over_ann_first_frame']:.3f}, after the first "
        f"{s['synops_over_ann_mean_after_first_frame']}, after the pipeline fill "
        f"{s['synops_over_ann_mean_after_pipeline_fill']}"
        + (f"; accuracy {accuracy['accuracy']:.4f} on {accuracy['samples']}" if accuracy else "")
        + (f"; Lava identical: {out['lava']['identical_every_layer_every_step']}" if "lava" in out else "")
    )
    return 0


def plot(res: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = res["per_frame_mean_over_digits"]["synops_over_ann_macs"]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.bar(np.arange(len(r)), r, color="tab:blue", label="synops / ANN MACs (mean over digits)")
    ax.axhline(0.3, color="tab:red", ls="--", label="goal 0.3x")
    ax.axhline(1.0, color="gray", ls=":", label="ANN (1x)")
    ax.set_xlabel(f"frame (held {res['video']['hold']} step(s) each)")
    ax.set_ylabel("synaptic ops / ANN MACs")
    ax.set_title(f"MNIST SDNN on digits moving {res['args']['speed']} px/frame")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
