"""Fold inference BatchNorm into the synaptic layer before it.

``BN(I) = gamma * (I - mean) / sqrt(var + eps) + beta`` with ``I = W x + b`` is again affine:
``W' = W * g``, ``b' = (b - mean) * g + beta`` with ``g = gamma / sqrt(var + eps)`` per output.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from loihic.compiler import ir
from loihic.compiler.config import CompileConfig
from loihic.compiler.errors import UnsupportedLayerError


def fold_batchnorm(net: ir.Network, cfg: CompileConfig) -> ir.Network:
    out: list[ir.Layer] = []
    for layer in net.layers:
        if not isinstance(layer, ir.BatchNorm):
            out.append(layer)
            continue
        prev = out[-1] if out else None
        if not isinstance(prev, ir.SYNAPTIC):
            raise UnsupportedLayerError(
                f"layer '{layer.name}': BatchNorm must directly follow a dense or conv layer to be folded"
            )
        g = layer.gamma / np.sqrt(layer.var + layer.eps)
        if g.shape[0] != prev.weight.shape[0]:
            raise UnsupportedLayerError(
                f"layer '{layer.name}': {g.shape[0]} features, '{prev.name}' has {prev.weight.shape[0]} outputs"
            )
        bias = np.zeros(g.shape[0]) if prev.bias is None else prev.bias
        w = prev.weight * g.reshape(-1, *([1] * (prev.weight.ndim - 1)))
        out[-1] = dataclasses.replace(prev, weight=w, bias=(bias - layer.mean) * g + layer.beta)
    return net.replace(layers=tuple(out), meta={**net.meta, "batchnorm_folded": True})
