"""Lava's sigma-delta neurons in integers, written once: ``PyDeltaModelFixed``, ``PySigmaDeltaModelFixed`` and
``PySigmaModelFixed`` (lava-nc 0.10.0 ``proc/sdn/models.py`` lines 60-100, 150-156, 208-231, 263-284; the
processes ``proc/sdn/process.py``; spec 2.5), as lava-dl 0.6.0's netx builds them (``hdf5.py``
get_neuron_params lines 164-189: ``spike_exp = state_exp = 6``, so ``E = spike_exp + state_exp = 12``).

Every state and message is Lava's ``np.int32`` (``wrap32``: two's-complement wrap to 32 bits); there is no
saturation.  The constructors pre-scale ``vth = vThMant << E`` and ``bias = wrap32(bias << E)``
(process.py:99, 179-180: the netx block hands the bias over as int32, netx/blocks/process.py:71).

Delta (an SDNN 'input' layer; ``a`` is what the source sends, an integer per neuron)::

    x       = wrap32(a << E)                                  # models.py:225-227
    d       = wrap32(x - act + residue)                       # delta_dynamics, models.py:85
    s       = d if |d| >= vth else 0                          # np.abs on int32: |-2^31| stays negative, no send
    residue = d - s;  act = x
    send(s >> state_exp)                                      # a floor shift: the low 6 bits are lost

SigmaDelta (a hidden SDNN layer; ``a`` the synaptic input, :func:`loihic.deploy.emulator.synapse.synaptic`
with ``graded=True`` after another sigma-delta layer)::

    sigma   = wrap32(sigma + a)                               # sigma_dynamics, models.py:52
    y       = wrap32(sigma + bias);  y = max(y, 0) if relu    # activation_dynamics, models.py:140-143
    d       = wrap32(y - act + residue)
    s       = d if |d| >= vth else 0;  residue = d - s;  act = y
    send(s >> state_exp)                                      # models.py:283, the same flooring

netx never passes ``act_mode``, so every SigmaDelta it builds is ReLU (process.py:126); the identity
(``ActivationMode.UNIT``) is here for completeness.  ``cum_error`` is never set by netx (False) and not modelled.

Sigma (an SDNN layer with 'sigma_output')::

    sigma = wrap32(sigma + a);  send(sigma)                   # AbstractSigmaModel.run_spk, models.py:54-57

The message a sigma-delta layer sends is an int32 in ``[-2^25, 2^25)`` (``s >> 6`` of an int32); the next
Dense or Conv takes it as graded input (netx: ``num_message_bits = 16``, hdf5.py:169; Lava does not clip it
to 16 or 24 bits).

Array-generic, like :mod:`loihic.deploy.emulator.lif`: only ``+ - * & | << >>`` and comparisons (a boolean
enters arithmetic as 0 / 1), so the same functions run on numpy int64 arrays, torch int64 tensors and int64
scalars inside numba (``register_jitable``).  Values are int64 holding int32 values.
"""

from __future__ import annotations

from loihic.compiler.netx import schema
from loihic.deploy.emulator.synapse import wrap

BITS = schema.SDNN_STATE_BITS  # 32: every state and message is np.int32
INT32_MIN = -(1 << (BITS - 1))  # np.abs(INT32_MIN) == INT32_MIN in int32: never >= vth
SCALE_BITS = schema.SDNN_SCALE_BITS  # E = spike_exp + state_exp = 12
STATE_EXP = schema.STATE_EXP  # 6: the message is s >> 6
MESSAGE_MAX = 1 << (BITS - 1 - STATE_EXP)  # |message| <= 2^25: an int32 floor-shifted by state_exp


def threshold(v_th_mant: int) -> int:
    """The delta threshold: ``vThMant << 12`` (process.py:99 / 179, ``vth * (1 << (spike_exp + state_exp))``)."""
    return int(v_th_mant) << SCALE_BITS


def bias_term(bias):  # noqa: ANN001, ANN201 - array-generic
    """The scaled bias a SigmaDelta adds to sigma: ``wrap32(bias << 12)`` (process.py:180, on the int32 bias
    the netx block passes)."""
    return wrap(bias << SCALE_BITS, BITS)


def encode_input(a):  # noqa: ANN001, ANN201
    """Delta's input scaling: ``np.left_shift(a_in, spike_exp + state_exp)`` in int32 (models.py:225-227)."""
    return wrap(a << SCALE_BITS, BITS)


def activation(y, relu: bool):  # noqa: ANN001, ANN201
    """``max(y, 0)`` (ActivationMode.RELU, netx's only mode) or ``y`` (ActivationMode.UNIT), models.py:140-143."""
    if relu:
        return y * (y > 0)
    return y


def delta_encode(x, act, residue, vth):  # noqa: ANN001, ANN201
    """``(s, residue)``: the delta of ``x`` against the last activation ``act``, plus the ``residue`` not yet
    sent, sent whole when ``|d| >= vth`` (models.py:85-99, ``cum_error`` False).  ``s`` is still scaled by
    ``2^state_exp``; :func:`message` floors it."""
    d = wrap(x - act + residue, BITS)
    fire = (d >= vth) | ((d <= -vth) & (d != INT32_MIN))  # np.abs(d) >= vth on int32
    s = d * fire
    return s, d - s


def message(s):  # noqa: ANN001, ANN201
    """What travels: ``np.right_shift(s, state_exp)``, a floor shift (models.py:229, 283)."""
    return s >> STATE_EXP


def delta_step(a, act, residue, vth):  # noqa: ANN001, ANN201
    """One Delta step (module doc) on the source's integers ``a``: ``(msg, act, residue)``, the message sent
    and the new state."""
    x = encode_input(a)
    s, residue = delta_encode(x, act, residue, vth)
    return message(s), x, residue


def sigma_delta_step(a, sigma, act, residue, bias12, vth, relu: bool = True):  # noqa: ANN001, ANN201, PLR0913
    """One SigmaDelta step (module doc) on the synaptic input ``a``, with ``bias12 = bias_term(bias)`` and
    ``vth = threshold(vThMant)``: ``(msg, sigma, act, residue)``, the message sent and the new state."""
    sigma = wrap(sigma + a, BITS)
    y = activation(wrap(sigma + bias12, BITS), relu)
    s, residue = delta_encode(y, act, residue, vth)
    return message(s), sigma, y, residue


def sigma_step(a, sigma):  # noqa: ANN001, ANN201
    """One Sigma step: ``sigma = wrap32(sigma + a)``, which is also the message sent (models.py:54-57)."""
    return wrap(sigma + a, BITS)
