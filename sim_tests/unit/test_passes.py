"""Compiler passes: each a pure function, checked against PyTorch on the float side (Lava-free)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from loihic.compiler import ir
from loihic.compiler.config import CompileConfig
from loihic.compiler.errors import LoihicError, QuantizationError, UnsupportedLayerError
from loihic.compiler.passes.check_ranges import check_ranges
from loihic.compiler.passes.fold_batchnorm import fold_batchnorm
from loihic.compiler.passes.lower_avgpool import lower_avgpool
from loihic.compiler.passes.quantize import quantize
from loihic.compiler.pipeline import PASSES, compile_network
from sim_tests.tolerances import FLOAT_REWRITE_ATOL, FLOAT_REWRITE_RTOL

CFG = CompileConfig()
N = ir.Neuron(threshold=1.0)


def _net(layers, shape=(1, 12, 12), steps=16, encoding="poisson"):
    return ir.Network(ir.Input(shape), tuple(layers), timesteps=steps, encoding=encoding)


def test_pipeline_is_one_ordered_tuple_of_functions():
    assert [p.__name__ for p in PASSES] == [
        "drop_dropout",
        "fold_batchnorm",
        "lower_avgpool",
        "l4_adjust",
        "input_bits",  # after the folds: the automatic width is chosen on the first layer Loihi runs
        "quantize",  # LIF networks
        "quantize_sdnn",  # sigma-delta networks (each pass leaves the other kind alone)
        "check_ranges",
    ]


def test_dropout_is_dropped_and_has_the_input_shape():
    w = np.ones((2, 3))
    net = _net([ir.Dropout("d", 0.5), ir.Dense("fc", w, None, N)], shape=(3,))
    assert ir.infer_shapes(net) == [(3,), (2,)]
    assert [layer.name for layer in compile_network(net, CFG).layers] == ["fc"]
    with pytest.raises(LoihicError, match="outside"):
        ir.Dropout("d", 1.0)


def test_fold_batchnorm_matches_torch(rng):
    w, b = rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4)
    bn = ir.BatchNorm("bn", rng.normal(size=4), rng.random(4) + 0.5, rng.normal(size=4), rng.normal(size=4))
    net = _net([ir.Conv("c", w, b, N, padding=1), bn], shape=(3, 6, 6))
    folded = fold_batchnorm(net, CFG)
    assert len(folded.layers) == 1 and net.layers[1] is bn  # input untouched (pure)
    x = torch.as_tensor(rng.normal(size=(2, 3, 6, 6)))
    want = F.batch_norm(
        F.conv2d(x, torch.as_tensor(w), torch.as_tensor(b), padding=1),
        torch.tensor(bn.mean),
        torch.tensor(bn.var),
        torch.tensor(bn.gamma),
        torch.tensor(bn.beta),
        eps=bn.eps,
    )
    c = folded.layers[0]
    got = F.conv2d(x, torch.tensor(c.weight), torch.tensor(c.bias), padding=1)
    torch.testing.assert_close(got, want, rtol=FLOAT_REWRITE_RTOL, atol=FLOAT_REWRITE_ATOL)


def test_batchnorm_without_synapse_is_refused(rng):
    bn = ir.BatchNorm("bn", np.zeros(1), np.ones(1), np.ones(1), np.zeros(1))
    with pytest.raises(UnsupportedLayerError, match="'bn'"):
        fold_batchnorm(_net([bn, ir.Flatten("f"), ir.Dense("d", rng.normal(size=(2, 144)), None, N)]), CFG)


@pytest.mark.parametrize(
    "size,k,s,conv_pad,conv_stride", [(12, 2, 2, 0, 1), (12, 2, 2, 2, 1), (10, 2, 2, 1, 2), (12, 3, 3, 1, 1)]
)
def test_avgpool_into_conv_exact(rng, size, k, s, conv_pad, conv_stride):
    w2 = rng.normal(size=(5, 4, 3, 3))
    layers = [
        ir.Conv("c1", rng.normal(size=(4, 1, 3, 3)), None, N, padding=1),
        ir.AvgPool("p", k, s),
        ir.Conv("c2", w2, None, N, padding=conv_pad, stride=conv_stride),
    ]
    net = _net(layers, shape=(1, size, size))
    low = lower_avgpool(net, CFG)
    assert [type(lay).__name__ for lay in low.layers] == ["Conv", "Conv"]
    spikes = torch.as_tensor((rng.random((3, 4, size, size)) < 0.5).astype(np.float64))
    want = F.conv2d(F.avg_pool2d(spikes, k, s), torch.as_tensor(w2), padding=conv_pad, stride=conv_stride)
    c = low.layers[1]
    got = F.conv2d(spikes, torch.tensor(c.weight), stride=c.stride, padding=c.padding)
    torch.testing.assert_close(got, want, rtol=FLOAT_REWRITE_RTOL, atol=FLOAT_REWRITE_ATOL)
    assert ir.infer_shapes(low)[-1] == ir.infer_shapes(net)[-1]


def test_avgpool_into_dense_exact(rng):
    wd = rng.normal(size=(7, 4 * 3 * 3))
    net = _net(
        [
            ir.Conv("c1", rng.normal(size=(4, 1, 3, 3)), None, N, padding=1),
            ir.AvgPool("p", 2, 2),
            ir.Flatten("f"),
            ir.Dense("d", wd, None, N),
        ],
        shape=(1, 7, 7),
    )  # 7 = odd: last row dropped
    low = lower_avgpool(net, CFG)
    spikes = torch.as_tensor((rng.random((3, 4, 7, 7)) < 0.5).astype(np.float64))
    want = F.avg_pool2d(spikes, 2, 2).flatten(1) @ torch.as_tensor(wd).T
    got = spikes.flatten(1) @ torch.tensor(low.layers[2].weight).T
    torch.testing.assert_close(got, want, rtol=FLOAT_REWRITE_RTOL, atol=FLOAT_REWRITE_ATOL)


def test_avgpool_at_end_is_refused(rng):
    net = _net([ir.Conv("c1", rng.normal(size=(2, 1, 3, 3)), None, N), ir.AvgPool("p", 2, 2)])
    with pytest.raises(UnsupportedLayerError, match="'p'"):
        lower_avgpool(net, CFG)


def _dense_net(rng, threshold=1.0, steps=16, spiking_out=False, encoding="poisson", bias=None):
    w1, w2 = rng.normal(size=(6, 5)) * 0.3, rng.normal(size=(3, 6)) * 0.3
    out = ir.Neuron(1.0, spiking=False) if not spiking_out else ir.Neuron(0.8)
    return ir.Network(
        ir.Input((5,)),
        (ir.Dense("d1", w1, bias, ir.Neuron(threshold, voltage_decay=0.05)), ir.Dense("d2", w2, None, out)),
        timesteps=steps,
        encoding=encoding,
    )


def test_quantize_keeps_threshold_weight_ratio(rng):
    net = compile_network(_dense_net(rng))
    d1 = net.layers[0]
    q = d1.quant
    assert q.weight.dtype == np.int64 and np.abs(q.weight).max() <= 254
    ratio_float = d1.neuron.threshold / np.abs(d1.weight).max()
    ratio_int = q.v_th_mant / np.abs(q.weight).max()
    assert abs(ratio_int / ratio_float - 1) < 0.01
    assert q.v_decay == round(0.05 * 4096) and q.i_decay == 4096
    assert net.layers[1].quant.v_th_mant == 1 << 17  # integrator readout never fires


def test_direct_encoding_scales_first_threshold(rng):
    spikes = compile_network(_dense_net(rng)).layers[0].quant
    direct = compile_network(_dense_net(rng, encoding="direct")).layers[0].quant
    assert direct.in_scale == 255 and spikes.in_scale == 1
    assert abs(direct.v_th_mant / (direct.scale * 255) - spikes.v_th_mant / spikes.scale) < 0.01


def test_readout_scale_limited_by_voltage_range(rng):
    net = compile_network(_dense_net(rng, steps=3000))
    assert net.meta["scale_limited_by"]["d2"] == "readout voltage range"
    check_ranges(net, CFG)  # and the result passes its own check


def test_soft_reset_refused_unless_forced(rng):
    net = _dense_net(rng)
    soft = net.replace(
        layers=(net.layers[0].__class__("d1", net.layers[0].weight, None, ir.Neuron(1.0, reset="soft")), net.layers[1])
    )
    with pytest.raises(QuantizationError, match="soft reset"):
        compile_network(soft)
    assert compile_network(soft, CompileConfig(force_hard_reset=True)).layers[0].quant is not None


def test_tiny_threshold_and_zero_weights_refused(rng):
    with pytest.raises(QuantizationError, match="'d1'.*rounds to 0"):
        compile_network(_dense_net(rng, threshold=1e-9))
    net = _dense_net(rng)
    zero = net.replace(layers=(ir.Dense("d1", np.zeros((6, 5)), None, N), net.layers[1]))
    with pytest.raises(QuantizationError, match="'d1'.*zero"):
        quantize(zero, CFG)


def test_check_ranges_reports_layer_and_margin(rng):
    net = compile_network(_dense_net(rng, steps=16))
    d2 = net.layers[1]
    big = ir.Quant(
        weight=np.full_like(d2.quant.weight, 254),
        bias=None,
        v_th_mant=1 << 17,
        i_decay=4096,
        v_decay=0,
        scale=1.0,
        in_scale=1,
        sqnr_db=0.0,
    )
    bad = net.replace(layers=(net.layers[0], ir.Dense("d2", d2.weight, None, d2.neuron, quant=big)), timesteps=10_000)
    with pytest.raises(QuantizationError, match=r"'d2': worst-case readout \|v\|.*exceeds 2\^23-1 by"):
        check_ranges(bad, CFG)
    wrap = bad.replace(
        layers=(
            ir.Dense(
                "d1",
                net.layers[0].weight,
                None,
                net.layers[0].neuron,
                quant=ir.Quant(np.full((6, 5), 254), None, 10, 0, 0, 1.0, 1, 0.0),
            ),
            bad.layers[1],
        )
    )
    with pytest.raises(QuantizationError, match=r"'d1': worst-case \|u\|.*Lava wraps u"):
        check_ranges(wrap, CFG)
