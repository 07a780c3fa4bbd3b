"""Float SNN simulator against a plain numpy loop of the ir.py neuron equations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loihic.compiler import ir
from loihic.compiler.encoding import encode
from loihic.compiler.errors import InputError
from loihic.training.models import build_model, sequential, state_dict_from_network
from loihic.training.snn import SNNModel, encode_chunks


def tiny(w1: np.ndarray, w2: np.ndarray, b2: np.ndarray) -> tuple[ir.Network, dict]:
    layers = [ir.Flatten("f"), ir.Dense("fc1", w1, None, ir.RELU), ir.Dense("fc2", w2, b2, ir.READOUT)]
    net = ir.Network(ir.Input((1, 2, 3)), layers, timesteps=1, encoding="direct")
    state = state_dict_from_network(net)
    assert sorted(state) == ["1.weight", "3.bias", "3.weight"]  # flatten, fc1, its ReLU, fc2
    return net, state


def reference(
    spikes: np.ndarray,
    w1: np.ndarray,
    w2: np.ndarray,
    b2: np.ndarray,
    th: float,
    leak: float,
    reset: str,
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Datta et al. eqs. 2-5 with our reset choice, one sample and step at a time."""
    n, T = spikes.shape[0], spikes.shape[-1]
    out = np.zeros((n, w2.shape[0]), np.float32)
    trains = np.zeros((n, w1.shape[0], T), bool)
    for i in range(n):
        v = np.zeros(w1.shape[0], np.float32)
        for t in range(T):
            x = spikes[i, ..., t].reshape(-1).astype(np.float32) / np.float32(scale)
            v = np.float32(leak) * v + w1 @ x
            s = v > th
            v = np.where(s, 0.0, v) if reset == "hard" else v - np.float32(th) * s
            out[i] += w2 @ s.astype(np.float32) + b2
            trains[i, :, t] = s
    return out, trains


@settings(derandomize=True, deadline=None, max_examples=25)
@given(
    seed=st.integers(0, 2**31 - 1),
    reset=st.sampled_from(["hard", "soft"]),
    leak=st.sampled_from([1.0, 0.75, 0.5, 0.0]),
    T=st.integers(1, 12),
)
def test_matches_reference_loop(seed: int, reset: str, leak: float, T: int) -> None:
    # Dyadic weights and threshold (multiples of 1/8, threshold off-grid by 1/16): float32 sums are
    # exact, so the comparison is exact whatever the summation order.
    rng = np.random.default_rng(seed)
    w1 = (rng.integers(-8, 9, size=(5, 6)) / 8).astype(np.float32)
    w2 = (rng.integers(-8, 9, size=(3, 5)) / 8).astype(np.float32)
    b2 = (rng.integers(-4, 5, size=3) / 8).astype(np.float32)
    th = float(rng.integers(1, 12)) / 8 + 1 / 16
    spikes = encode(rng.random((4, 1, 2, 3)).astype(np.float32), T, "poisson", seed)
    arch, state = tiny(w1, w2, b2)
    model = SNNModel(arch, state, [th, None], leak=leak, reset=reset)
    run = model.simulate(spikes, record=True)
    want_out, want_trains = reference(spikes, w1, w2, b2, th, leak, reset)
    np.testing.assert_array_equal(run.output.numpy(), want_out)
    np.testing.assert_array_equal(run.spikes[0].numpy(), want_trains)


def test_direct_encoding_divides_by_255() -> None:
    rng = np.random.default_rng(0)
    w1, w2, b2 = (
        rng.normal(size=(4, 6)).astype(np.float32),
        rng.normal(size=(2, 4)).astype(np.float32),
        np.zeros(2, np.float32),
    )
    arch, state = tiny(w1, w2, b2)
    x = rng.random((3, 1, 2, 3)).astype(np.float32)
    direct = encode(x, 5, "direct", 0)
    out = SNNModel(arch, state, [0.3, None], encoding="direct")(direct)
    want, _ = reference(direct, w1, w2, b2, 0.3, 1.0, "hard", scale=255.0)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-5, atol=1e-5)


def test_hard_and_soft_reset_differ() -> None:
    rng = np.random.default_rng(1)
    w1, w2 = rng.normal(size=(8, 6)).astype(np.float32), rng.normal(size=(2, 8)).astype(np.float32)
    arch, state = tiny(w1, w2, np.zeros(2, np.float32))
    spikes = encode(rng.random((16, 1, 2, 3)).astype(np.float32), 20, "poisson", 0)
    hard = SNNModel(arch, state, [0.5, None], reset="hard")(spikes)
    soft = SNNModel(arch, state, [0.5, None], reset="soft")(spikes)
    assert not torch.equal(hard, soft)


def test_conv_network_runs_and_pools() -> None:
    arch = sequential((1, 4, 4), [("conv", 2, 3, 1), "relu", ("avgpool", 2), "flatten", ("linear", 3)])
    torch.manual_seed(0)
    state = build_model(arch).state_dict()
    spikes = encode(np.random.default_rng(0).random((5, 1, 4, 4)).astype(np.float32), 7, "poisson", 0)
    run = SNNModel(arch, state, [0.2, None]).simulate(spikes, record=True)
    assert run.output.shape == (5, 3) and run.spikes[0].shape == (5, 2, 4, 4, 7)
    # The readout integrates sum_t W (avgpool of spikes), with no leak and no threshold (eqs. 4-5).
    pooled = torch.nn.functional.avg_pool2d(run.spikes[0].float().sum(-1), 2).reshape(5, -1)
    torch.testing.assert_close(run.output, pooled @ state["4.weight"].T)


def test_wrong_input_shape() -> None:
    arch, state = tiny(np.ones((2, 6), np.float32), np.ones((2, 2), np.float32), np.zeros(2, np.float32))
    model = SNNModel(arch, state, [1.0, None])
    with pytest.raises(InputError, match=r"spikes have shape \(2, 6, 4\), expected \(B, 1, 2, 3, T\)"):
        model(np.zeros((2, 6, 4), np.uint8))


def test_encode_chunks_rule() -> None:
    x = np.random.default_rng(0).random((600, 1, 2, 2)).astype(np.float32)
    chunks = list(encode_chunks(x, 6, "poisson", seed=10))
    assert [start for start, _ in chunks] == [0, 256, 512]
    again = list(encode_chunks(x, 6, "poisson", seed=10))
    for (_, a), (_, b) in zip(chunks, again, strict=True):
        assert np.array_equal(a, b)
    # The documented rule: chunk k of 256 samples is encode(..., seed + k).
    assert np.array_equal(chunks[1][1], encode(x[256:512], 6, "poisson", 11))
    assert not np.array_equal(chunks[0][1], next(encode_chunks(x, 6, "poisson", seed=11))[1])
