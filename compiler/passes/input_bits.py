"""Set the graded input's bit width of a direct-encoded network: chosen automatically by default,
or forced (``loihic compile --input-bits B``).

Lava adds ``64 * sum_i W_i x_i`` to the 24-bit current u of a first-layer neuron every step, and the
quantizer keeps the worst case of that sum below 2^23 (``quantize.py``): with x up to 2^B - 1, every input
bit costs one bit of first-layer weight resolution.  A wide first layer fed 8-bit images can end up with
a weight step far above its typical weight (Fashion-MNIST AP2-512FC: 784 inputs after the pooling fold,
scale 17, weight SQNR 1 dB).  Deploying B < 8 input bits re-encodes the input as ``round(x (2^B - 1))``
(encoding ``direct<B>``, compiler/encoding.py) and lets the quantizer use the bits it frees.  The float
network with the same B-bit input is the reference: ``with_input_bits`` in training/checkpoint.py.

**Automatic choice** (``input_bits="auto"``, the default).  For each B in 1..8 the first layer (after the
BatchNorm and pooling folds, which is why this pass runs after them) is given the scale ``a_B`` the
quantizer would choose with input scale ``2^B - 1``, and its current's total quantisation error is
estimated as the sum of two independent uniform rounding errors per neuron o:

    E_B = sum_o [ sum_i W_oi^2 * dx_B^2  +  m2 * fan_in * dw_B^2 ] / 12,
    dx_B = 1 / (2^B - 1)   (input step),   dw_B = 2 / a_B   (weight step: even integers),

with ``m2 = E[x^2] = 1/3`` (inputs uniform on [0, 1]: the compiler sees no data, so this is a proxy).  The B
with the smallest ``E_B`` is deployed (ties: more bits); every ``E_B`` is recorded in the IR's meta
(``input_bits_error``) and the netx metadata.  Poisson (binary) inputs have no width to choose.  A network
whose encoding already names a width (``direct<B>``, B < 8: trained with B-bit input by the noise method's
deployment stage, training/noise/deploy.py) keeps it under "auto": the width it was trained for is deployed.
"""

from __future__ import annotations

import numpy as np

from loihic.compiler import ir
from loihic.compiler.config import CompileConfig
from loihic.compiler.encoding import DIRECT_MESSAGE_BITS, direct_bits, direct_encoding
from loihic.compiler.errors import InputError

INPUT_M2 = 1.0 / 3.0  # E[x^2] of inputs uniform on [0, 1]: the proxy's input power


def first_layer_error(layer: ir.Dense | ir.Conv, bits: int, steps: int) -> float:
    """``E_B`` of the module docstring for ``layer`` fed B-bit input."""
    from loihic.compiler.passes.quantize import _scale

    scale, _ = _scale(layer, (1 << bits) - 1, steps)
    w = np.asarray(layer.weight, np.float64).reshape(layer.weight.shape[0], -1)
    dx, dw = 1.0 / ((1 << bits) - 1), 2.0 / scale
    return float(((w**2).sum() * dx**2 + INPUT_M2 * w.size * dw**2) / 12.0)


def input_bits(net: ir.Network, cfg: CompileConfig) -> ir.Network:
    choice = cfg.input_bits
    if net.sigma_delta and choice == "auto":  # a Delta input takes 8-bit graded values (quantize_sdnn.py)
        return net
    if choice is None or (choice == "auto" and direct_bits(net.encoding) == 0):
        return net
    if direct_bits(net.encoding) == 0:
        direct_encoding(choice)  # validates B first
        raise InputError(
            f"--input-bits {choice}: applies to direct-encoded (graded input) networks; this one is '{net.encoding}'"
        )
    meta = dict(net.meta)
    if choice == "auto" and direct_bits(net.encoding) < DIRECT_MESSAGE_BITS:
        # trained (or evaluated) with B-bit input already (``direct<B>``: training/noise/deploy.py,
        # training/checkpoint.py ``with_input_bits``): deploy what was trained
        return net.replace(meta={**meta, "input_bits": direct_bits(net.encoding), "input_bits_from": "network"})
    if choice == "auto":
        first = net.synaptic()[0]
        errors = {b: first_layer_error(first, b, net.timesteps) for b in range(1, DIRECT_MESSAGE_BITS + 1)}
        choice = min(sorted(errors, reverse=True), key=errors.__getitem__)
        meta["input_bits_error"] = {str(b): e for b, e in errors.items()}
        meta["input_bits_auto"] = True
    encoding = direct_encoding(choice)  # validates B
    return net.replace(encoding=encoding, meta={**meta, "input_bits": int(choice)})
