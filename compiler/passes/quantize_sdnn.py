"""Quantize a sigma-delta network (``ir.SigmaDelta`` neurons, a Delta input) to Lava's integers.

Lava's arithmetic (lava-nc 0.10.0 ``proc/sdn/models.py`` lines 85-99, 140-143, 208-235, 263-284 and
``proc/sdn/process.py`` lines 99, 179-180, as netx builds them with ``spike_exp = state_exp = 6``; spec 2.5;
the integer steps are written once in deploy/emulator/sigma_delta.py)::

    Delta:       x = a << 12;                 d = x - act + residue;  send (d >> 6) iff |d| >= vThMant << 12
    SigmaDelta:  sigma += W @ msg;  y = relu(sigma + (bias << 12));  the same delta rule on y
    Sigma:       sigma += W @ msg;  send sigma

**Scales.**  Each layer l has an activation scale ``S_l`` (integers per activation unit): its Lava
activation is ``y_l = 4096 * S_l * a_l``.  The Delta input's ``a`` is the source integer, ``round(S_0 x)``
with ``S_0 = 255`` for 8-bit images (``encoding.input_scale``).  Once a neuron's stream has settled, the
messages it has sent add up to ``y / 64 = 64 * S * a`` (minus its residue and the floor, below), so for
the next layer ``sigma_l = W_q @ (64 S_{l-1} a_{l-1})``, which equals ``4096 S_l (W a_{l-1})`` when::

    W_q = even_round(W * 64 * S_l / S_{l-1})      (weight_exp 0; even ints in [-256, 254], spec 1.6)
    b_q = round(S_l * b)                          (Lava adds b_q << 12 = 4096 S_l b)
    vThMant_l = round(S_l * threshold_l)          (Lava compares |d| with vThMant << 12 = 4096 S_l th)

and the Sigma read-out's ``sigma / (4096 S_L)`` is the ANN's output.

**Choice of S_l.**  The weight step ``2 / (64 S_l / S_{l-1})`` and the message floor ``1 / (64 S_l)`` improve
with S_l; the limits are:

- weights: ``64 S_l / S_{l-1} * max|W| <= 254`` (``omega_l = 254 / max|W|``, the largest weight scale);
- int32 state (no saturation in Lava: a wrap would be silent): ``4096 S_l (A_l + max|b|) * HEADROOM < 2^31``,
  with ``A_l`` the layer's largest |pre-activation|: ``act_max`` from calibration when the IR has it, else
  the interval bound from the weights and the input range [0, 1]; a conv layer's per-step synaptic sum
  wraps at 24 bits (proc/conv/models.py signed_wrap), so there ``2^23`` instead of ``2^31``;
- bias: ``S_l max|b| <= 32767`` (int16, the bias netx's blocks take); threshold: ``vThMant < 2^19``;
- a dense layer's int32 sum *before* its ``weight_exp`` shift (lava-nc ``proc/dense/models.py``: graded input
  sums ``weights.dot(s_in)`` in int32, then shifts): netx stores weights whose largest is below 128 magnified
  (lava-dl ``netx/utils.py optimize_weight_bits``: the mantissa is shifted left until it fills 8 bits, and
  ``weight_exp`` shifts the sum back), by ``2^b <= 254 / max|W_q|``.  With ``W_q = (64 S_l / S_{l-1}) W`` the
  sum before the shift is at most ``254 / max|W_q| * 4096 S_l (A_l + max|b|) = 254 * 64 * S_{l-1} (A_l +
  max|b|) / max|W|``: a cap on the *previous* layer's scale, ``S_{l-1} <= 2^31 max|W_l| / (16256 HEADROOM (A_l
  + max|b_l|))``, whatever ``S_l`` is (conv ignores ``weight_exp``: no such cap).  Measured before this cap on
  LeNet-5/MNIST: thousands of wrapped sums on 512 calibration images and a wrong read-out.

A layer capped by its state range takes weight resolution from the next layer (``64 S_{l+1} / S_l``), so the
scales are chosen together (:func:`choose_scales`): the smallest ``(64 S_l / S_{l-1}) / omega_l`` over the layers
is maximised (recorded as ``sdnn_weight_rho`` in the IR meta, 1 when no layer is capped), and every layer
takes the most its weights allow without lowering it.

**What the threshold and the floor cost** (activation units, per neuron, what the next layer has seen vs
the neuron's own value): the residue ``< vThMant_l / S_l`` (about the threshold) and the message floor,
``(-1/(64 S_l), 0]`` per message sent (the floored bits are not kept in the residue).  Both are recorded
per layer (``compiler/report.py``); deploy/sdnn_thresholds.py bounds their effect on the output.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from loihic.compiler import ir, quant
from loihic.compiler.config import CompileConfig
from loihic.compiler.encoding import input_scale
from loihic.compiler.errors import QuantizationError
from loihic.compiler.netx import schema

HEADROOM = 2.0  # factor between the largest expected |state| and the int32 / 24-bit limit: data beyond
# the calibration set and the transients while the stream fills
BIAS_MAX = schema.SDNN_BIAS_MAX  # int16
MESSAGE_SHIFT = 1 << schema.STATE_EXP  # 64: message = s >> 6
PRESHIFT_GAIN = schema.WEIGHT_MAX * MESSAGE_SHIFT  # 16256: the dense pre-shift bound's factor (module docstring)
SCALE_UNIT = 1 << schema.SDNN_SCALE_BITS  # 4096: Delta's a << 12, vth and bias << 12
DELTA_META = "sdnn_delta"  # Network.meta key of the quantized Delta input: {"v_th_mant", "act_scale"}


def interval_bound(layer: ir.Dense | ir.Conv, in_max: float) -> float:
    """Largest |W a + b| for inputs in [0, in_max] (all-excitatory or all-inhibitory)."""
    bmax = 0.0 if layer.bias is None else float(np.abs(layer.bias).max())
    return quant.worst_input(layer.weight, in_max) + bmax


def _limits(layer: ir.Dense | ir.Conv, bound: float) -> tuple[float, dict[str, float]]:
    """``(weight_scale_max, caps)``: the largest ``64 S_l / S_{l-1}`` the weights allow, and the caps on ``S_l``
    itself (state range, bias, threshold)."""
    wmax = float(np.abs(layer.weight).max())
    if wmax == 0:
        raise QuantizationError(f"layer '{layer.name}': all weights are zero (netx cannot load that)")
    bmax = 0.0 if layer.bias is None else float(np.abs(layer.bias).max())
    state_bits = schema.CONV_ACC_BITS if isinstance(layer, ir.Conv) else schema.SDNN_STATE_BITS
    state = "int32 state" if state_bits == schema.SDNN_STATE_BITS else "24-bit conv sum"
    caps = {state: ((1 << (state_bits - 1)) - 1) / (SCALE_UNIT * HEADROOM * max(bound + bmax, 1e-12))}
    if bmax > 0:
        caps["bias"] = BIAS_MAX / bmax
    if layer.neuron.output != "sigma" and layer.neuron.threshold > 0:
        caps["threshold"] = schema.SDNN_VTH_MANT_MAX / layer.neuron.threshold
    # rounding must not lift the largest weight past 254: shave a hair off
    return schema.WEIGHT_MAX / wmax * (1 - 1e-9), {k: v * (1 - 1e-9) for k, v in caps.items()}


def _chain(s0: float, omega: list[float], caps: list[float], rho: float) -> tuple[list[float], list[str]] | None:
    """Scales with every layer's weight scale at least ``rho`` times its largest, or None if none exist."""
    n = len(omega)
    upper = list(caps)  # backward: S_{l-1} <= 64 S_l / (rho omega_l) keeps layer l at rho
    for k in range(n - 2, -1, -1):
        upper[k] = min(caps[k], MESSAGE_SHIFT * upper[k + 1] / (rho * omega[k + 1])) if rho > 0 else caps[k]
    scales, why, prev = [], [], s0
    for k in range(n):
        by_weights = prev * omega[k] / MESSAGE_SHIFT
        s = min(by_weights, upper[k])
        if s < prev * rho * omega[k] / MESSAGE_SHIFT * (1 - 1e-12):
            return None
        scales.append(s)
        why.append("weights" if s == by_weights else "cap" if upper[k] == caps[k] else "next layer's weights")
        prev = s
    return scales, why


