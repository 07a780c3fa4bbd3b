"""What counts as equal in this test suite, and why.  Tests import these names, never literals.

| comparison                                   | rule          | why                                            |
|----------------------------------------------|---------------|------------------------------------------------|
| Lava CPU sim vs emulator: spikes, voltages   | exact         | both are integer machines; any difference is a bug |
| netx file written vs read back: integers     | exact         | netx truncates with astype(int): no rounding room |
| pass rewrites of float weights (BN, pooling) | 1e-9 relative | float64 re-association only                     |
| quantized weight vs scale * float weight     | <= 1 (half an even step of 2) unless clipped | round-to-even-integer |
| float SNN vs compiled emulator accuracy      | reported, not asserted tightly | quantization changes spikes; the gap is a measurement |
"""

SPIKES_EXACT = 0  # allowed number of differing spikes between Lava and the emulator
FLOAT_REWRITE_RTOL = 1e-9
FLOAT_REWRITE_ATOL = 1e-9
QUANT_MAX_ERROR = 1.0  # |W_int - scale * w| for unclipped weights (even rounding: step 2)
