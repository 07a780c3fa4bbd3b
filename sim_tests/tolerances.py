"""What counts as equal in this test suite, and why.  Tests import these names, never literals.

- Lava CPU sim vs emulator (spikes, voltages): exact.  Both are integer machines; any difference
  is a bug.
- netx file written vs read back (integers): exact.  netx truncates with astype(int), so there is
  no room for rounding.
- Pass rewrites of float weights (BatchNorm and pooling folds): 1e-9, float64 re-association only.
- Quantized weight vs scale * float weight: at most 1 (half of the even step 2) unless clipped.
- Float SNN vs compiled network on the emulator: reported by the benchmarks, not asserted tightly;
  quantization changes spikes and the gap is a measurement.
"""

SPIKES_EXACT = 0  # allowed number of differing spikes between Lava and the emulator
FLOAT_REWRITE_RTOL = 1e-9
FLOAT_REWRITE_ATOL = 1e-9
QUANT_MAX_ERROR = 1.0  # |W_int - scale * w| for unclipped weights (even rounding: step 2)
