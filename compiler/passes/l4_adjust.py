"""L4-norm first-layer weight adjustment (Allred & Roy, sections 3-4, eqs. 6-9).

For every neuron j of the FIRST synaptic layer (conv: one output channel, its whole kernel as w_j):

- ``L4_j = (sum_i w_ji^4)^(1/4)``, ``mu_L4 = mean_j L4_j``;
- eq. 8, smoothed norm: ``L4s_j = (L4_j + r_s mu_L4) / (1 + r_s)``;
- eq. 6, new threshold: ``vth_j = mu_V_j + (L4s_j / mu_L4) (v_th0 - mu_V_j)``, with ``mu_V_j`` the
  mean pre-firing membrane potential profiled on one training batch during threshold balancing
  (``first_layer_mean_potential`` in the converted checkpoint) and ``v_th0`` the layer threshold;
- eq. 7: ``s_j = v_th0 / vth_j``; eq. 9, smoothed again: ``s'_j = (s_j + r_s) / (1 + r_s)``;
- ``w_j <- s'_j w_j`` (scaling the weights by the inverse threshold ratio keeps one threshold per
  layer, which Loihi needs), then the whole layer is re-scaled by one factor so that its mean
  absolute weight (over all elements: the paper does not say which average; this is the simplest
  reading) equals the original.

Readings we chose where the paper is silent (method-notes.md):

- a neuron with ``vth_j <= 0`` or ``mu_V_j >= v_th0`` (the formula no longer means "reach over the
  mean"), or with an all-zero weight vector, is left unadjusted (``s'_j = 1``) and listed;
- a bias (the paper's networks have none) is scaled with its neuron's weights, so that the
  adjustment stays exactly equivalent to a per-neuron threshold change;
- ``r_s = 0`` applies eqs. 6-7 unsmoothed; ``r_s = inf`` is the baseline, bit for bit.

The factors are recorded in ``Network.meta['l4']`` and from there in the netx metadata.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from loihic.compiler import ir
from loihic.compiler.config import CompileConfig
from loihic.compiler.errors import LoihicError

MEAN_POTENTIAL_KEY = "first_layer_mean_potential"


def l4_factors(weight: np.ndarray, mean_potential: np.ndarray, v_th0: float, rs: float) -> dict:
    """Per-neuron factors s'_j (eqs. 6-9) and the layer re-scale, without touching the network."""
    w = np.asarray(weight, np.float64).reshape(weight.shape[0], -1)
    mu_v = np.asarray(mean_potential, np.float64)
    if mu_v.shape != (w.shape[0],):
        raise LoihicError(f"L4: {mu_v.size} mean potentials for {w.shape[0]} first-layer neurons")
    l4 = np.sum(w**4, axis=1) ** 0.25
    mu_l4 = float(l4.mean())
    if mu_l4 == 0:
        raise LoihicError("L4: the first layer's weights are all zero")
    if math.isinf(rs):
        s_hat = np.ones(w.shape[0])
        skipped: list[int] = []
    else:
        l4s = (l4 + rs * mu_l4) / (1 + rs)  # eq. 8
        vth = mu_v + (l4s / mu_l4) * (v_th0 - mu_v)  # eq. 6
        valid = (vth > 0) & (mu_v < v_th0) & (l4 > 0)
        s = np.ones_like(vth)
        s[valid] = v_th0 / vth[valid]  # eq. 7
        s_hat = np.where(valid, (s + rs) / (1 + rs), 1.0)  # eq. 9
        skipped = [int(j) for j in np.flatnonzero(~valid)]
    adjusted = w * s_hat[:, None]
    before, after = float(np.abs(w).mean()), float(np.abs(adjusted).mean())
    rescale = 1.0 if after == before else before / after
    return {
        "rs": rs,
        "mu_L4": mu_l4,
        "L4": l4.tolist(),
        "s_hat": s_hat.tolist(),
        "rescale": rescale,
        "skipped_neurons": skipped,
    }


def l4_adjust(net: ir.Network, cfg: CompileConfig) -> ir.Network:
    if not cfg.l4:
        return net
    if cfg.l4_rs < 0 or math.isnan(cfg.l4_rs):
        raise LoihicError(f"--rs {cfg.l4_rs}: the smoothing ratio r_s must be >= 0 (inf = no adjustment)")
    idx = next(i for i, layer in enumerate(net.layers) if isinstance(layer, ir.SYNAPTIC))
    first = net.layers[idx]
    if net.sigma_delta:
        raise LoihicError(f"layer '{first.name}': L4 adjusts a spiking first layer; this is a sigma-delta network")
    if not first.neuron.spiking:
        raise LoihicError(
            f"layer '{first.name}': L4 adjusts a spiking first layer; this network's first synaptic "
            "layer is its read-out"
        )
    if net.meta.get("l4_in_checkpoint") is not None:
        raise LoihicError(f"layer '{first.name}': this checkpoint's weights already carry an L4 adjustment")
    if MEAN_POTENTIAL_KEY not in net.meta or net.meta[MEAN_POTENTIAL_KEY] is None:
        raise LoihicError(
            f"layer '{first.name}': L4 needs the first layer's mean pre-firing potentials, which this "
            "checkpoint lacks; convert it again with 'loihic convert'"
        )
    f = l4_factors(first.weight, np.asarray(net.meta[MEAN_POTENTIAL_KEY]), first.neuron.threshold, cfg.l4_rs)
    scale = np.asarray(f["s_hat"]) * f["rescale"]
    shape = (-1,) + (1,) * (first.weight.ndim - 1)
    new = dataclasses.replace(
        first, weight=first.weight * scale.reshape(shape), bias=None if first.bias is None else first.bias * scale
    )
    if math.isinf(cfg.l4_rs):
        new = first  # the baseline, bit for bit
    layers = (*net.layers[:idx], new, *net.layers[idx + 1 :])
    return net.replace(layers=layers, meta={**net.meta, "l4": {**f, "layer": first.name}})
