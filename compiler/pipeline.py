"""The compiler: one ordered tuple of pure passes ``(Network, CompileConfig) -> Network``."""

from __future__ import annotations

from collections.abc import Callable

from loihic.compiler import ir
from loihic.compiler.config import CompileConfig
from loihic.compiler.passes.check_ranges import check_ranges
from loihic.compiler.passes.drop_dropout import drop_dropout
from loihic.compiler.passes.fold_batchnorm import fold_batchnorm
from loihic.compiler.passes.input_bits import input_bits
from loihic.compiler.passes.l4_adjust import l4_adjust
from loihic.compiler.passes.lower_avgpool import lower_avgpool
from loihic.compiler.passes.quantize import quantize
from loihic.compiler.passes.quantize_sdnn import quantize_sdnn

Pass = Callable[[ir.Network, CompileConfig], ir.Network]

PASSES: tuple[Pass, ...] = (
    drop_dropout,  # dropout -> nothing (the identity at inference)
    fold_batchnorm,  # BatchNorm -> weights and bias of the layer before it
    lower_avgpool,  # average pooling -> composite kernel of the next synaptic layer
    l4_adjust,  # Allred & Roy first-layer L4-norm adjustment (no-op unless cfg.l4)
    input_bits,  # graded input width of a direct-encoded network: auto (on the folded first layer) or forced
    quantize,  # float -> Loihi integers, one scale per layer (LIF networks)
    quantize_sdnn,  # sigma-delta networks: one activation scale per layer, from calibration or the weights
    check_ranges,  # refuse any reachable 24-bit overflow
)


def compile_network(net: ir.Network, cfg: CompileConfig | None = None) -> ir.Network:
    cfg = cfg or CompileConfig()
    for p in PASSES:
        net = p(net, cfg)
    return net
