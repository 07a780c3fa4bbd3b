"""Loihi fixed-point helpers: the ONE rounding function, scale choice and worst-case state bounds.

A real weight w becomes ``even_round(scale * w)`` (even integers in [-256, 254], as slayer's
``quantize_8bit`` writes them, spec 1.6): netx + Lava then deliver ``sum W s`` losslessly (spec 1.7).
A layer's threshold and bias get the same scale (times ``in_scale`` for graded input), so every
ratio the float network had between weights, bias and threshold is kept.
"""

from __future__ import annotations

import math

import numpy as np

from loihic.compiler.netx import schema


def even_round(x: np.ndarray) -> np.ndarray:
    """Nearest even integer, ties to the nearest multiple of 4 (``2 * rint(x / 2)``, half to even)."""
    return (2 * np.rint(np.asarray(x, dtype=np.float64) / 2)).astype(np.int64)


def quantize_weights(w: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(even_round(scale * np.asarray(w, np.float64)), schema.WEIGHT_MIN, schema.WEIGHT_MAX)


def sqnr_db(w: np.ndarray, wq: np.ndarray, scale: float) -> float:
    """Signal-to-quantization-noise ratio of ``wq / scale`` as an estimate of ``w``, in dB."""
    noise = float(np.sum((np.asarray(w, np.float64) - wq / scale) ** 2))
    signal = float(np.sum(np.asarray(w, np.float64) ** 2))
    return math.inf if noise == 0 else 10 * math.log10(signal / noise) if signal > 0 else -math.inf


def decay_int(fraction: float) -> int:
    """Decay fraction per step in [0, 1] -> netx iDecay/vDecay in [0, 4096]."""
    return int(np.clip(round(fraction * schema.DECAY_UNITY), 0, schema.DECAY_UNITY))


def geometric_gain(decay: int, steps: int) -> float:
    """Largest factor a constant per-step input is accumulated by, ``sum_{k<steps} (1-d/4096)^k``."""
    keep = 1.0 - decay / schema.DECAY_UNITY
    return float(steps) if keep >= 1.0 else (1.0 - keep**steps) / (1.0 - keep)


def worst_input(weight: np.ndarray, in_max: float) -> float:
    """Largest |sum_i W_i x_i| over neurons for inputs in [0, in_max] (all-excitatory or all-inhibitory)."""
    w = np.asarray(weight, np.float64).reshape(weight.shape[0], -1)
    return float(max(np.clip(w, 0, None).sum(1).max(), -np.clip(w, None, 0).sum(1).min())) * in_max


def state_bounds(  # noqa: PLR0913
    weight: np.ndarray,
    bias: np.ndarray | None,
    in_max: float,
    i_decay: int,
    v_decay: int,
    steps: int,
    spiking: bool,
    weight_rec: np.ndarray | None = None,
) -> tuple[float, float]:
    """Worst-case |u| and |v| (Lava integer units) reachable within ``steps`` steps.

    u accumulates 64 * a with current decay; for a spiking neuron v is reported for its inhibited
    side (the excited side fires and resets before it can clip); for an integrator readout v
    accumulates u + bias with voltage decay.  A recurrent layer's ``weight_rec`` adds its own spikes'
    worst case (binary, one per synapse and step); delays do not change the bound (each synapse still
    delivers at most one input per step).
    """
    worst = worst_input(weight, in_max) + (0.0 if weight_rec is None else worst_input(weight_rec, 1.0))
    u_max = (1 << schema.WEIGHT_SHIFT) * worst * geometric_gain(i_decay, steps)
    b = 0.0 if bias is None else float(np.abs(bias).max()) * (1 << schema.BIAS_EXP)
    v_max = (u_max + b) * geometric_gain(v_decay, steps)
    return u_max, v_max


def gptq_factor(hessian: np.ndarray, damp: float = 0.01) -> np.ndarray:
    """The upper Cholesky factor of ``(H + damp * mean(diag H) I)^-1`` that :func:`gptq_round` feeds errors with
    (GPTQ / OPTQ, Frantar et al., ICLR 2023, Alg. 1 and its Cholesky reformulation, sec. 3.4)."""
    h = np.asarray(hessian, np.float64)
    h = h + (damp * float(np.mean(np.diag(h))) + 1e-12) * np.eye(h.shape[0])
    return np.linalg.cholesky(np.linalg.inv(h)).T


def gptq_round(target: np.ndarray, factor: np.ndarray, steps: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Error-feedback rounding of one row (GPTQ / OPTQ, Alg. 1, one row): entries are rounded in order to
    multiples of ``steps`` within [``lo``, ``hi``], and each one's rounding error is pushed onto the entries not
    yet rounded so that ``(q - target)^T H (q - target)`` stays small (``factor``: :func:`gptq_factor` of H).
    ``target`` is the row in integer units (scale times the real weights).  Entries that H does not couple to
    the others round to nearest."""
    t = np.asarray(target, np.float64).copy()
    q = np.zeros(t.size)
    for j in range(t.size):
        q[j] = np.clip(steps[j] * np.rint(t[j] / steps[j]), lo[j], hi[j])
        t[j + 1 :] -= (t[j] - q[j]) / factor[j, j] * factor[j, j + 1 :]
    return q.astype(np.int64)
