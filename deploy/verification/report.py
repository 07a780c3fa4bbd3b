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
    from loihic.compiler.load.checkpoint import network_from_checkpoint
    from loihic.training.checkpoint import load_checkpoint
    from loihic.training.snn import SNNModel

    ckpt = load_checkpoint(source, "snn")
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


def plot_report(res: dict[str, Any], compiled_weights: list[tuple[str, np.ndarray, np.ndarray]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = res["layers"]
    names = [f"{r['layer']}: {r['name']}" for r in layers]
    corr = [r.get("spike_count_correlation", r.get("readout_v_correlation")) or 0.0 for r in layers]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    axes[0].barh(names, corr, color="tab:blue")
    axes[0].set_xlim(min(0.0, min(corr)), 1.0)
    axes[0].set_xlabel("float vs Loihi: spike-count correlation (read-out: v correlation)")
    axes[0].invert_yaxis()
    spiking = [(n, r["rate_error"]) for n, r in zip(names, layers, strict=True) if "rate_error" in r]
    if spiking:
        axes[1].barh([n for n, _ in spiking], [e for _, e in spiking], color="tab:red")
        axes[1].invert_yaxis()
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
        ax.plot([s["timesteps"] for s in sw], [100 * s["float"] for s in sw], "o-", label="float SNN")
        ax.plot([s["timesteps"] for s in sw], [100 * s["loihi"] for s in sw], "s--", label="Loihi (emulator)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("time steps T")
        ax.set_ylabel("accuracy %")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "accuracy_vs_T.png", dpi=110)
        plt.close(fig)


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
        (f"{k}: {lay.name}", lay.weight * lay.quant.scale, lay.quant.weight)
        for k, lay in enumerate(ref.compiled.synaptic())
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "report.json.part"
    tmp.write_text(json.dumps(res, indent=1, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))
    tmp.replace(out_dir / "report.json")
    plot_report(res, weights, out_dir)
    return res
