"""Quantize every synaptic layer to Loihi integers (weights, threshold, bias, decays).

Per layer one scale ``a`` (integers per real weight unit) is the largest that keeps all of:

- weights: ``a * max|w| <= 254`` (even integers in [-256, 254], spec 1.6);
- threshold: ``a * in_scale * threshold <= 2^17 - 1`` (17-bit vThMant);
- bias: ``|a * in_scale * bias| <= 4095`` (13-bit bias mantissa);
- current: worst-case ``|u| < 2^23`` within T steps (Lava wraps u: never let it);
- integrator readout: worst-case ``|v| < 2^23`` within T steps (Lava clips v, which would change
  the prediction).

A network whose meta names ``fixed_scales`` (a NIR graph written by ``loihic export-nir``, already in
integer units) keeps those scales, with input scale 1.

Then ``W = even_round(a * w)``, ``vThMant = round(a * in_scale * threshold)``, ``bias =
round(a * in_scale * bias)``.  Weights and threshold thus keep the ratio the float network had.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from loihic.compiler import ir, quant
from loihic.compiler.config import CompileConfig
from loihic.compiler.encoding import input_scale
from loihic.compiler.errors import QuantizationError
from loihic.compiler.netx import schema

_STATE_MAX = schema.UV_LIMIT - 1


def _scale(layer: ir.Dense | ir.Conv, in_scale: int, steps: int) -> tuple[float, str]:
    w, n = layer.weight, layer.neuron
    w_rec = getattr(layer, "weight_rec", None)
    limits: dict[str, float] = {}
    # a recurrent layer: weight and weight_rec share ONE scale (netx stacks them before choosing the
    # weight exponent: lava-dl netx/hdf5.py create_dense, the rec branch)
    wmax = float(max(np.abs(w).max(), 0.0 if w_rec is None else np.abs(w_rec).max()))
    if wmax == 0:
        raise QuantizationError(f"layer '{layer.name}': all weights are zero (netx cannot load that)")
    limits["weights"] = schema.WEIGHT_MAX / wmax
    if n.spiking:
        limits["threshold"] = schema.VTH_MANT_MAX / (in_scale * n.threshold)
    if layer.bias is not None and np.abs(layer.bias).max() > 0:
        limits["bias"] = schema.BIAS_MANT_MAX / (in_scale * float(np.abs(layer.bias).max()))
    i_dec, v_dec = quant.decay_int(n.current_decay), quant.decay_int(n.voltage_decay)
    u_per_scale, v_per_scale = quant.state_bounds(
        w, None if layer.bias is None else layer.bias * in_scale, in_scale, i_dec, v_dec, steps, n.spiking, w_rec
    )
    limits["current range"] = _STATE_MAX / u_per_scale
    if not n.spiking:
        limits["readout voltage range"] = _STATE_MAX / v_per_scale
    why = min(limits, key=limits.__getitem__)
    # Rounding can push the largest weight one even step past the bound; shave a hair off.
    return limits[why] * (1 - 1e-9), why


def _fit(
    layer: ir.Dense | ir.Conv, scale: float, in_scale: int, steps: int
) -> tuple[np.ndarray, float, np.ndarray | None]:
    """Quantize at ``scale``; rounding can lift the integer worst case above the float bound, so
    shrink the scale until the *integer* state bounds hold.  Returns (weight, scale, weight_rec)."""
    n = layer.neuron
    w_rec = getattr(layer, "weight_rec", None)
    i_dec, v_dec = quant.decay_int(n.current_decay), quant.decay_int(n.voltage_decay)
    for _ in range(100):
        w_int = quant.quantize_weights(layer.weight, scale)
        rec_int = None if w_rec is None else quant.quantize_weights(w_rec, scale)
        bias = None if layer.bias is None else np.rint(scale * in_scale * layer.bias)
        u_max, v_max = quant.state_bounds(w_int, bias, in_scale, i_dec, v_dec, steps, n.spiking, rec_int)
        excess = max(u_max, 0.0 if n.spiking else v_max) / _STATE_MAX
        if excess <= 1.0:
            return w_int, scale, rec_int
        scale /= max(excess, 1.0 + 1e-3)
    raise QuantizationError(f"layer '{layer.name}': no scale keeps its state within 24 bits over {steps} steps")


def _bias_column_residual(
    layer: ir.Dense | ir.Conv, col: dict | None, w_int: np.ndarray, scale: float, bias: np.ndarray | None
) -> np.ndarray | None:
    """A CubaLIF synapse bias carried by an always-on weight column (compiler/load/nir.py, ``meta
    ["bias_columns"]``: its column index and the current's decay ``a_s``) is rounded to an even weight; what
    the rounding lost, ``r = scale * w - w_int`` per step into u, is added to v as its steady state ``r / a_s``
    (13-bit bias resolution), so the deployed bias is right in steady state and carries the synapse's
    transient for all but the rounding residue."""
    if col is None:
        return bias
    c, a_s = int(col["column"]), float(col["a_s"])
    residual = scale * layer.weight[:, c] - w_int[:, c]
    add = np.rint(residual / a_s).astype(np.int64)
    return add if bias is None else bias + add


def _stacked(layer: ir.Dense | ir.Conv, w_int: np.ndarray, rec_int: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(float, integer) weights of a layer, a recurrent one's weight_rec beside its weight (one SQNR)."""
    if rec_int is None:
        return layer.weight, w_int
    return np.hstack([layer.weight, layer.weight_rec]), np.hstack([w_int, rec_int])


def quantize(net: ir.Network, cfg: CompileConfig) -> ir.Network:
    if net.sigma_delta:  # quantize_sdnn.py
        return net
    out: list[ir.Layer] = []
    first = True
    for layer in net.layers:
        if not isinstance(layer, ir.SYNAPTIC):
            out.append(layer)
            continue
        n = layer.neuron
        if n.reset == "soft" and not cfg.force_hard_reset:
            raise QuantizationError(
                f"layer '{layer.name}': soft reset (subtract threshold) cannot run on Loihi, whose LIF resets "
                "to zero; convert with --reset hard, or compile with --force-hard-reset to deploy it with "
                "hard reset (this changes its accuracy; measure it with 'loihic evaluate')"
            )
        in_scale = input_scale(net.encoding) if first else 1
        first = False
        fixed = net.meta.get("fixed_scales", {}).get(layer.name)
        if fixed is not None:  # a graph already in Loihi's integer units (compiler/netx/nir_export.py)
            in_scale, scale, why = 1, float(fixed), "fixed (integer units)"
        else:
            scale, why = _scale(layer, in_scale, net.timesteps)
        w_int, scale, rec_int = _fit(layer, scale, in_scale, net.timesteps)
        if not w_int.any():
            raise QuantizationError(
                f"layer '{layer.name}': all weights round to zero at scale {scale:.3g} (limited by {why})"
            )
        if n.spiking:
            vth = int(round(scale * in_scale * n.threshold))
            if vth < 1:
                raise QuantizationError(
                    f"layer '{layer.name}': threshold {n.threshold:.3g} rounds to 0 at "
                    f"scale {scale:.3g}; it is below half a weight step"
                )
        else:
            vth = schema.VTH_MANT_NEVER
        bias = None if layer.bias is None else np.rint(scale * in_scale * layer.bias).astype(np.int64)
        bias = _bias_column_residual(layer, net.meta.get("bias_columns", {}).get(layer.name), w_int, scale, bias)
        q = ir.Quant(
            weight=w_int,
            bias=bias,
            v_th_mant=vth,
            i_decay=quant.decay_int(n.current_decay),
            v_decay=quant.decay_int(n.voltage_decay),
            scale=scale,
            in_scale=in_scale,
            sqnr_db=quant.sqnr_db(*_stacked(layer, w_int, rec_int), scale),
            weight_rec=rec_int,
        )
        out.append(dataclasses.replace(layer, quant=q))
        meta_limits = dict(net.meta.get("scale_limited_by", {}))
        meta_limits[layer.name] = why
        net = net.replace(meta={**net.meta, "scale_limited_by": meta_limits})
    return net.replace(layers=tuple(out))
