"""``loihic report``: how far the Loihi network drifted from the float network it came from, and what it costs.

The float reference (an SNN checkpoint, the file ``loihic compile`` read) and the compiled netx file run on the
same encoded inputs (the shared chunk rule, ``training/snn.py``).  Written to ``--output DIR``:

- ``report.json``: per layer the spike-count correlation (Pearson, over samples x neurons) and the mean absolute
  firing-rate error (spikes per step) between float and Loihi, the first (sample, step, neuron) where their
  spikes differ; prediction agreement and both accuracies (with labels); weight quantisation per layer (scale,
  SQNR, share of weights clipped); accuracy against T for both; resources (``compiler/resources.py``: neurons,
  synapses, memory, an estimate of Loihi 2 cores), synaptic operations per inference measured from the
  emulator's spikes next to the ANN's multiply-accumulates, an energy proxy with its citation, and the
  hardware-readiness notes;
- ``parity.png``: per layer correlation and rate error, so the layer that lost accuracy stands out;
- ``weights.png``: per layer the float weights in integer units (times the layer's scale) against the integers
  Loihi holds, with the representable range [-256, 254] marked (hls4ml's profiling plots are the model);
- ``accuracy_vs_T.png``: float and Loihi accuracy against the number of time steps.

**Sigma-delta files** (netx 'SDNN', from ``loihic convert --neuron sdnn``; the reference is that SDNN checkpoint,
which stores the lowered ReLU ANN the file computes): every image is held for T steps (stream timing, each from a
fresh network, as ``evaluate``), and the report counts traffic instead of spikes (:func:`sdnn_traffic`):

- per layer the messages it sends (a message is a nonzero graded payload of a Delta or SigmaDelta neuron;
  the Sigma read-out's go to the sink) and per synaptic layer the synaptic operations they cause (a message
  to a fan-out of n nonzero weights is n ops; ``compiler/resources.py`` ``synops_per_inference``, the count the
  LIF report uses), against the ANN's multiply-accumulates of that layer (``ann_macs``: the network as deployed,
  average pooling folded into the next layer; ``compiler/resources.py`` ``network_macs`` counts the ANN as
  written).  Two counts: ``*_per_inference``, over the T steps from a fresh network (the pipeline's fill
  included: while it fills, a layer first sees only its bias and sends messages it corrects a step later), and
  ``*_per_image_stream``, per image when the images follow each other in one stream, each held T steps without
  a reset, the first of each chain of ``chain`` images left out (the pipeline has filled: an image costs what its
  activations changed from the previous one);
- per layer the activation the next layer has seen (its messages added up over the T steps, / (64 S_l), S_l
  the layer's activation scale; the Delta's / (64 S_0) = the pixel) against the float ANN's ReLU activation:
  correlation and mean relative error; for the read-out ``sigma / (4096 S_L)`` at the last step against the
  ANN's output (compiler/passes/quantize_sdnn.py derives the scales);
- accuracy against T from one run (the read-out at step t is the T = t + 1 answer: nothing later changes it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loihic.compiler.config import CompileConfig
from loihic.compiler.errors import InputError
from loihic.compiler.netx import schema
from loihic.compiler.netx.read import NetxModel
from loihic.compiler.resources import (
    ENERGY_PER_SYNOP_J,
    ENERGY_SOURCE,
    LIMITS_SOURCE,
    hardware_notes,
    layer_resources,
    synops_per_inference,
)
from loihic.deploy.emulator.network import Emulator, predict
from loihic.deploy.verification.accuracy import check_sdnn_steps


def _first_divergence(a: np.ndarray, b: np.ndarray) -> dict[str, Any] | None:
    diff = a != b
    if not diff.any():
        return None
    t = int(np.nonzero(diff.any(axis=tuple(range(diff.ndim - 1))))[0][0])
    s, *neuron = (int(v) for v in np.argwhere(diff[..., t])[0])
    return {"sample": s, "step": t, "neuron": neuron}


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


@dataclass(frozen=True)
class Reference:
    """The float network a netx file came from: its IR compiled as the file was (shapes, scales), and a model
    whose ``simulate(spikes, record=True)`` gives the float spikes (``training/snn.SNNRun``)."""

    path: str
    kind: str  # "snn checkpoint" | "nir"
    compiled: Any
    model: Any


def _check_shapes(compiled: Any, model: NetxModel, source: str) -> None:
    layers = model.neuron_layers
    shapes_ref = [tuple(s) for s in _shapes(compiled)]
    if len(compiled.synaptic()) != len(layers) or shapes_ref != [tuple(lay.shape) for lay in layers]:
        raise InputError(
            f"{source}: does not match {model.path}: its layers give shapes {shapes_ref}, the netx file has "
            f"{[tuple(lay.shape) for lay in layers]}"
        )


def load_reference(source: str, model: NetxModel) -> Reference:
    """``--reference``: the SNN checkpoint the file was compiled from, or the NIR graph (``loihic compile
    MODEL.nir``), re-read with the settings the file records and checked against it layer by layer."""
    from loihic.compiler.load.nir import DEFAULT_DT, is_nir, network_from_nir, read_nir
    from loihic.compiler.pipeline import compile_network

    bits = model.meta.get("input_bits")
    cfg = CompileConfig(l4=bool(model.meta.get("l4")), input_bits=int(bits) if bits else None)
    if model.is_sigma_delta:
        return _sdnn_reference(source, model, cfg)
    if Path(source).is_file() and is_nir(source):
        from loihic.deploy.verification.float_ir import IRModel

        steps = int(model.meta.get("timesteps") or 0)
        if steps < 1:
            raise InputError(f"{model.path}: records no sample length; was it compiled from {source}?")
        dt = float(model.meta.get("dt", DEFAULT_DT))
        net = network_from_nir(
            read_nir(source),
            steps,
            dt,
            source,
            str(model.meta.get("encoding", "poisson")),
            # the file's own bias deployment and exporter convention; files from before they were recorded
            # had steady-state CubaLIF biases and NIR's convention
            bias=str(model.meta.get("nir_bias", "steady")),
            convention=str(model.meta.get("nir_convention", "nir")),
        )
        compiled = compile_network(net, cfg)
        _check_shapes(compiled, model, source)
        return Reference(source, "nir", compiled, IRModel(net))
    from loihic.compiler.load.checkpoint import is_sdnn, network_from_checkpoint
    from loihic.training.checkpoint import load_checkpoint
    from loihic.training.snn import SNNModel

    ckpt = load_checkpoint(source, "snn")
    if is_sdnn(ckpt):
        raise InputError(
            f"{source}: is a sigma-delta checkpoint, {model.path} a rate-coded file: pass the checkpoint it was "
            "compiled from"
        )
    compiled = compile_network(network_from_checkpoint(ckpt, source), cfg)
    _check_shapes(compiled, model, source)
    ref_ckpt = ckpt
    if bits:
        from loihic.training.checkpoint import with_input_bits

        ref_ckpt = with_input_bits(ckpt, int(bits))
    if model.meta.get("offset") is not None and ckpt["snn"].get("method") == "noise":
        from loihic.training.noise import steady_offset, with_offset

        off = model.meta["offset"]
        ref_ckpt = with_offset(ref_ckpt, steady_offset() if off == "auto" else float(off))
    return Reference(source, "snn checkpoint", compiled, SNNModel.from_checkpoint(ref_ckpt))


def _sdnn_reference(source: str, model: NetxModel, cfg: CompileConfig) -> Reference:
    """The SDNN checkpoint a sigma-delta file was compiled from (``loihic convert --neuron sdnn``), compiled as
    the file was and checked against it; its model is the IR itself (the float ANN: ``sdnn_thresholds``)."""
    from loihic.compiler.load.checkpoint import is_sdnn, network_from_checkpoint
    from loihic.compiler.pipeline import compile_network
    from loihic.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(source)
    if not is_sdnn(ckpt):
        raise InputError(
            f"{source}: is not a sigma-delta checkpoint; {model.path} is a sigma-delta file: pass the checkpoint "
            "'loihic convert --neuron sdnn' wrote"
        )
    compiled = compile_network(network_from_checkpoint(ckpt, source), cfg)
    _check_shapes(compiled, model, source)
    return Reference(source, "sdnn checkpoint", compiled, compiled)


def _shapes(net: Any) -> list[tuple[int, ...]]:
    from loihic.compiler import ir

    shapes = ir.infer_shapes(net)
    return [shapes[i] for i, lay in enumerate(net.layers) if isinstance(lay, ir.SYNAPTIC)]


def build_report(
    model: NetxModel,
    reference: Reference,
    x: np.ndarray,
    y: np.ndarray | None,
    timesteps: int,
    encoding: str,
    seed: int,
    steps_sweep: list[int],
) -> dict[str, Any]:
    from loihic.compiler.encoding import encode_all as encoded
    from loihic.compiler.fileio import file_sha256
    from loihic.deploy.netx_run import message_bits

    if model.is_sigma_delta:
        return build_sdnn_report(model, reference, x, y, timesteps)
    compiled, snn = reference.compiled, reference.model
    scales = model.meta.get("layer_scales") or {}
    spikes = encoded(x, timesteps, encoding, seed)
    flt = snn.simulate(spikes, record=True)
    emulator = Emulator(model, device="cpu", input_message_bits=message_bits(model))
    emu = emulator.run(spikes, record_layers=True)
    emu_layers = emu.layer_spikes[1:] if model.has_input_neuron else emu.layer_spikes
    layers = []
    numbers = model.neuron_layer_index[1:] if model.has_input_neuron else model.neuron_layer_index
    for k, lay in enumerate(model.neuron_layers):
        row: dict[str, Any] = {"layer": numbers[k], "name": compiled.synaptic()[k].name, "shape": list(lay.shape)}
        if k < len(flt.spikes):
            a = flt.spikes[k].numpy().astype(np.uint8)
            b = emu_layers[k]
            row.update(
                spike_count_correlation=_correlation(a.sum(-1), b.sum(-1)),
                rate_error=float(np.abs(a.mean(-1) - b.mean(-1).astype(np.float64)).mean()),
                rate_float=float(a.mean()),
                rate_loihi=float(b.mean()),
                first_divergence=_first_divergence(a, b),
            )
        else:  # the integrator read-out: compare v_T in the float's units
            q = compiled.synaptic()[k].quant
            scale = float(scales.get(compiled.synaptic()[k].name, q.scale))  # as compiled, whatever the options
            v_loihi = emu.output_v.reshape(len(x), -1) / (scale * q.in_scale * (1 << schema.WEIGHT_SHIFT))
            v_float = flt.output.numpy().reshape(len(x), -1)
            row.update(
                readout_v_correlation=_correlation(v_float, v_loihi),
                readout_v_rel_error=float(np.abs(v_float - v_loihi).mean() / max(np.abs(v_float).mean(), 1e-12)),
            )
        q = compiled.synaptic()[k].quant
        w_float = compiled.synaptic()[k].weight * q.scale
        row["weights"] = {
            "scale": float(q.scale),
            "sqnr_db": float(q.sqnr_db),
            "clipped_share": float(((w_float > schema.WEIGHT_MAX) | (w_float < schema.WEIGHT_MIN)).mean()),
            "histogram_float": np.histogram(w_float, bins=60)[0].tolist(),
        }
        layers.append(row)
    pred_f = flt.output.numpy().reshape(len(x), -1).argmax(1)
    pred_l = predict(emu.output_spikes, emu.output_v, emulator.output_spiking)
    res: dict[str, Any] = {
        "net": model.path,
        "reference": reference.path,
        "reference_kind": reference.kind,
        "reference_sha256_recorded": model.meta.get("source_sha256"),
        "reference_sha256": file_sha256(reference.path),
        "samples": int(len(x)),
        "timesteps": timesteps,
        "encoding": encoding,
        "seed": seed,
        "prediction_agreement": float((pred_f == pred_l).mean()),
        "layers": layers,
    }
    if y is not None:
        res["accuracy_float"] = float((pred_f == y).mean())
        res["accuracy_loihi"] = float((pred_l == y).mean())
        sweep = []
        for t in steps_sweep:
            s_t = encoded(x, t, encoding, seed)
            of = snn.simulate(s_t).output.numpy().reshape(len(x), -1).argmax(1)
            e = emulator.run(s_t)
            ol = predict(e.output_spikes, e.output_v, emulator.output_spiking)
            sweep.append({"timesteps": t, "float": float((of == y).mean()), "loihi": float((ol == y).mean())})
        res["accuracy_vs_timesteps"] = sweep
    rows = layer_resources(model)
    ops = synops_per_inference(model, emu.layer_spikes, spikes)
    for row, o in zip(rows, ops, strict=True):
        row["synops_per_inference"] = o
    total_ops = float(sum(ops))
    res["resources"] = {
        "layers": rows,
        "neurons": int(sum(r["neurons"] for r in rows)),
        "synapses": int(sum(r["synapses"] for r in rows)),
        "synaptic_memory_bits": int(sum(r["synaptic_memory_bits"] for r in rows)),
        "loihi2_cores_estimate": int(sum(r["loihi2_cores_estimate"] for r in rows)),
        "synops_per_inference": total_ops,
        "ann_macs_per_inference": int(sum(r["ann_macs"] for r in rows)),
        "energy_proxy_joules_per_inference": total_ops * ENERGY_PER_SYNOP_J,
        "estimates": "core counts and energy are estimates (see sources); synops are measured on the emulator",
        "limits_source": LIMITS_SOURCE,
        "energy_source": ENERGY_SOURCE,
    }
    res["hardware_notes"] = hardware_notes(model, timesteps)
    return res


@dataclass(frozen=True)
class SdnnTraffic:
    """Messages and synaptic operations of a sigma-delta file on images held T steps (:func:`sdnn_traffic`)."""

    steps: int
    samples: int
    messages: list[float]  # per recorded layer (the Delta first when the file has one), mean per image over T
    synops: list[float]  # per synaptic layer, mean per image over the T steps from a fresh network
    stream_images: int  # images counted in the stream (all but the first of each chain); 0: none
    stream_messages: list[float] | None  # per recorded layer, per image once the pipeline has filled
    stream_synops: list[float] | None  # per synaptic layer, the same
    output: np.ndarray  # (N, *out, T) the read-out's int32 record, fresh network per image
    sent: list[np.ndarray] | None  # per recorded layer (N, *shape): messages added up over T (record_sums)
    seconds: float  # emulator time of the fresh runs


def _count(model: NetxModel, rec: list[np.ndarray], held: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Summed over the batch: messages per recorded layer, synops per synaptic layer."""
    msgs = np.array([float((r != 0).sum()) for r in rec])
    return msgs, np.asarray(synops_per_inference(model, rec, held)) * len(held)


