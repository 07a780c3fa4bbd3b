"""Input encodings shared by the float SNN, the emulator and the Lava runner.

Every encoder returns an integer array ``(N, *input_shape, T)`` (time last, PyTorch layout for the
features), the layout ``loihic simulate`` reads and writes.

- ``poisson``: Bernoulli rate coding, spike at step t iff ``U(0,1) < x`` with x in [0, 1]
  (the "Poisson generator" of Datta et al., Sec. VI, and Diehl et al. 2015). Seeded, so the same
  seed gives the same spike trains on every backend.
- ``direct``: constant-current coding; the analogue pixel value is delivered every step as a graded
  input of ``round(x * DIRECT_LEVELS)`` (8 bits).  On Lava this needs ``input_message_bits=8``.
"""

from __future__ import annotations

import numpy as np

from loihic.compiler.errors import InputError

ENCODINGS = ("poisson", "direct")
DIRECT_LEVELS = 255  # graded input = round(x * 255), an 8-bit message
DIRECT_MESSAGE_BITS = 8


def input_scale(encoding: str) -> int:
    """Integer value that stands for a real input of 1.0 under ``encoding``."""
    check_encoding(encoding)
    return DIRECT_LEVELS if encoding == "direct" else 1


def check_encoding(encoding: str) -> None:
    if encoding not in ENCODINGS:
        raise InputError(f"encoding '{encoding}' is not one of {', '.join(ENCODINGS)}")


def encode(x: np.ndarray, timesteps: int, encoding: str, seed: int) -> np.ndarray:
    """Encode real inputs ``x`` of shape (N, *input_shape) with values in [0, 1] over ``timesteps``.

    Returns uint8 (poisson) or int16 (direct) of shape (N, *input_shape, timesteps).
    """
    check_encoding(encoding)
    if timesteps < 1:
        raise InputError(f"timesteps must be >= 1, got {timesteps}")
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all() or x.min(initial=0.0) < 0.0 or x.max(initial=0.0) > 1.0:
        raise InputError("inputs to encode must be finite and within [0, 1]")
    if encoding == "direct":
        levels = np.rint(x * DIRECT_LEVELS).astype(np.int16)
        return np.repeat(levels[..., None], timesteps, axis=-1)
    rng = np.random.default_rng(seed)
    u = rng.random((*x.shape, timesteps), dtype=np.float32)
    return (u < x[..., None]).astype(np.uint8)
