"""Refuse networks whose Loihi state could leave Lava's 24-bit range within T steps.

Lava wraps u at +-2^23 (a sign flip) and clips v to +-(2^23 - 1) (spec 2.3).  A wrap of u anywhere,
or a clip of an integrator readout's v, changes results, so either is an error naming the layer and
the margin.  For spiking layers the excited side of v fires and resets before it could clip; the
inhibited side may clip at -2^23 under sustained inhibition, which the emulator reproduces exactly
and which only delays recovery: that is reported (``report.py``), not refused.
"""

from __future__ import annotations

from loihic.compiler import ir, quant
from loihic.compiler.config import CompileConfig
from loihic.compiler.errors import QuantizationError
from loihic.compiler.netx import schema
from loihic.compiler.passes.quantize_sdnn import check_sdnn

_MAX = schema.UV_LIMIT - 1


def layer_bounds(layer: ir.Dense | ir.Conv, steps: int) -> tuple[float, float]:
    q = layer.quant
    if q is None:
        raise QuantizationError(f"layer '{layer.name}': range check needs a quantized layer")
    return quant.state_bounds(
        q.weight, q.bias, q.in_scale, q.i_decay, q.v_decay, steps, layer.neuron.spiking, q.weight_rec
    )


def check_ranges(net: ir.Network, cfg: CompileConfig) -> ir.Network:
    for layer in net.synaptic():
        if isinstance(layer.neuron, ir.SigmaDelta):
            check_sdnn(layer)
            continue
        q = layer.quant
        if q is None:
            raise QuantizationError(f"layer '{layer.name}': range check needs a quantized layer")
        for key, w in (("weights", q.weight), ("recurrent weights", q.weight_rec)):
            if w is not None and (w.min() < schema.WEIGHT_MIN or w.max() > schema.WEIGHT_MAX):
                raise QuantizationError(
                    f"layer '{layer.name}': {key} in [{w.min()}, {w.max()}] "
                    f"exceed [{schema.WEIGHT_MIN}, {schema.WEIGHT_MAX}]"
                )
        if getattr(layer, "weight_rec", None) is not None and q.weight_rec is None:
            raise QuantizationError(f"layer '{layer.name}': recurrent, but its weight_rec is not quantized")
        if getattr(layer, "weight_rec", None) is not None and getattr(layer, "delay", None) is not None:
            raise QuantizationError(f"layer '{layer.name}': {schema.REC_DELAY_REFUSED}")
        if layer.neuron.spiking and not 1 <= q.v_th_mant <= schema.VTH_MANT_MAX:
            raise QuantizationError(f"layer '{layer.name}': vThMant {q.v_th_mant} outside [1, {schema.VTH_MANT_MAX}]")
        u_max, v_max = layer_bounds(layer, net.timesteps)
        if u_max > _MAX:
            raise QuantizationError(
                f"layer '{layer.name}': worst-case |u| {u_max:.4g} exceeds 2^23-1 by "
                f"{100 * (u_max / _MAX - 1):.1f}% within {net.timesteps} steps (Lava wraps u)"
            )
        if not layer.neuron.spiking and v_max > _MAX:
            raise QuantizationError(
                f"layer '{layer.name}': worst-case readout |v| {v_max:.4g} exceeds 2^23-1 by "
                f"{100 * (v_max / _MAX - 1):.1f}% within {net.timesteps} steps (Lava clips v)"
            )
    return net
