"""One ANN deployed two ways, measured the same way: a sigma-delta network (``loihic convert --neuron sdnn``) and a
rate-coded LIF network (threshold balancing), each compiled and run on the emulator over a test set, with Lava on
a few images, synaptic operations per image against the ANN's multiply-accumulates, and emulator time per image.
Used by bench/sdnn_mnist_cnn.py and bench/sdnn_lenet5_mnist.py.

Counts (compiler/resources.py, deploy/verification/report.py ``sdnn_traffic``, the numbers ``loihic report``
prints): a synaptic operation is a nonzero message (a spike, or a graded sigma-delta payload) times the nonzero
weights it reaches.  The ANN's MACs are counted twice: as the user wrote the network (``ann_macs_as_written``:
average pooling a separate step) and as deployed (``ann_macs_deployed``: pooling folded into the next layer,
which widens its kernel; netx has no average-pooling layer that works).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import loihic
from loihic.compiler.encoding import encode_chunks
from loihic.compiler.load.checkpoint import ann_network
from loihic.compiler.netx.read import read_netx
from loihic.compiler.resources import layer_resources, network_macs, synops_per_inference
from loihic.deploy.emulator.network import Emulator, predict
from loihic.deploy.netx_run import message_bits
from loihic.deploy.verification.accuracy import sdnn_predict
from loihic.deploy.verification.report import sdnn_traffic
from loihic.training.checkpoint import load_checkpoint


def cli(*args: str) -> str:
    """``loihic ARGS`` as a user runs it (one process); its stdout.  A failure ends the bench with its stderr."""
    proc = subprocess.run([sys.executable, "-m", "loihic", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"loihic {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def macs_as_written(ann: dict[str, Any]) -> list[dict[str, Any]]:
    return network_macs(ann_network(ann, weights=True))


def time_per_image(net: Path, x: np.ndarray, y: np.ndarray, timesteps: int | None = None) -> float:
    """Seconds per image of ``loihic.evaluate`` on the emulator (the user's path, CPU)."""
    t = time.perf_counter()
    loihic.evaluate(net, x, y, timesteps=timesteps)
    return (time.perf_counter() - t) / len(x)


def lava(net: Path, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    rep = loihic.verify(net, x, y)
    return {
        "samples": rep.samples,
        "identical": rep.identical,
        "mismatches": rep.mismatches,
        "values_compared": rep.spikes_compared,
        "accuracy_emulator": rep.accuracy_emulator,
        "accuracy_lava": rep.accuracy_lava,
        "lava_seconds": rep.lava_seconds,
        "stream": rep.stream,
    }


def _totals(rows: list[dict[str, Any]], written: list[dict[str, Any]], ops: list[float]) -> dict[str, Any]:
    dep = int(sum(r["ann_macs"] for r in rows))
    wr = int(sum(r["macs"] for r in written))
    total = float(sum(ops))
    return {
        "synops_per_image": total,
        "synops_per_layer": ops,
        "ann_macs_as_written": wr,
        "ann_macs_as_written_per_layer": [r["macs"] for r in written],
        "ann_macs_deployed": dep,
        "ann_macs_deployed_per_layer": [r["ann_macs"] for r in rows],
        "synops_per_ann_mac_as_written": total / wr,
        "synops_per_ann_mac_deployed": total / dep,
    }


def sdnn_side(
    source: Path,
    calib: Path,
    xte: np.ndarray,
    yte: np.ndarray,
    work: Path,
    written: list[dict[str, Any]],
    lava_samples: int,
    time_samples: int,
    seed: int,
    extra: tuple[str, ...] = (),
    tag: str = "",
    stream_samples: int = 1000,
) -> dict[str, Any]:
    """``loihic convert SOURCE --calib CALIB --neuron sdnn`` (default budget), ``loihic compile``, then the emulator
    over (xte, yte) from a fresh network per image, and over the first ``stream_samples`` in streams of 8 images;
    Lava on ``lava_samples``."""
    sd, net = work / f"sdnn{tag and '_' + tag}.pt", work / f"sdnn{tag and '_' + tag}.net"
    t = time.perf_counter()
    conv_out = cli("convert", str(source), "--calib", str(calib), "--neuron", "sdnn", "--seed", str(seed), "-o",
                   str(sd), "--force", *extra)  # fmt: skip
    convert_s = time.perf_counter() - t
    comp_out = cli("compile", str(sd), "-o", str(net), "--force")
    snn = load_checkpoint(sd)["snn"]
    model = read_netx(net, sigma_delta=True)
    steps = int(snn["timesteps"])
    tr = sdnn_traffic(model, xte, steps, chain=1)  # fresh network per image: accuracy and counts
    acc = float((sdnn_predict(tr.output) == yte).mean())
    st = sdnn_traffic(model, xte[:stream_samples], steps, chain=8)
    rows = layer_resources(model)
    res = {
        "command_convert": f"loihic convert {source.name} --calib {calib.name} --neuron sdnn --seed {seed}"
        + "".join(f" {a}" for a in extra),
        "command_compile": f"loihic compile {sd.name} -o {net.name}",
        "convert_output": conv_out.strip().splitlines(),
        "compile_output": comp_out.strip().splitlines(),
        "convert_seconds": convert_s,
        "timesteps": steps,
        "settle_index": int(model.meta["sdnn"]["settle_index"]),
        "input_delta": snn["input_delta"],
        "thresholds": snn["thresholds"],
        "budget": snn["budget"],
        "threshold_trials": snn["threshold_trials"],
        "calibration_check": snn["calibration_check"],
        "accuracy": acc,
        "test_samples": int(len(xte)),
        "messages_per_image": float(sum(tr.messages[:-1])),
        "messages_per_layer": tr.messages,
        **_totals(rows, written, tr.synops),
        "stream_chain": 8,
        "stream_samples": int(len(xte[:stream_samples])),
        "stream_images": st.stream_images,
        "stream_messages_per_image": float(sum(st.stream_messages[:-1])),
        "stream_synops_per_image": float(sum(st.stream_synops)),
        "stream_synops_per_layer": st.stream_synops,
    }
    res["stream_synops_per_ann_mac_as_written"] = res["stream_synops_per_image"] / res["ann_macs_as_written"]
    res["emulator_seconds_per_image"] = time_per_image(net, xte[:time_samples], yte[:time_samples])
    res["emulator_time_samples"] = time_samples
    res["lava"] = lava(net, xte[:lava_samples], yte[:lava_samples])
    return res


def rate_side(
    source: Path,
    calib: np.ndarray,
    xte: np.ndarray,
    yte: np.ndarray,
    timesteps: int,
    work: Path,
    written: list[dict[str, Any]],
    lava_samples: int,
    time_samples: int,
    seed: int,
) -> dict[str, Any]:
    """Threshold balancing at T (``loihic.convert(source, calib, timesteps=T)``, the CLI's defaults), compile, the
    emulator over (xte, yte) (Poisson input by the chunk rule, as ``loihic evaluate``), Lava on a few."""
    t = time.perf_counter()
    snn = loihic.convert(source, calib, timesteps=timesteps, seed=seed)
    convert_s = time.perf_counter() - t
    net = loihic.compile(snn, work / "rate.net", force=True)
    model = read_netx(net)
    encoding = str(model.meta.get("encoding", "poisson"))
    emu = Emulator(model, "cpu", input_message_bits=message_bits(model))
    correct, ops = 0, np.zeros(len(model.neuron_layers))
    for start, spikes in encode_chunks(xte, timesteps, encoding, seed):
        r = emu.run(spikes, record_layers=True)
        pred = predict(r.output_spikes, r.output_v, emu.output_spiking)
        correct += int((pred == yte[start : start + len(spikes)]).sum())
        ops += np.asarray(synops_per_inference(model, r.layer_spikes, spikes)) * len(spikes)
    rows = layer_resources(model)
    res = {
        "command": f"loihic convert {source.name} --calib CALIB -T {timesteps} --seed {seed}; loihic compile",
        "convert_seconds": convert_s,
        "timesteps": timesteps,
        "norm": snn["snn"].get("norm"),
        "accuracy": correct / len(xte),
        "test_samples": int(len(xte)),
        **_totals(rows, written, (ops / len(xte)).tolist()),
    }
    res["emulator_seconds_per_image"] = time_per_image(net, xte[:time_samples], yte[:time_samples])
    res["emulator_time_samples"] = time_samples
    res["lava"] = lava(net, xte[:lava_samples], yte[:lava_samples])
    return res


def table(name: str, float_acc: float, sdnn: dict[str, dict[str, Any]], rate: dict[str, Any] | None) -> str:
    """The bench's printed table (one row per deployment; ``sdnn``: pooling mode -> result)."""
    first = next(iter(sdnn.values()))
    lines = [
        f"{name}: float ANN {100 * float_acc:.2f}% on {first['test_samples']} test images; ANN MACs per image "
        f"{first['ann_macs_as_written']:,} as written",
        "deployment            T  accuracy (images)  synops/image  per MAC  stream synops/image  per MAC  "
        "emulator ms/image  Lava",
    ]
    rows = [(f"SDNN pool {p}", r) for p, r in sdnn.items()] + ([("rate LIF", rate)] if rate else [])
    for label, r in rows:
        stream = r.get("stream_synops_per_image")
        lines.append(
            f"{label:<18} {r['timesteps']:>4}  {100 * r['accuracy']:>7.2f}% ({r['test_samples']:>5})  "
            f"{r['synops_per_image']:>12,.0f}  "
            f"{r['synops_per_ann_mac_as_written']:>7.3f}  "
            + (f"{stream:>19,.0f}  {stream / r['ann_macs_as_written']:>7.3f}" if stream is not None else f"{'-':>28}")
            + f"  {1e3 * r['emulator_seconds_per_image']:>17.2f}  "
            f"{'identical' if r['lava']['identical'] else 'MISMATCH'} ({r['lava']['samples']})"
        )
    return "\n".join(lines)