def sdnn_traffic(
    model: NetxModel,
    x: np.ndarray,
    steps: int,
    chain: int = 8,
    record_sums: bool = False,
    device: str | None = "cpu",
    chunk: int = 128,
) -> SdnnTraffic:
    """Images ``x`` (N, *input_shape) in [0, 1] through a sigma-delta file on the emulator (module docstring):
    each held ``steps`` steps from a fresh network (stream timing), and again ``chain`` images at a time back to
    back in one stream without resets, counting every image but the first of each chain (``stream_*``; None when
    fewer than two images form a chain).  Chains are consecutive images; the last ``N mod chain`` are left out."""
    import time

    from loihic.compiler.encoding import encode
    from loihic.deploy.netx_run import message_bits

    check_sdnn_steps(model, steps)
    encoding = str(model.meta.get("encoding", "direct"))
    emu = Emulator(model, device=device, input_message_bits=message_bits(model), stream=True)
    n = len(x)
    msgs, ops, outs, sums = 0.0, 0.0, [], None
    t0 = time.perf_counter()
    for start in range(0, n, chunk):
        held = encode(x[start : start + chunk], steps, encoding, 0)  # graded input: no randomness
        res = emu.run(held, record_layers=True)
        m, o = _count(model, res.layer_spikes, held)
        msgs, ops = msgs + m, ops + o
        outs.append(res.output_spikes)
        if record_sums:
            part = [r.astype(np.int64).sum(-1) for r in res.layer_spikes]
            sums = part if sums is None else [np.concatenate([a, b]) for a, b in zip(sums, part, strict=True)]
    seconds = time.perf_counter() - t0
    chain = min(chain, n)
    s_msgs = s_ops = None
    counted = 0
    if chain >= 2:
        chains = n // chain
        s_m, s_o = 0.0, 0.0
        per_batch = max(1, chunk // chain)
        for c0 in range(0, chains, per_batch):
            c1 = min(chains, c0 + per_batch)
            imgs = encode(x[c0 * chain : c1 * chain], steps, encoding, 0)  # (B * chain, *in, T)
            imgs = imgs.reshape(c1 - c0, chain, *imgs.shape[1:])
            held = np.moveaxis(imgs, 1, -2).reshape(c1 - c0, *imgs.shape[2:-1], chain * steps)
            res = emu.run(held, record_layers=True)
            m, o = _count(model, [r[..., steps:] for r in res.layer_spikes], held[..., steps:])
            s_m, s_o = s_m + m, s_o + o
        counted = chains * (chain - 1)
        s_msgs, s_ops = (s_m / counted).tolist(), (s_o / counted).tolist()
    return SdnnTraffic(
        steps,
        n,
        (msgs / n).tolist(),
        (ops / n).tolist(),
        counted,
        s_msgs,
        s_ops,
        np.concatenate(outs),
        sums,
        seconds,
    )


def _agreement(a_loihi: np.ndarray, a_float: np.ndarray) -> dict[str, Any]:
    d = np.abs(a_loihi - a_float)
    return {
        "correlation": _correlation(a_float, a_loihi),
        "rel_error": float(d.mean() / max(float(np.abs(a_float).mean()), 1e-12)),
        "max_error": float(d.max()),
    }


def build_sdnn_report(
    model: NetxModel, reference: Reference, x: np.ndarray, y: np.ndarray | None, timesteps: int, chain: int = 8
) -> dict[str, Any]:
    """The report of a sigma-delta file (module docstring): traffic against the ANN's MACs, activations against
    the float ANN of the SDNN checkpoint ``reference``."""
    from loihic.compiler.fileio import file_sha256
    from loihic.compiler.passes.quantize_sdnn import DELTA_META, MESSAGE_SHIFT, SCALE_UNIT
    from loihic.deploy import sdnn_thresholds as st
    from loihic.deploy.netx_run import sdnn_settle_index
    from loihic.deploy.verification.accuracy import sdnn_predict

    compiled = reference.compiled
    syn = compiled.synaptic()
    tr = sdnn_traffic(model, x, timesteps, chain=chain, record_sums=True)
    zs = st.ann_forward(compiled, x)
    n = len(x)
    floats = ([np.asarray(x, np.float64)] if model.has_input_neuron else []) + [np.maximum(z, 0) for z in zs[:-1]]
    scales = ([float(compiled.meta[DELTA_META]["act_scale"])] if model.has_input_neuron else []) + [
        float(lay.quant.act_scale) for lay in syn[:-1]
    ]
    names = (["input (Delta)"] if model.has_input_neuron else []) + [lay.name for lay in syn]
    layers = []
    for j, number in enumerate(model.neuron_layer_index):
        shape = list(model.input.shape) if model.has_input_neuron and j == 0 else None
        row: dict[str, Any] = {"layer": number, "name": names[j]}
        row["shape"] = shape or list(model.neuron_layers[j - (1 if model.has_input_neuron else 0)].shape)
        row["messages_per_inference"] = tr.messages[j]
        row["messages_per_image_stream"] = None if tr.stream_messages is None else tr.stream_messages[j]
        if j < len(floats):
            seen = tr.sent[j].reshape(n, -1) / (MESSAGE_SHIFT * scales[j])
            row["activation"] = _agreement(seen, floats[j].reshape(n, -1))
        else:  # the Sigma read-out: its running sum at the last step, in the ANN's output units
            out = tr.output[..., -1].reshape(n, -1) / (SCALE_UNIT * syn[-1].quant.act_scale)
            row["readout"] = _agreement(out, zs[-1].reshape(n, -1))
            row["note"] = "the read-out's messages go to the output sink, not over synapses"
        layers.append(row)
    for k, lay in enumerate(syn):  # weights, on the synaptic layer's row (its neurons)
        q = lay.quant
        w = np.asarray(lay.weight, np.float64) * q.weight_scale
        row = layers[k + (1 if model.has_input_neuron else 0)]
        row["weights"] = {
            "scale": float(q.weight_scale),
            "sqnr_db": float(q.sqnr_db),
            "clipped_share": float(((w > schema.WEIGHT_MAX) | (w < schema.WEIGHT_MIN)).mean()),
            "histogram_float": np.histogram(w, bins=60)[0].tolist(),
        }
    pred_f = zs[-1].reshape(n, -1).argmax(1)
    pred_l = sdnn_predict(tr.output)
    res: dict[str, Any] = {
        "net": model.path,
        "sigma_delta": True,
        "reference": reference.path,
        "reference_kind": reference.kind,
        "reference_sha256_recorded": model.meta.get("source_sha256"),
        "reference_sha256": file_sha256(reference.path),
        "samples": n,
        "timesteps": timesteps,
        "encoding": str(model.meta.get("encoding", "direct")),  # graded: round(255 x) held, no randomness
        "stream": True,
        "settle_index": sdnn_settle_index(model),
        "stream_chain": min(chain, n),
        "stream_images": tr.stream_images,
        "prediction_agreement": float((pred_f == pred_l).mean()),
        "layers": layers,
    }
    if y is not None:
        res["accuracy_float"] = float((pred_f == y).mean())
        res["accuracy_loihi"] = float((pred_l == y).mean())
        flat = tr.output.reshape(n, -1, tr.output.shape[-1])
        res["accuracy_vs_timesteps"] = [
            {"timesteps": t + 1, "float": res["accuracy_float"], "loihi": float((flat[..., t].argmax(1) == y).mean())}
            for t in range(timesteps)
        ]
    rows = layer_resources(model)
    for k, row in enumerate(rows):
        src = k  # the layer whose messages cross these synapses: the Delta (0) or the layer before
        if not model.has_input_neuron:
            src = k - 1
        row["input_messages_per_inference"] = tr.messages[src] if src >= 0 else None
        row["synops_per_inference"] = tr.synops[k]
        row["synops_per_image_stream"] = None if tr.stream_synops is None else tr.stream_synops[k]
        row["synops_per_ann_mac"] = tr.synops[k] / row["ann_macs"] if row["ann_macs"] else None
    macs = int(sum(r["ann_macs"] for r in rows))
    total_ops = float(sum(tr.synops))
    stream_ops = None if tr.stream_synops is None else float(sum(tr.stream_synops))
    res["resources"] = {
        "layers": rows,
        "neurons": int(sum(r["neurons"] for r in rows)),
        "synapses": int(sum(r["synapses"] for r in rows)),
        "synaptic_memory_bits": int(sum(r["synaptic_memory_bits"] for r in rows)),
        "loihi2_cores_estimate": int(sum(r["loihi2_cores_estimate"] for r in rows)),
        "messages_per_inference": float(sum(tr.messages[:-1])),  # the read-out's go to the sink
        "messages_per_image_stream": None if tr.stream_messages is None else float(sum(tr.stream_messages[:-1])),
        "synops_per_inference": total_ops,
        "synops_per_image_stream": stream_ops,
        "ann_macs_per_inference": macs,
        "synops_per_ann_mac": total_ops / macs,
        "synops_per_ann_mac_stream": None if stream_ops is None else stream_ops / macs,
        "energy_proxy_joules_per_inference": total_ops * ENERGY_PER_SYNOP_J,
        "estimates": "core counts and energy are estimates (see sources; the energy figure is for binary spikes on "
        "Loihi 1, applied to graded messages); messages and synops are measured on the emulator",
        "limits_source": LIMITS_SOURCE,
        "energy_source": ENERGY_SOURCE,
    }
    res["hardware_notes"] = hardware_notes(model, timesteps)
    return res


def plot_report(res: dict[str, Any], compiled_weights: list[tuple[str, np.ndarray, np.ndarray]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = res["layers"]
    sdnn = bool(res.get("sigma_delta"))
    names = [f"{r['layer']}: {r['name']}" for r in layers]
    if sdnn:
        corr = [(r.get("activation") or r.get("readout") or {}).get("correlation") or 0.0 for r in layers]
    else:
        corr = [r.get("spike_count_correlation", r.get("readout_v_correlation")) or 0.0 for r in layers]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    axes[0].barh(names, corr, color="tab:blue")
    axes[0].set_xlim(min(0.0, min(corr)), 1.0)
    axes[0].set_xlabel(
        "float ANN vs Loihi: activation correlation (read-out: output)"
        if sdnn
        else "float vs Loihi: spike-count correlation (read-out: v correlation)"
    )
    axes[0].invert_yaxis()
    if sdnn:  # synaptic operations against the ANN's multiply-accumulates, per synaptic layer
        rows = res["resources"]["layers"]
        pos = np.arange(len(rows))
        labels = [f"layer {r['layer']}" for r in rows]
        axes[1].barh(pos - 0.2, [r["ann_macs"] for r in rows], 0.4, label="ANN MACs", color="tab:gray")
        axes[1].barh(pos + 0.2, [r["synops_per_inference"] for r in rows], 0.4, label="synops", color="tab:red")
        axes[1].set_yticks(pos, labels)
        axes[1].invert_yaxis()
        axes[1].set_xscale("log")
        axes[1].legend(fontsize=7)
        axes[1].set_xlabel(f"per image, T={res['timesteps']} steps from a fresh network")
        axes[1].set_title(f"synops / ANN MACs: {res['resources']['synops_per_ann_mac']:.3g}", fontsize=9)
    spiking = [(n, r["rate_error"]) for n, r in zip(names, layers, strict=True) if "rate_error" in r]
    if spiking:
        axes[1].barh([n for n, _ in spiking], [e for _, e in spiking], color="tab:red")
        axes[1].invert_yaxis()
    if not sdnn:
        axes[1].set_xlabel("mean |firing-rate error| per neuron (spikes/step)")
    readout = [r for r in layers if "readout_v_rel_error" in r]
    if readout:
        axes[1].set_title(f"read-out v: relative error {readout[0]['readout_v_rel_error']:.3g}", fontsize=9)
    acc = ""
    if "accuracy_float" in res:
        acc = f", accuracy float {100 * res['accuracy_float']:.2f}% / Loihi {100 * res['accuracy_loihi']:.2f}%"
    fig.suptitle(f"{Path(res['net']).name}: prediction agreement {100 * res['prediction_agreement']:.1f}%{acc}")
    fig.tight_layout()
    fig.savefig(out / "parity.png", dpi=110)
    plt.close(fig)

    n = len(compiled_weights)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.2), squeeze=False)
    for ax, (name, w_float, w_int) in zip(axes[0], compiled_weights, strict=True):
        lo, hi = min(w_float.min(), schema.WEIGHT_MIN) - 8, max(w_float.max(), schema.WEIGHT_MAX) + 8
        bins = np.linspace(lo, hi, 80)
        ax.hist(w_float.ravel(), bins=bins, alpha=0.6, label="float x scale", color="tab:blue", log=True)
        ax.hist(w_int.ravel(), bins=bins, alpha=0.6, label="Loihi integers", color="tab:orange", log=True)
        for edge in (schema.WEIGHT_MIN, schema.WEIGHT_MAX):
            ax.axvline(edge, color="k", ls="--", lw=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("weight (integer units); dashed: [-256, 254]", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "weights.png", dpi=110)
    plt.close(fig)

    if "accuracy_vs_timesteps" in res:
        sw = res["accuracy_vs_timesteps"]
        fig, ax = plt.subplots(figsize=(5, 3.4))
        ax.plot(
            [s["timesteps"] for s in sw],
            [100 * s["float"] for s in sw],
            "o-",
            label="float ANN" if sdnn else "float SNN",
        )
        ax.plot([s["timesteps"] for s in sw], [100 * s["loihi"] for s in sw], "s--", label="Loihi (emulator)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("time steps T")
        ax.set_ylabel("accuracy %")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "accuracy_vs_T.png", dpi=110)
        plt.close(fig)


def _weight_scale(q: Any) -> float:
    """Integers per real weight unit: a LIF layer's ``scale``, a sigma-delta layer's ``weight_scale``."""
    return float(q.weight_scale if hasattr(q, "weight_scale") else q.scale)


def write_report(
    net_path: str,
    reference: str,
    x: np.ndarray,
    y: np.ndarray | None,
    timesteps: int,
    encoding: str,
    seed: int,
    out_dir: Path,
    model: NetxModel,
) -> dict[str, Any]:
    """Build the report, then write JSON and PNGs into ``out_dir`` (created; the caller checked --force)."""
    ref = load_reference(reference, model)
    sweep = sorted({max(1, timesteps // d) for d in (8, 4, 2, 1)})
    res = build_report(model, ref, x, y, timesteps, encoding, seed, sweep)
    weights = [
        (f"{k}: {lay.name}", lay.weight * _weight_scale(lay.quant), lay.quant.weight)
        for k, lay in enumerate(ref.compiled.synaptic())
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "report.json.part"
    tmp.write_text(json.dumps(res, indent=1, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))
    tmp.replace(out_dir / "report.json")
    plot_report(res, weights, out_dir)
    return res