def choose_scales(s0: float, omega: list[float], caps: list[float]) -> tuple[list[float], list[str], float]:
    """Activation scales ``S_l`` that maximise the smallest ``rho_l = (64 S_l / S_{l-1}) / omega_l`` (each layer's
    weight scale as a fraction of the largest its weights allow) under the caps ``S_l <= caps_l``: a layer
    capped by its state range then does not starve the next layer's weight resolution (S_{l-1} large and S_l
    capped makes ``64 S_l / S_{l-1}`` small).  Bisection on rho (feasibility is monotone), then every layer
    takes the most its weights and the later layers' needs allow.  Returns (scales, what limited each, rho)."""
    lo, hi = 0.0, 1.0
    if _chain(s0, omega, caps, hi) is not None:
        lo = hi
    else:
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if _chain(s0, omega, caps, mid) is not None else (lo, mid)
    scales, why = _chain(s0, omega, caps, lo)  # type: ignore[misc]  # rho = 0 is always feasible
    return scales, why, lo


def quantize_sdnn(net: ir.Network, cfg: CompileConfig) -> ir.Network:
    """The pass: every layer of a sigma-delta network to Lava integers (module docstring); others unchanged."""
    if not net.sigma_delta:
        return net
    s0 = float(input_scale(net.encoding))
    vth0 = int(round(net.input.delta * s0))
    if vth0 > schema.SDNN_VTH_MANT_MAX:
        raise QuantizationError(f"input delta threshold {net.input.delta} gives vThMant {vth0} > 2^19 - 1")
    in_max = 1.0  # inputs x in [0, 1]
    syn = net.synaptic()
    bounds, omega, caps, cap_names = [], [], [], []
    for layer in syn:
        n = layer.neuron
        bound = n.act_max if n.act_max is not None else interval_bound(layer, in_max)
        om, cap = _limits(layer, bound)
        bounds.append(float(bound))
        omega.append(om)
        caps.append(min(cap.values()))
        cap_names.append(min(cap, key=cap.__getitem__))
        in_max = max(bound, 0.0)
    for k in range(1, len(syn)):  # a dense layer's int32 sum before weight_exp caps the layer before it
        layer = syn[k]
        if isinstance(layer, ir.Dense):
            bmax = 0.0 if layer.bias is None else float(np.abs(layer.bias).max())
            wmax = float(np.abs(layer.weight).max())
            cap = ((1 << (schema.SDNN_STATE_BITS - 1)) - 1) * wmax / (PRESHIFT_GAIN * HEADROOM * (bounds[k] + bmax))
            cap *= 1 - 1e-9
            if cap < caps[k - 1]:  # the compile table's "limited by" (22 columns)
                caps[k - 1], cap_names[k - 1] = cap, "next dense pre-shift"
    scales, why, rho = choose_scales(s0, omega, caps)
    quants = {}
    s_in = s0
    limited = dict(net.meta.get("scale_limited_by", {}))
    for layer, s, w, name, bound in zip(syn, scales, why, cap_names, bounds, strict=True):
        w_scale = MESSAGE_SHIFT * s / s_in
        w_int = quant.quantize_weights(layer.weight, w_scale)
        if not w_int.any():
            raise QuantizationError(f"layer '{layer.name}': all weights round to zero at scale {w_scale:.3g}")
        n = layer.neuron
        quants[layer.name] = ir.SigmaDeltaQuant(
            weight=w_int,
            bias=None if layer.bias is None else np.rint(s * layer.bias).astype(np.int64),
            v_th_mant=0 if n.output == "sigma" else int(round(s * n.threshold)),
            act_scale=s,
            in_act_scale=s_in,
            weight_scale=w_scale,
            sqnr_db=quant.sqnr_db(layer.weight, w_int, w_scale),
            act_bound=bound,
        )
        limited[layer.name] = name if w == "cap" else w
        s_in = s
    out = tuple(
        dataclasses.replace(lay, quant=quants[lay.name]) if isinstance(lay, ir.SYNAPTIC) else lay for lay in net.layers
    )
    meta = {**net.meta, "scale_limited_by": limited, DELTA_META: {"v_th_mant": vth0, "act_scale": s0}}
    return net.replace(layers=out, meta={**meta, "sdnn_weight_rho": rho})


def check_sdnn(layer: ir.Dense | ir.Conv) -> None:
    """The integer ranges of a quantized sigma-delta layer (check_ranges.py calls it)."""
    q = layer.quant
    if not isinstance(q, ir.SigmaDeltaQuant):
        raise QuantizationError(f"layer '{layer.name}': a sigma-delta layer needs sigma-delta quantization")
    if q.weight.min() < schema.WEIGHT_MIN or q.weight.max() > schema.WEIGHT_MAX:
        raise QuantizationError(
            f"layer '{layer.name}': weights in [{q.weight.min()}, {q.weight.max()}] exceed "
            f"[{schema.WEIGHT_MIN}, {schema.WEIGHT_MAX}]"
        )
    if not 0 <= q.v_th_mant <= schema.SDNN_VTH_MANT_MAX:
        raise QuantizationError(f"layer '{layer.name}': vThMant {q.v_th_mant} outside [0, {schema.SDNN_VTH_MANT_MAX}]")
    if q.bias is not None and np.abs(q.bias).max() > BIAS_MAX:
        raise QuantizationError(f"layer '{layer.name}': bias {np.abs(q.bias).max()} outside int16")
