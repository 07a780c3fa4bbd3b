"""Calibrated weight rounding: what a layer's rounding error costs, measured on the float network's own run.

A spiking network's output changes where a neuron's spike appears or vanishes, i.e. where its membrane v is
near its threshold.  A row's rounding error ``e`` (real units, one entry per input, and one for the v bias)
moves v by ``e . x~_i(t)``, where ``x~_i`` is the input seen through neuron i's own dynamics (compiler/ir.py's
CUBA neuron: the current filter ``u[t] = (1 - a_s) u[t-1] + x[t]``, then the voltage filter
``y[t] = (1 - a_m) y[t-1] (1 - z_i[t-1]) + u[t]``, restarted where the float neuron spiked; the v bias enters
the voltage filter directly).  The cost of a row's error is its expected squared v error near threshold:

    E_i(e) = e^T H_i e,   H_i = mean_t  w_i(t) x~_i(t) x~_i(t)^T,
    w_i(t) = exp(-((v_i(t) - theta) / (sigma theta))^2 / 2)

on calibration inputs run through the float IR (``v_i(t)`` before the reset).  ``H_i`` is the Hessian that
GPTQ / OPTQ (Frantar et al., ICLR 2023, eq. 1-2 and Alg. 1) minimises per row, here with the neuron's filter,
its resets and a near-threshold weight, so that a silent neuron far below threshold (whose errors change no
spike) costs nothing and an input that never fires carries no error.  compiler/quant.py's ``gptq_round``
rounds one row against it; compiler/passes/quantize.py chooses each layer's scale by the same cost.

Only chains of Dense layers (recurrent allowed, no delays) with spike input are calibrated; the rest are refused
by name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from loihic.compiler import ir
from loihic.compiler.errors import InputError, QuantizationError


def calibration_input(net: ir.Network, x: Any) -> np.ndarray:
    """``x`` (N, n_in, T) spike trains in the graph's own input shape -> float64, with the network's always-on
    input channels (compiler/load/nir.py) appended.  One line naming what is wrong otherwise."""
    a = np.asarray(x)
    k = int(net.meta.get("always_on_inputs", 0))
    n_in = int(net.input.shape[0]) - k if len(net.input.shape) == 1 else None
    if a.ndim != 3 or n_in is None or a.shape[1] != n_in or a.shape[0] < 1 or a.shape[2] < 1:
        want = f"(N, {n_in}, T)" if n_in is not None else "a 1-d input"
        raise InputError(f"calibration input of shape {a.shape}: expected spike trains {want}")
    if a.dtype.kind not in "biuf" or not np.isin(a, (0, 1)).all():
        raise InputError("calibration input: expected spikes (0 or 1 at every step)")
    a = a.astype(np.float64)
    return np.concatenate([a, np.ones((a.shape[0], k, a.shape[2]))], 1) if k else a


def check_calibratable(net: ir.Network) -> None:
    """Refuse, naming the layer, what calibration does not cover: graded input, conv, pooling, delays."""
    if net.encoding != "poisson":
        raise QuantizationError(f"calibration: encoding '{net.encoding}' (graded input) is not calibrated; spikes only")
    for lay in net.layers:
        if not isinstance(lay, ir.Dense):
            raise QuantizationError(f"calibration: layer '{lay.name}' ({type(lay).__name__}): only Dense chains")
        if lay.delay is not None and np.any(lay.delay):
            raise QuantizationError(f"calibration: layer '{lay.name}' has synaptic delays (not calibrated)")


def float_traces(net: ir.Network, x: np.ndarray) -> list[dict[str, np.ndarray]]:
    """The float IR (compiler/ir.py's equations, float64) on ``x`` (N, n_in, T, always-on channels included):
    per synaptic layer its input ``x`` (N, n_in [+ n_rec], T: feed-forward spikes, then the layer's own spikes of
    step t - 1 for ``weight_rec``), ``v`` before the reset and the spikes ``z`` (N, n, T)."""
    check_calibratable(net)
    s_in, out = x, []
    for lay in net.synaptic():
        batch, _, steps = s_in.shape
        n, nr = lay.neuron, lay.weight.shape[0]
        u, v, z = np.zeros((batch, nr)), np.zeros((batch, nr)), np.zeros((batch, nr))
        bias = 0.0 if lay.bias is None else lay.bias
        vs, zs, rec = np.zeros((batch, nr, steps)), np.zeros((batch, nr, steps)), np.zeros((batch, nr, steps))
        for t in range(steps):
            syn = s_in[..., t] @ lay.weight.T
            if lay.weight_rec is not None:
                rec[..., t] = z
                syn = syn + z @ lay.weight_rec.T
            u = (1 - n.current_decay) * u + syn
            v = (1 - n.voltage_decay) * v + u + bias
            vs[..., t] = v
            z = (v > n.threshold).astype(np.float64) if n.spiking else np.zeros_like(v)
            v = np.where(z > 0, 0.0, v)
            zs[..., t] = z
        xin = np.concatenate([s_in, rec], 1) if lay.weight_rec is not None else s_in
        out.append({"x": xin, "v": vs, "z": zs})
        s_in = zs
    return out


def row_hessians(layer: ir.Dense, trace: dict[str, np.ndarray], sigma: float) -> np.ndarray:
    """``H_i`` of the module docstring for every row i of ``layer``: (n_out, n_in + 1, n_in + 1), the last
    index the v bias.  A non-spiking layer (a read-out: no threshold, no reset) weights every step alike."""
    x, v, z = trace["x"], trace["v"], trace["z"]
    n = layer.neuron
    batch, n_in, steps = x.shape
    n_out = v.shape[1]
    h = np.zeros((n_out, n_in + 1, n_in + 1))
    u = np.zeros((batch, n_in))
    y = np.zeros((n_out, batch, n_in + 1))
    for t in range(steps):
        u = (1 - n.current_decay) * u + x[..., t]
        keep = 1.0 - (z[..., t - 1].T[..., None] if t > 0 else 0.0)  # (n_out, batch, 1): the float neuron's reset
        y = (1 - n.voltage_decay) * y * keep
        y[..., :n_in] += u
        y[..., n_in] += 1.0
        if n.spiking:
            w = np.exp(-0.5 * ((v[..., t].T - n.threshold) / (sigma * n.threshold)) ** 2)  # (n_out, batch)
        else:
            w = np.ones((n_out, batch))
        h += np.matmul((y * w[..., None]).transpose(0, 2, 1), y)
    return h / (batch * steps)
