"""Options of one compilation; frozen so passes stay pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CompileConfig:
    # Deploy a soft-reset (subtract) network with Lava's hard reset (to zero).  Off: refuse, since
    # it changes what the network computes (Lava's LIF can only reset to zero).
    force_hard_reset: bool = False
    # L4-norm first-layer adjustment (Allred & Roy eqs. 6-9); r_s is its smoothing ratio.
    l4: bool = False
    l4_rs: float = 2.0
    # Graded input bits of a direct-encoded network: "auto" (chosen by the first layer's error proxy,
    # compiler/passes/input_bits.py), an int 1..8 to force one, or None (as trained, 8).  Fewer input bits
    # leave the first layer's 24-bit current room for finer weights.
    input_bits: int | str | None = "auto"
    # Calibration spike trains (N, n_in, T) in the graph's input shape (compiler/calib.py): round each layer's
    # weights with error feedback against the float network's near-threshold cost and choose its scale by it.
    # None (the default): data-free rounding to nearest at the largest scale the limits allow.
    calib: Any = field(default=None, compare=False, repr=False)
    # width of the near-threshold weight, in thresholds (compiler/calib.py)
    calib_sigma: float = 0.5
