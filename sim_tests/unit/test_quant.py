"""Property tests of the one rounding function and the weight quantizer (Lava-free)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from loihic.compiler import quant
from loihic.compiler.netx import schema
from sim_tests.tolerances import QUANT_MAX_ERROR

floats = st.floats(-10.0, 10.0, allow_nan=False, width=64)
weights = arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 6)), elements=floats)
scales = st.floats(0.01, 500.0, allow_nan=False)


@given(weights, scales)
def test_range_kept_and_even(w, scale):
    q = quant.quantize_weights(w, scale)
    assert q.min() >= schema.WEIGHT_MIN and q.max() <= schema.WEIGHT_MAX
    assert (q % 2 == 0).all()


@given(weights, scales)
def test_error_at_most_half_step_when_not_clipped(w, scale):
    q = quant.quantize_weights(w, scale)
    unclipped = np.abs(scale * w) <= schema.WEIGHT_MAX
    assert (np.abs(q - scale * w)[unclipped] <= QUANT_MAX_ERROR + 1e-9).all()


@given(weights, scales)
def test_idempotent(w, scale):
    q = quant.quantize_weights(w, scale)
    assert np.array_equal(quant.quantize_weights(q, 1.0), q)


@given(floats, floats, scales)
def test_monotone(a, b, scale):
    lo, hi = min(a, b), max(a, b)
    assert quant.quantize_weights(np.array([lo]), scale)[0] <= quant.quantize_weights(np.array([hi]), scale)[0]


def test_all_zero_is_safe():
    assert not quant.quantize_weights(np.zeros((3, 4)), 10.0).any()
    assert quant.sqnr_db(np.zeros(3), np.zeros(3), 1.0) == float("inf")


@given(st.floats(0.0, 1.0))
def test_decay_int_in_range(f):
    d = quant.decay_int(f)
    assert 0 <= d <= schema.DECAY_UNITY and abs(d - f * 4096) <= 0.5


def test_worst_input_and_bounds():
    w = np.array([[2.0, -4.0, 6.0], [-8.0, -2.0, 0.0]])
    assert quant.worst_input(w, 1.0) == 10.0  # row 1: all inhibitory inputs on
    u, v = quant.state_bounds(w, None, 1.0, 4096, 0, 5, spiking=False)
    assert u == 64 * 10 and v == 5 * 64 * 10
    u_leak, _ = quant.state_bounds(w, None, 1.0, 2048, 0, 100, spiking=True)
    assert 64 * 10 < u_leak < 2 * 64 * 10 + 1e-6  # geometric sum with keep 1/2 -> factor < 2
