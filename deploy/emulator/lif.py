"""Lava's CUBA-LIF neuron in integers, written once: ``PyLifModelBitAcc`` (lava-nc 0.10.0
``proc/lif/models.py`` lines 72-216 and 237-278; spec 2.3), with the constants of the netx schema.

One step of a population, with ``du = 4096 - iDecay``, ``dv = 4096 - vDecay`` (netx passes
``du = iDecay - 1`` and the model adds ``ds_offset = 1``), ``vth = vThMant << 6``, ``bias6 = bias << 6``
and ``a`` the synaptic input (:mod:`loihic.deploy.emulator.synapse`)::

    c = wrap32(rs0(u * du, 12) + wrap32(a << 6))                      # the new current, in int32
    u = c - 2^24 if c > 2^23 else (c + 2^24 if c <= -2^23 else c)     # ONE wrap, into (-2^23, 2^23]
    w = wrap32(rs0(v * dv, 12) + u + bias6)                           # uses the new u
    v = clip(w, -(2^23 - 1), 2^23 - 1)
    s = v > vth;  v = 0 where s                                       # hard reset of v only; u keeps going

``rs0(x, n) = sign(x) * (|x| >> n)`` shifts toward zero.  ``wrap32`` is numpy's int32 arithmetic in Lava's
model (state arrays and channels are int32).  The overflow monitor counts ``u != c`` (u wrapped) and
``v != w`` (v clipped) before the reset.

Every function is array-generic: only ``+ - * & << >>``, comparisons and the ``clip`` method, with
booleans entering arithmetic as 0 / 1 instead of ``where``, so the same code runs on numpy int64 arrays
(the reference the tests compare against, sim_tests/unit/test_neuron_kinds.py), torch int64 tensors (the
step-major path and the torch scan of :mod:`loihic.deploy.emulator.kernels`) and int64 scalars inside
numba (:mod:`loihic.deploy.emulator.numba_kernels` compiles these functions into its scan).  All values
are int64.
"""

from __future__ import annotations

from loihic.compiler.netx import schema
from loihic.deploy.emulator.synapse import wrap

U_LIMIT = schema.UV_LIMIT  # 2^23: u > U_LIMIT or u <= -U_LIMIT wraps by 2^24
U_SPAN = 2 * schema.UV_LIMIT  # 2^24
V_MAX = schema.UV_LIMIT - 1  # v clips to +-V_MAX
DECAY_ROUND = (1 << schema.DECAY_BITS) - 1  # added to negative products so that >> rounds toward zero


def threshold(v_th_mant: int) -> int:
    """The spike threshold on v: ``vThMant << 6`` (lif/models.py ``vth << vth_shift``, computed once)."""
    return int(v_th_mant) << schema.VTH_SHIFT


def bias_term(bias_mant):  # noqa: ANN001, ANN201 - array-generic
    """What the bias adds to v each step: ``bias_mant << bias_exp`` with netx's ``bias_exp = 6``."""
    return bias_mant << schema.BIAS_EXP


def rs0(x):  # noqa: ANN001, ANN201
    """``sign(x) * (|x| >> 12)`` for int64 ``x``: the decay shift toward zero (lif/models.py subthr_dynamics),
    as ``(x + (4095 if x < 0 else 0)) >> 12`` (``x >> 63`` is -1 for negative x, else 0)."""
    return (x + ((x >> 63) & DECAY_ROUND)) >> schema.DECAY_BITS


def current_input(a):  # noqa: ANN001, ANN201
    """``wrap32(a << 6)``: the synaptic input as it enters u (lif/models.py ``a_in << act_shift``)."""
    return wrap(a << schema.WEIGHT_SHIFT, schema.CHANNEL_BITS)


def wrap_u(c):  # noqa: ANN001, ANN201
    """Lava's single wrap of the current: ``c - 2^24`` if ``c > 2^23``, ``c + 2^24`` if ``c <= -2^23``."""
    return c - U_SPAN * (c > U_LIMIT) + U_SPAN * (c <= -U_LIMIT)


def clip_v(w):  # noqa: ANN001, ANN201
    """``clip(w, -(2^23 - 1), 2^23 - 1)``: numpy's and torch's ``clip`` method (numba_kernels gives the
    int64 scalars of its scan the same method)."""
    return w.clip(-V_MAX, V_MAX)


def step(u, v, a6, du, dv, bias6, vth):  # noqa: ANN001, ANN201, PLR0913
    """One step (module doc) on ``a6 = current_input(a)``: ``(u, v, s, u_wrapped, v_clipped)``, the new state,
    the spikes, and where u wrapped and v was clipped (booleans)."""
    c = wrap(rs0(u * du) + a6, schema.CHANNEL_BITS)
    u = wrap_u(c)
    w = wrap(rs0(v * dv) + u + bias6, schema.CHANNEL_BITS)
    v = clip_v(w)
    s = v > vth
    return u, v * (v <= vth), s, u != c, v != w
