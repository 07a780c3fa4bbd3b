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


def _row_case(seed: int, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A row target (integer units) and a correlated, positive definite H (rates and co-activity of inputs)."""
    rng = np.random.default_rng(seed)
    x = (rng.random((400, n)) < rng.uniform(0.05, 0.9, n)).astype(float)
    x[:, -1] = 1.0  # an always-on input (the v bias)
    return rng.normal(0.0, 20.0, n), x.T @ x / len(x)


def test_gptq_round_without_coupling_is_nearest_rounding():
    t, _ = _row_case(0)
    steps, lo, hi = np.full(t.size, 2.0), np.full(t.size, -256), np.full(t.size, 254)
    q = quant.gptq_round(t, quant.gptq_factor(np.diag(np.arange(1.0, t.size + 1))), steps, lo, hi)
    np.testing.assert_array_equal(q, quant.even_round(t))


def test_gptq_round_keeps_range_and_steps_and_lowers_the_weighted_error():
    """Error feedback (GPTQ, one row) against plain rounding on 40 correlated rows: every entry a multiple of its
    step within its range, and the weighted error e^T H e lower on average and in most rows."""
    better, ratio = 0, []
    for seed in range(40):
        t, h = _row_case(seed)
        t[0] = 400.0  # one entry clips
        steps = np.r_[np.full(t.size - 1, 2.0), 1.0]
        lo, hi = np.r_[np.full(t.size - 1, -256), -4096], np.r_[np.full(t.size - 1, 254), 4095]
        q = quant.gptq_round(t, quant.gptq_factor(h), steps, lo, hi)
        assert (q >= lo).all() and (q <= hi).all() and (q % steps == 0).all() and q[0] == 254
        p = np.clip(steps * np.rint(t / steps), lo, hi)
        cost_q, cost_p = (q - t) @ h @ (q - t), (p - t) @ h @ (p - t)
        better += cost_q < cost_p
        ratio.append(cost_q / cost_p)
    assert better >= 30 and np.mean(ratio) < 0.8, (better, np.mean(ratio))
