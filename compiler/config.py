"""Options of one compilation; frozen so passes stay pure."""

from __future__ import annotations

from dataclasses import dataclass


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
