"""Lower average pooling by folding it into the next synaptic layer.

netx has no working pooling layer (``pool``/``average`` raise NotImplementedError, spec 1.2).  Two
ways remain: (a) a grouped conv with its own spiking layer, or (b) folding.  We fold: average
pooling is linear, so ``conv(avgpool(s))`` is one convolution of the *spikes* with the composite
kernel ``W' = W (*) P`` (the transposed convolution of the next layer's kernel with the pooling
kernel ``1/k^2``, stride ``s_c * s_p``, padding ``p_c * s_p``).  Unlike (a) it is exact (no extra
spiking non-linearity, no extra layer of pipeline delay, no extra neurons), at the price of a larger
kernel and fan-in.  A dense layer after flatten is treated as a conv whose kernel covers the map.
Every fold is checked numerically against pool-then-layer on a random probe; a mismatch (e.g. a
border case) is refused rather than deployed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from loihic.compiler import ir
from loihic.compiler.config import CompileConfig
from loihic.compiler.errors import UnsupportedLayerError


def _compose(kernel: np.ndarray, pool: ir.AvgPool) -> np.ndarray:
    o, i, kh, kw = kernel.shape
    p = torch.full((1, 1, *pool.kernel), 1.0 / (pool.kernel[0] * pool.kernel[1]), dtype=torch.float64)
    k = torch.tensor(kernel, dtype=torch.float64).reshape(o * i, 1, kh, kw)
    out = F.conv_transpose2d(k, p, stride=pool.stride)
    return out.reshape(o, i, *out.shape[2:]).numpy()


def _fold_conv(pool: ir.AvgPool, conv: ir.Conv) -> ir.Conv:
    if conv.dilation != (1, 1):
        raise UnsupportedLayerError(f"layer '{conv.name}': dilated conv after average pooling is not supported")
    return dataclasses.replace(
        conv,
        weight=_compose(conv.weight, pool),
        stride=(conv.stride[0] * pool.stride[0], conv.stride[1] * pool.stride[1]),
        padding=(conv.padding[0] * pool.stride[0], conv.padding[1] * pool.stride[1]),
    )


def _fold_dense(pool: ir.AvgPool, dense: ir.Dense, pooled: tuple[int, ...], before: tuple[int, ...]) -> ir.Dense:
    c, hp, wp = pooled
    kernel = _compose(dense.weight.reshape(-1, c, hp, wp), pool)
    full = np.zeros((kernel.shape[0], c, before[1], before[2]))
    h, w = min(kernel.shape[2], before[1]), min(kernel.shape[3], before[2])
    full[:, :, :h, :w] = kernel[:, :, :h, :w]
    return dataclasses.replace(dense, weight=full.reshape(kernel.shape[0], -1))


def _apply(layers: list[ir.Layer], x: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        if isinstance(layer, ir.AvgPool):
            x = F.avg_pool2d(x, layer.kernel, layer.stride)
        elif isinstance(layer, ir.Flatten):
            x = x.flatten(1)
        elif isinstance(layer, ir.Conv):
            x = F.conv2d(
                x,
                torch.tensor(layer.weight),
                stride=layer.stride,
                padding=layer.padding,
                dilation=layer.dilation,
                groups=layer.groups,
            )
        else:
            x = x @ torch.tensor(layer.weight).T
    return x


def lower_avgpool(net: ir.Network, cfg: CompileConfig) -> ir.Network:
    shapes = [net.input.shape, *ir.infer_shapes(net)]
    layers = list(net.layers)
    out: list[ir.Layer] = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        if not isinstance(layer, ir.AvgPool):
            out.append(layer)
            i += 1
            continue
        j = i + 1
        between = []
        while j < len(layers) and isinstance(layers[j], ir.Flatten):
            between.append(layers[j])
            j += 1
        nxt = layers[j] if j < len(layers) else None
        if isinstance(nxt, ir.Conv) and not between:
            folded: ir.Layer = _fold_conv(layer, nxt)
        elif isinstance(nxt, ir.Dense) and between:
            folded = _fold_dense(layer, nxt, shapes[i + 1], shapes[i])
        else:
            what = type(nxt).__name__ if nxt is not None else "the end of the network"
            raise UnsupportedLayerError(
                f"layer '{layer.name}': average pooling must be followed by a conv "
                f"or by flatten + dense to be folded, not by {what}"
            )
        probe = torch.rand((2, *shapes[i]), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        want = _apply([layer, *between, nxt], probe)
        got = _apply([*between, folded], probe)
        if want.shape != got.shape or not torch.allclose(want, got, rtol=1e-9, atol=1e-9):
            raise UnsupportedLayerError(
                f"layer '{layer.name}': folding into '{nxt.name}' is not exact for "
                f"input {shapes[i]} (pool {layer.kernel}/{layer.stride})"
            )
        out.extend([*between, folded])
        i = j + 1
    return net.replace(layers=tuple(out))
