"""L4-norm first-layer adjustment (Allred & Roy eqs. 6-9), checked by hand (Lava-free)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loihic.compiler import ir
from loihic.compiler.config import CompileConfig
from loihic.compiler.errors import LoihicError
from loihic.compiler.passes.l4_adjust import l4_adjust, l4_factors


def _net(w1, mean_potential, threshold=1.0):  # noqa: ANN001
    rng = np.random.default_rng(0)
    layers = (
        ir.Dense("fc1", w1, None, ir.Neuron(threshold)),
        ir.Dense("fc2", rng.normal(size=(2, w1.shape[0])), None, ir.Neuron(1.0, spiking=False)),
    )
    return ir.Network(
        ir.Input((w1.shape[1],)),
        layers,
        timesteps=10,
        encoding="poisson",
        meta={"first_layer_mean_potential": mean_potential},
    )


def test_factors_by_hand():
    w = np.array([[1.0, 0.0], [0.5, 0.5]])  # L4 = 1 and 0.5 * 2^(1/4)
    l4 = np.array([1.0, 0.5 * 2**0.25])
    mu_v, v0, rs = np.array([0.2, 0.4]), 1.0, 0.5
    f = l4_factors(w, mu_v, v0, rs)
    mu = l4.mean()
    l4s = (l4 + rs * mu) / (1 + rs)  # eq. 8
    vth = mu_v + l4s / mu * (v0 - mu_v)  # eq. 6
    s_hat = (v0 / vth + rs) / (1 + rs)  # eqs. 7, 9
    np.testing.assert_allclose(f["s_hat"], s_hat, rtol=1e-12)
    assert f["s_hat"][0] < 1 < f["s_hat"][1]  # the sparse (large-L4) neuron gets smaller weights
    adjusted = w * np.asarray(f["s_hat"])[:, None] * f["rescale"]
    assert math.isclose(np.abs(adjusted).mean(), np.abs(w).mean(), rel_tol=1e-12)  # layer mean |w| kept


def test_rs_infinity_is_the_baseline_bit_for_bit(rng):
    net = _net(rng.normal(size=(6, 4)), rng.normal(size=6) * 0.1)
    out = l4_adjust(net, CompileConfig(l4=True, l4_rs=math.inf))
    assert np.array_equal(out.layers[0].weight, net.layers[0].weight)
    assert out.meta["l4"]["s_hat"] == [1.0] * 6 and out.meta["l4"]["rescale"] == 1.0


def test_large_rs_approaches_baseline_and_zero_rs_is_strongest(rng):
    net = _net(rng.normal(size=(6, 4)), rng.normal(size=6) * 0.1)
    dev = {
        rs: np.abs(np.asarray(l4_adjust(net, CompileConfig(l4=True, l4_rs=rs)).meta["l4"]["s_hat"]) - 1).max()
        for rs in (0.0, 1.0, 1e6)
    }
    assert dev[0.0] > dev[1.0] > dev[1e6] and dev[1e6] < 1e-5


def test_conv_is_per_output_channel_and_bias_follows(rng):
    w = rng.normal(size=(3, 2, 3, 3))
    conv = ir.Conv("c", w, rng.normal(size=3), ir.Neuron(1.0))
    net = ir.Network(
        ir.Input((2, 5, 5)),
        (conv, ir.Flatten("f"), ir.Dense("d", rng.normal(size=(2, 27)), None, ir.Neuron(1, spiking=False))),
        timesteps=4,
        encoding="poisson",
        meta={"first_layer_mean_potential": [0.1, 0.2, -0.1]},
    )
    out = l4_adjust(net, CompileConfig(l4=True, l4_rs=0.0))
    s = np.asarray(out.meta["l4"]["s_hat"]) * out.meta["l4"]["rescale"]
    np.testing.assert_allclose(out.layers[0].weight, w * s[:, None, None, None])
    np.testing.assert_allclose(out.layers[0].bias, conv.bias * s)


def test_edge_cases_leave_neurons_unadjusted(rng):
    w = rng.normal(size=(4, 3))
    w[2] = 0.0  # all-zero weight vector
    mu_v = np.array([0.1, 1.5, 0.0, -50.0])  # neuron 1: mean above threshold; neuron 3: vth_j <= 0 at r_s=0
    f = l4_factors(w, mu_v, 1.0, 0.0)
    assert 1 in f["skipped_neurons"] and 2 in f["skipped_neurons"]
    assert all(f["s_hat"][j] == 1.0 for j in f["skipped_neurons"])


def test_errors_are_one_line_and_name_the_problem(rng):
    net = _net(rng.normal(size=(6, 4)), None)
    with pytest.raises(LoihicError, match="'fc1'.*mean pre-firing potentials"):
        l4_adjust(net, CompileConfig(l4=True))
    with pytest.raises(LoihicError, match="r_s must be >= 0"):
        l4_adjust(_net(rng.normal(size=(6, 4)), [0.0] * 6), CompileConfig(l4=True, l4_rs=-1.0))
    with pytest.raises(LoihicError, match="6 first-layer neurons"):
        l4_adjust(_net(rng.normal(size=(6, 4)), [0.0] * 5), CompileConfig(l4=True))
    assert l4_adjust(net, CompileConfig(l4=False)) is net


def test_checkpoint_and_compiler_apply_the_same_adjustment():
    """L4 applied to the float checkpoint, then compiled, equals compiling with --l4."""
    from loihic.compiler.load.checkpoint import network_from_checkpoint
    from loihic.compiler.pipeline import compile_network
    from loihic.training.adjust import with_l4, with_threshold_scale
    from loihic.training.ann import train_ann
    from loihic.training.convert import convert
    from loihic.training.data import load_dataset

    x, _ = load_dataset("digits", "train")
    snn = convert(
        train_ann("mlp", "digits", 1, 0, progress=False, limit_train=200), x, 8, calib_samples=32, progress=False
    )
    via_compiler = compile_network(network_from_checkpoint(snn), CompileConfig(l4=True, l4_rs=0.5))
    adjusted, _ = with_l4(snn, 0.5)
    via_checkpoint = compile_network(network_from_checkpoint(adjusted))
    assert np.array_equal(via_compiler.synaptic()[0].quant.weight, via_checkpoint.synaptic()[0].quant.weight)
    with pytest.raises(LoihicError, match="already"):
        compile_network(network_from_checkpoint(adjusted), CompileConfig(l4=True))
    with pytest.raises(LoihicError, match="already"):
        with_l4(adjusted, 1.0)
    assert with_threshold_scale(snn, 0.5)["snn"]["thresholds"][0] == snn["snn"]["thresholds"][0] * 0.5
