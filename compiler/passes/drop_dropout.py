"""Remove dropout: the identity at inference (a training-only layer, kept in the IR for training's sake)."""

from __future__ import annotations

from loihic.compiler import ir
from loihic.compiler.config import CompileConfig


def drop_dropout(net: ir.Network, cfg: CompileConfig) -> ir.Network:
    if not any(isinstance(layer, ir.Dropout) for layer in net.layers):
        return net
    return net.replace(layers=tuple(layer for layer in net.layers if not isinstance(layer, ir.Dropout)))
