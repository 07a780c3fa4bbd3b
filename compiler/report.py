"""The per-layer compile report: what each layer became on Loihi and how much it lost."""

from __future__ import annotations

from typing import Any

import numpy as np

from loihic.compiler import ir
from loihic.compiler.netx import schema
from loihic.compiler.passes.check_ranges import layer_bounds


def layer_report(net: ir.Network) -> list[dict[str, Any]]:
    """One row per synaptic layer; ``index`` is the layer's number in the netx file (``layer/<index>``; layer 0
    is the input), the one layer numbering of every loihic output."""
    rows = []
    limited = net.meta.get("scale_limited_by", {})
    for index, layer in enumerate(net.layers, start=1):
        if not isinstance(layer, (ir.Dense, ir.Conv)):
            continue
        q = layer.quant
        if q is None:
            continue
        if isinstance(q, ir.SigmaDeltaQuant):
            rows.append(_sdnn_row(index, layer, q, limited.get(layer.name, "?")))
            continue
        u_max, v_max = layer_bounds(layer, net.timesteps)
        fan_in = int(np.prod(q.weight.shape[1:]))
        rec = getattr(layer, "weight_rec", None) is not None
        delay = getattr(layer, "delay", None)
        kind = "conv" if isinstance(layer, ir.Conv) else ("dense_rec" if rec else "dense")
        rows.append(
            {
                "index": index,
                "layer": layer.name,
                "type": kind,
                "fan_in": fan_in + (q.weight.shape[0] if rec else 0),  # a recurrent neuron also hears its layer
                "max_delay": None if delay is None else int(delay.max()),
                "scale": q.scale,
                "scale_limited_by": limited.get(layer.name, "?"),
                "weight_min": int(min(q.weight.min(), q.weight_rec.min() if rec else 0)),
                "weight_max": int(max(q.weight.max(), q.weight_rec.max() if rec else 0)),
                "sqnr_db": q.sqnr_db,
                "threshold": layer.neuron.threshold if layer.neuron.spiking else None,
                "vThMant": q.v_th_mant,
                "iDecay": q.i_decay,
                "vDecay": q.v_decay,
                "bias": None if q.bias is None else [int(q.bias.min()), int(q.bias.max())],
                "worst_abs_u": u_max,
                "worst_abs_v": v_max,
                # inhibited spiking neurons may clip at -2^23 (benign, emulated); readouts never (checked)
                "v_may_clip_low": bool(layer.neuron.spiking and v_max > schema.UV_LIMIT - 1),
            }
        )
    return rows


def _sdnn_row(index: int, layer: ir.Dense | ir.Conv, q: ir.SigmaDeltaQuant, why: str) -> dict[str, Any]:
    """A sigma-delta layer (compiler/passes/quantize_sdnn.py): its scales and what its threshold costs, in
    activation units: the residue a neuron may hold back (< vThMant / S) and the floor of each message
    (< 1 / (64 S) per message sent, never carried over)."""
    s = q.act_scale
    bmax = 0.0 if layer.bias is None else float(np.abs(layer.bias).max())
    sigma = layer.neuron.output == "sigma"
    return {
        "index": index,
        "layer": layer.name,
        "type": "dense" if isinstance(layer, ir.Dense) else "conv",
        "neuron": layer.neuron.output,
        "fan_in": int(np.prod(q.weight.shape[1:])),
        "scale": q.weight_scale,  # integers per real weight unit, as for LIF rows
        "act_scale": s,
        "scale_limited_by": why,
        "weight_min": int(q.weight.min()),
        "weight_max": int(q.weight.max()),
        "sqnr_db": q.sqnr_db,
        "threshold": None if sigma else layer.neuron.threshold,
        "vThMant": q.v_th_mant,
        "bias": None if q.bias is None else [int(q.bias.min()), int(q.bias.max())],
        "act_bound": q.act_bound,
        "threshold_error": None if sigma else q.v_th_mant / s,
        "floor_error_per_message": None if sigma else 1.0 / (64.0 * s),
        "worst_abs_sigma": 4096.0 * s * (q.act_bound + bmax),
    }


def format_report(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'#':>3} {'layer':<12}{'type':<6}{'fan-in':>7}{'scale':>10}{'limited by':>22}{'SQNR dB':>9}{'vThMant':>9}"
        f"{'iDecay':>7}{'vDecay':>7}{'max|u|':>10}"
    )
    if rows and "act_scale" in rows[0]:
        return _format_sdnn(rows)
    lines = [head, "-" * len(head)]
    for r in rows:
        vth = "never" if r["threshold"] is None else str(r["vThMant"])
        lines.append(
            f"{r['index']:>3} {r['layer']:<12}{r['type']:<6}{r['fan_in']:>7}{r['scale']:>10.4g}"
            f"{r['scale_limited_by']:>22}"
            f"{r['sqnr_db']:>9.1f}{vth:>9}{r['iDecay']:>7}{r['vDecay']:>7}{r['worst_abs_u']:>10.3g}"
        )
    return "\n".join(lines)


def _format_sdnn(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'#':>3} {'layer':<12}{'neuron':<12}{'fan-in':>7}{'S (1/act)':>11}{'limited by':>22}{'SQNR dB':>9}"
        f"{'vThMant':>9}{'th. err':>9}{'floor/msg':>11}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        sigma = r["threshold"] is None
        th = "-" if sigma else f"{r['threshold_error']:.3g}"
        fl = "-" if sigma else f"{r['floor_error_per_message']:.2g}"
        lines.append(
            f"{r['index']:>3} {r['layer']:<12}{r['neuron']:<12}{r['fan_in']:>7}{r['act_scale']:>11.4g}"
            f"{r['scale_limited_by']:>22}{r['sqnr_db']:>9.1f}{r['vThMant']:>9}{th:>9}{fl:>11}"
        )
    return "\n".join(lines)
