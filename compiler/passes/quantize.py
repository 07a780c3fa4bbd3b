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

With calibration inputs (``CompileConfig.calib``, ``loihic compile --calib X.npy``; compiler/calib.py) each
layer is instead rounded row by row with error feedback against the cost of its rounding error near threshold
(``quant.gptq_round``, the v bias rounded last so that it takes the row's remaining mean error), and its scale
is chosen by that cost among ``vThMant = k`` for k from the largest the limits above allow up to three times
that (so ``a = k / threshold`` exactly; weights beyond 254 are clipped where the cost says that is cheaper);
candidates whose integer state bounds break the current/read-out range are skipped.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from loihic.compiler import calib, ir, quant
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


CALIB_RANGE = 3  # calibrated scale search: vThMant from the default's up to 3x it (weights beyond 254 clip)
CALIB_CANDIDATES = 36  # at most this many steps between the smallest and the largest candidate


def _calibrated(
    layer: ir.Dense, trace: dict, sigma: float, scale: float, steps: int
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, float, int, dict]:
    """(weight, weight_rec, bias, scale, vThMant, record) of a layer rounded against its calibration cost
    (module docstring, compiler/calib.py).  ``scale`` is the default scale (the largest the limits allow)."""
    n = layer.neuron
    h = calib.row_hessians(layer, trace, sigma)
    factors = [quant.gptq_factor(hi_) for hi_ in h]
    nff = layer.weight.shape[1]
    w = layer.weight if layer.weight_rec is None else np.hstack([layer.weight, layer.weight_rec])
    b = np.zeros(w.shape[0]) if layer.bias is None else layer.bias
    real = np.hstack([w, b[:, None]])
    k_steps = np.r_[np.full(w.shape[1], 2.0), 1.0]
    lo = np.r_[np.full(w.shape[1], schema.WEIGHT_MIN), schema.BIAS_MANT_MIN]
    hi = np.r_[np.full(w.shape[1], schema.WEIGHT_MAX), schema.BIAS_MANT_MAX]
    i_dec, v_dec = quant.decay_int(n.current_decay), quant.decay_int(n.voltage_decay)
    if n.spiking:
        k0 = max(1, int(np.floor(scale * n.threshold)))
        top = min(CALIB_RANGE * k0, schema.VTH_MANT_MAX)
        cands = [k / n.threshold for k in range(k0, top + 1, max(1, (top - k0) // CALIB_CANDIDATES))]
    else:
        cands = [scale]
    best: tuple | None = None
    for s in cands:
        q = np.stack([quant.gptq_round(s * real[i], factors[i], k_steps, lo, hi) for i in range(real.shape[0])])
        wq, bq = q[:, :-1], q[:, -1]
        rec = None if layer.weight_rec is None else wq[:, nff:]
        u_max, v_max = quant.state_bounds(wq[:, :nff], bq, 1, i_dec, v_dec, steps, n.spiking, rec)
        if max(u_max, 0.0 if n.spiking else v_max) > _STATE_MAX:
            continue
        e = q / s - real
        cost = float(np.einsum("ri,rij,rj->", e, h, e))
        if best is None or cost < best[0]:
            best = (cost, s, wq[:, :nff], rec, bq)
    if best is None:
        raise QuantizationError(f"layer '{layer.name}': no calibrated scale keeps its state within 24 bits")
    cost, s, wq, rec, bq = best
    vth = int(round(s * n.threshold)) if n.spiking else schema.VTH_MANT_NEVER
    record = {
        "v_th_mant": vth,
        "candidates": [round(c * n.threshold) for c in cands] if n.spiking else [],
        "cost": cost,
    }
    return wq, rec, bq, s, vth, record


def quantize(net: ir.Network, cfg: CompileConfig) -> ir.Network:
    if net.sigma_delta:  # quantize_sdnn.py
        return net
    traces = None
    if cfg.calib is not None:
        if net.meta.get("fixed_scales"):
            raise QuantizationError(
                "calibration: this graph is already in Loihi's integer units (written by loihic export-nir); its "
                "integers are kept as they are, so there is nothing to calibrate: compile it without --calib"
            )
        calib.check_calibratable(net)
        traces = calib.float_traces(net, calib.calibration_input(net, cfg.calib))
        net = net.replace(meta={**net.meta, "calibration": {"samples": len(cfg.calib), "sigma": cfg.calib_sigma}})
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
        calibrated = None
        if traces is not None:
            idx = len([lay for lay in out if isinstance(lay, ir.SYNAPTIC)])
            w_int, rec_int, cbias, scale, _, calibrated = _calibrated(
                layer, traces[idx], cfg.calib_sigma, scale, net.timesteps
            )
            why = "calibration"
        else:
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
        if calibrated is not None:  # the v bias was rounded with the row (it carries the bias column's residue)
            bias = cbias if (layer.bias is not None or cbias.any()) else None
            meta_cal = dict(net.meta["calibration"])
            meta_cal[layer.name] = calibrated
            net = net.replace(meta={**net.meta, "calibration": meta_cal})
        else:
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
