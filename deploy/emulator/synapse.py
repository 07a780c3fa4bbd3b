"""Lava's synaptic integer rules, written once: what reaches a neuron from a Dense or a Conv layer.

Per element, with ``acc`` the exact integer sum the matmul / convolution computed (spec 2.1, 2.2;
lava-nc 0.10.0)::

    dense: a = wrap32(acc << wexp if wexp > 0 else acc >> -wexp)   # proc/dense/models.py, the int32 channel
    dense, graded input: the same on wrap32(acc)                   # int32 weights.dot(s_in) wraps first
    conv:  a = wrap24(int32(acc))                                  # proc/conv/models.py signed_wrap

``int32()`` is Lava's ``astype(np.int32)`` of the float64 conv sum (``proc/conv/utils.py conv``): a sum
outside the int32 range becomes INT_MIN (x86-64's out-of-range conversion), which wraps to 0.

Array-generic, like :mod:`loihic.deploy.emulator.lif`: only ``+ - * & << >>`` and comparisons (a boolean enters
arithmetic as 0 / 1), so the same functions run on numpy int64 arrays, torch int64 tensors and int64
scalars inside numba (:mod:`loihic.deploy.emulator.numba_kernels` compiles them into its scan).
"""

from __future__ import annotations

from loihic.compiler.netx import schema

INT32_MIN = -(1 << (schema.CONV_CAST_BITS - 1))  # Lava conv's astype(int32) range
INT32_MAX = (1 << (schema.CONV_CAST_BITS - 1)) - 1


def wrap(x, bits: int):  # noqa: ANN001, ANN201 - array-generic
    """Two's-complement wrap of int64 ``x`` to ``bits`` bits: ``((x + 2^(bits-1)) mod 2^bits) - 2^(bits-1)``."""
    half = 1 << (bits - 1)
    return ((x + half) & ((1 << bits) - 1)) - half


def weight_exp(acc, wexp: int):  # noqa: ANN001, ANN201
    """Dense's ``weight_exp``: ``acc << wexp`` if positive, ``acc >> -wexp`` (a floor shift) if negative."""
    if wexp > 0:
        return acc << wexp
    if wexp < 0:
        return acc >> -wexp
    return acc


def int32_cast(acc):  # noqa: ANN001, ANN201
    """Lava conv's ``astype(np.int32)``: values outside the int32 range become INT_MIN."""
    return acc + (INT32_MIN - acc) * ((acc < INT32_MIN) | (acc > INT32_MAX))


def synaptic(acc, wexp: int, conv: bool, graded: bool = False):  # noqa: ANN001, ANN201
    """``(a, shifted)``: the synaptic input ``a`` a neuron receives from the exact sum ``acc`` (dense: the
    int32 channel; conv: the int32 cast and the 24-bit accumulator), and the value before the wraps, so
    that ``a != shifted`` marks a synaptic wrap (the overflow monitor).  Conv passes ``wexp = 0``: Lava's
    conv ignores ``weight_exp``.

    ``graded``: the dense input is graded (``num_message_bits > 0``: after a sigma-delta layer, or a graded
    source).  Lava's ``PyDenseModelBitAcc`` then sums with ``weights.dot(s_in)`` on int32 arrays, which wraps
    to 32 bits *before* the ``weight_exp`` shift; binary input sums with ``weights[:, s].sum(axis=1)`` in
    int64 (proc/dense/models.py:98-106).  The two differ only when the sum leaves int32 and ``wexp < 0``.
    Conv is the same either way (proc/conv/models.py:40-51)."""
    shifted = weight_exp(acc, wexp)
    if graded and not conv:
        return wrap(weight_exp(wrap(acc, schema.CHANNEL_BITS), wexp), schema.CHANNEL_BITS), shifted
    if conv:
        return wrap(int32_cast(shifted), schema.CONV_ACC_BITS), shifted
    return wrap(shifted, schema.CHANNEL_BITS), shifted
