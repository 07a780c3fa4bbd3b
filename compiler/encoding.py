"""Input encodings shared by the float SNN, the emulator and the Lava runner.

Every encoder returns an integer array ``(N, *input_shape, T)`` (time last, PyTorch layout for the
features), the layout ``loihic simulate`` reads and writes.

- ``poisson``: Bernoulli rate coding, spike at step t iff ``U(0,1) < x`` with x in [0, 1]
  (the "Poisson generator" of Datta et al., Sec. VI, and Diehl et al. 2015). Seeded, so the same
  seed gives the same spike trains on every backend.
- ``direct``: constant-current coding; the analogue pixel value is delivered every step as a graded
  input of ``round(x * DIRECT_LEVELS)`` (8 bits).  On Lava this needs ``input_message_bits=8``.
- ``direct<B>`` (B = 1..8; ``direct8`` is ``direct``): the same with B-bit graded values
  ``round(x * (2^B - 1))``, on Lava ``input_message_bits=B``.  What ``loihic compile --input-bits B``
  deploys: every input bit given up is one more bit of weight resolution in the first layer, whose
  worst-case current ``64 * sum_i W_i x_i`` must stay below 2^23 (compiler/passes/quantize.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from loihic.compiler.errors import InputError

ENCODINGS = ("poisson", "direct")  # and direct<B>, B = 1..8 (module docstring)
DIRECT_LEVELS = 255  # graded input = round(x * 255), an 8-bit message
DIRECT_MESSAGE_BITS = 8


def direct_bits(encoding: str) -> int:
    """Bits of the graded input value of a direct encoding ("direct" = 8, "direct<B>" = B); 0 for poisson."""
    check_encoding(encoding)
    if encoding == "poisson":
        return 0
    return DIRECT_MESSAGE_BITS if encoding == "direct" else int(encoding[len("direct") :])


def direct_encoding(bits: int) -> str:
    """The encoding name of B-bit graded input: "direct" for 8 bits, else "direct<B>"."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= DIRECT_MESSAGE_BITS:
        raise InputError(f"--input-bits {bits!r}: expected an integer from 1 to {DIRECT_MESSAGE_BITS}")
    return "direct" if bits == DIRECT_MESSAGE_BITS else f"direct{int(bits)}"


def input_scale(encoding: str) -> int:
    """Integer value that stands for a real input of 1.0 under ``encoding``."""
    bits = direct_bits(encoding)
    return (1 << bits) - 1 if bits else 1


def check_encoding(encoding: str) -> None:
    ok = encoding in ENCODINGS or (
        isinstance(encoding, str)
        and encoding.startswith("direct")
        and encoding[len("direct") :] in {str(b) for b in range(1, DIRECT_MESSAGE_BITS + 1)}
    )
    if not ok:
        raise InputError(f"encoding '{encoding}' is not one of poisson, direct, direct1 .. direct8")


def encode(x: np.ndarray, timesteps: int, encoding: str, seed: int) -> np.ndarray:
    """Encode real inputs ``x`` of shape (N, *input_shape) with values in [0, 1] over ``timesteps``.

    Returns uint8 (poisson) or int16 (direct, direct<B>) of shape (N, *input_shape, timesteps).
    """
    check_encoding(encoding)
    if timesteps < 1:
        raise InputError(f"timesteps must be >= 1, got {timesteps}")
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all() or x.min(initial=0.0) < 0.0 or x.max(initial=0.0) > 1.0:
        raise InputError("inputs to encode must be finite and within [0, 1]")
    if encoding != "poisson":
        levels = np.rint(x * input_scale(encoding)).astype(np.int16)
        return np.repeat(levels[..., None], timesteps, axis=-1)
    rng = np.random.default_rng(seed)
    u = rng.random((*x.shape, timesteps), dtype=np.float32)
    return (u < x[..., None]).astype(np.uint8)


ENCODE_CHUNK = 256  # samples per encode() call in encode_chunks; part of the reproducibility rule


def encode_chunks(
    x: np.ndarray, timesteps: int, encoding: str, seed: int, chunk: int = ENCODE_CHUNK
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, encode(x[start:start + chunk], timesteps, encoding, seed + k))``, k = 0, 1, ...

    This is THE rule for encoding a data set: samples in order, ``chunk`` per call, chunk ``k`` seeded
    with ``seed + k``.  Any backend that follows it gets identical spike trains.
    """
    if chunk < 1:
        raise InputError(f"chunk size must be >= 1, got {chunk}")
    for k, start in enumerate(range(0, len(x), chunk)):
        yield start, encode(x[start : start + chunk], timesteps, encoding, seed + k)


def encode_all(x: np.ndarray, timesteps: int, encoding: str, seed: int) -> np.ndarray:
    """All of ``x`` encoded by the chunk rule (:func:`encode_chunks`), in one array."""
    return np.concatenate([s for _, s in encode_chunks(x, timesteps, encoding, seed)])
