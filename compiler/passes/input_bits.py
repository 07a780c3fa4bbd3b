"""Set the graded input's bit width of a direct-encoded network (``loihic compile --input-bits B``).

Lava adds ``64 * sum_i W_i x_i`` to the 24-bit current u of a first-layer neuron every step, and the
quantizer keeps the worst case of that sum below 2^23 (``quantize.py``): with x up to 2^B - 1, every input
bit costs one bit of first-layer weight resolution.  A wide first layer fed 8-bit images can end up with
a weight step far above its typical weight (Fashion-MNIST AP2-512FC: 784 inputs after the pooling fold,
scale 17, weight SQNR 1 dB).  Deploying B < 8 input bits re-encodes the input as ``round(x (2^B - 1))``
(encoding ``direct<B>``, training/encoding.py) and lets the quantizer use the bits it frees.  The float
network with the same B-bit input is the reference: ``with_input_bits`` in training/checkpoint.py.
"""

from __future__ import annotations

from loihic.compiler import ir
from loihic.compiler.config import CompileConfig
from loihic.compiler.errors import InputError
from loihic.training.encoding import direct_bits, direct_encoding


def input_bits(net: ir.Network, cfg: CompileConfig) -> ir.Network:
    if cfg.input_bits is None:
        return net
    encoding = direct_encoding(cfg.input_bits)  # validates B
    if direct_bits(net.encoding) == 0:
        raise InputError(
            f"--input-bits {cfg.input_bits}: applies to direct-encoded (graded input) networks; this one is "
            f"'{net.encoding}'"
        )
    return net.replace(encoding=encoding, meta={**net.meta, "input_bits": int(cfg.input_bits)})
