"""Training's modules from the IR: named networks and their shapes, module order and state_dict keys,
convertibility rules, and the format-1 arch migration's checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loihic.compiler import ir
from loihic.compiler.errors import UnsupportedLayerError
from loihic.compiler.load.checkpoint import module_indices, network_data
from loihic.compiler.load.checkpoint_v1 import layers_from_arch
from loihic.training.models import (
    build_model,
    check_convertible,
    make_network,
    sequential,
    state_dict_from_network,
)

RELU = {"type": "relu"}
FLAT = {"type": "flatten"}
POOL = {"type": "avgpool", "kernel": 2, "stride": 2}


def lin(n_in: int, n_out: int, bias: bool = False) -> dict:
    return {"type": "linear", "in": n_in, "out": n_out, "bias": bias}


def conv(c_in: int, c_out: int) -> dict:
    return {
        "type": "conv",
        "in": c_in,
        "out": c_out,
        "kernel": 3,
        "stride": 1,
        "padding": 1,
        "groups": 1,
        "bias": False,
    }


def dense(name: str, n_in: int, n_out: int, neuron: ir.Neuron = ir.RELU, bias: bool = False) -> ir.Dense:
    return ir.Dense(name, np.zeros((n_out, n_in)), np.zeros(n_out) if bias else None, neuron)


def net_of(shape: tuple[int, ...], *layers: ir.Layer) -> ir.Network:
    return ir.Network(ir.Input(shape), layers, timesteps=ir.ANN_TIMESTEPS, encoding=ir.ANN_ENCODING)


@pytest.mark.parametrize("model", ["mlp", "lenet5", "vgg5", "vgg9"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28)])
def test_make_network_shapes_and_forward(model: str, shape: tuple[int, ...]) -> None:
    if model == "vgg9" and shape == (1, 8, 8):
        with pytest.raises(UnsupportedLayerError, match="empty"):
            make_network(model, shape, 10)
        return
    net = make_network(model, shape, 10)
    check_convertible(net)
    assert ir.infer_shapes(net)[-1] == (10,)
    assert build_model(net).eval()(torch.zeros(2, *shape)).shape == (2, 10)
    assert all(layer.bias is None for layer in net.synaptic())  # Datta et al. sec. V.C: no bias by default
    assert [layer.neuron for layer in net.synaptic()][-1] == ir.READOUT


def test_lenet5_matches_datta_on_28x28() -> None:
    net = make_network("lenet5", (1, 28, 28), 10)
    shapes = ir.infer_shapes(net)
    assert shapes[0] == (6, 28, 28) and shapes[2] == (16, 10, 10) and shapes[4] == (400,)
    assert [layer.name for layer in net.layers][:5] == ["0.conv", "2.avgpool", "3.conv", "5.avgpool", "6.flatten"]
    small = make_network("lenet5", (1, 8, 8), 10)
    assert small.layers[2].weight.shape[2:] == (3, 3) and small.layers[2].padding == (1, 1)


def test_mlp_keeps_format_1_module_order() -> None:
    net = make_network("mlp", (1, 8, 8), 10)
    assert [type(m).__name__ for m in build_model(net)] == ["Flatten", "Linear", "ReLU", "Dropout", "Linear"]
    assert [layer.name for layer in net.layers] == ["0.flatten", "1.linear", "3.dropout", "4.linear"]


def test_state_dict_keys_follow_module_indices() -> None:
    bn = ir.BatchNorm("bn", np.zeros(16), np.ones(16), np.ones(16), np.zeros(16))
    net = net_of((1, 8, 8), ir.Flatten("f"), dense("fc1", 64, 16, bias=True), bn, dense("fc2", 16, 10, ir.READOUT))
    assert module_indices(network_data(net.layers)) == [0, 1, 2, 4]  # the ReLU (3) comes after the batchnorm
    model = build_model(net)
    assert isinstance(model[2], torch.nn.BatchNorm1d) and isinstance(model[3], torch.nn.ReLU)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["1.weight"] == (16, 64) and shapes["1.bias"] == (16,) and shapes["4.weight"] == (10, 16)
    assert shapes == {k: tuple(v.shape) for k, v in state_dict_from_network(net).items()}
    bn4 = ir.BatchNorm("bn", np.zeros(4), np.ones(4), np.ones(4), np.zeros(4))
    conv_net = net_of(
        (1, 8, 8),
        ir.Conv("c", np.zeros((4, 1, 3, 3)), None, ir.RELU, padding=1),
        bn4,
        ir.Flatten("f"),
        dense("fc", 256, 10, ir.READOUT),
    )
    assert isinstance(build_model(conv_net)[1], torch.nn.BatchNorm2d)


@pytest.mark.parametrize(
    ("arch", "match"),
    [
        ([FLAT, {"type": "maxpool", "kernel": 2}], r"arch layer 1: unsupported type 'maxpool'.*average pooling"),
        ([lin(4, 4, bias=True) | {"extra": 1}], r"arch layer 0 \(linear\): keys"),
        ([lin(4, 0)], r"'out' = 0 must be >= 1"),
        ([{"type": "dropout", "p": 1.5}], r"p = 1.5"),
        ([{"type": "batchnorm", "features": 4}], r"batchnorm must directly follow"),
        ([{"type": "linear", "in": 4, "out": 2, "bias": 1}], r"'bias' = 1 is not bool"),
        ([], r"non-empty"),
        ([conv(1, 2), RELU, RELU, FLAT, lin(128, 2)], r"arch layer 2 \(relu\): must directly follow"),
        ([RELU, FLAT, lin(64, 2)], r"arch layer 0 \(relu\)"),
        ([FLAT, lin(64, 8), POOL, RELU, lin(8, 2)], r"arch layer 3 \(relu\)"),
    ],
)
def test_format_1_arch_errors(arch: list, match: str) -> None:
    with pytest.raises(UnsupportedLayerError, match=match):
        layers_from_arch(arch)


def test_format_1_arch_becomes_ir_layers() -> None:
    arch = [conv(1, 4), {"type": "batchnorm", "features": 4}, RELU, POOL, FLAT, lin(64, 10)]
    layers = layers_from_arch(arch)
    assert [d["name"] for d in layers] == ["0.conv", "1.batchnorm", "3.avgpool", "4.flatten", "5.linear"]
    assert layers[0]["spiking"] and not layers[-1]["spiking"] and layers[0]["kernel"] == [3, 3]
    assert module_indices(layers) == [0, 1, 3, 4, 5]


@pytest.mark.parametrize(
    ("layers", "match"),
    [
        ([ir.Flatten("f"), dense("a", 64, 10, ir.READOUT), dense("b", 10, 10, ir.READOUT)], r"'a': a hidden"),
        ([ir.Flatten("f"), dense("a", 64, 10)], r"'a': the last synaptic layer"),
        ([ir.Flatten("f"), dense("a", 64, 8), dense("b", 8, 2, ir.READOUT), ir.Dropout("d", 0.1)], r"'d': nothing"),
    ],
)
def test_check_convertible_errors(layers: list, match: str) -> None:
    with pytest.raises(UnsupportedLayerError, match=match):
        check_convertible(net_of((1, 8, 8), *layers))


def test_check_convertible_accepts_batchnorm_and_input_flatten() -> None:
    bn = ir.BatchNorm("bn", np.zeros(8), np.ones(8), np.ones(8), np.zeros(8))
    bn2 = ir.BatchNorm("bn2", np.zeros(2), np.ones(2), np.ones(2), np.zeros(2))
    check_convertible(
        net_of(
            (1, 8, 8), ir.Flatten("f"), dense("a", 64, 8), bn, ir.Dropout("d", 0.1), dense("b", 8, 2, ir.READOUT), bn2
        )
    )


def test_shape_mismatch_is_reported() -> None:
    with pytest.raises(UnsupportedLayerError, match=r"layer .b.: dense expects 63 inputs"):
        ir.infer_shapes(net_of((1, 8, 8), ir.Flatten("f"), dense("b", 63, 2, ir.READOUT)))


def test_unknown_model() -> None:
    with pytest.raises(UnsupportedLayerError, match="unknown model 'resnet'"):
        make_network("resnet", (1, 8, 8), 10)


@settings(derandomize=True, deadline=None, max_examples=30)
@given(hidden=st.lists(st.integers(1, 32), min_size=0, max_size=3), bias=st.booleans())
def test_any_relu_mlp_is_convertible(hidden: list[int], bias: bool) -> None:
    specs: list = ["flatten"]
    for h in hidden:
        specs += [("linear", h), "relu"]
    specs.append(("linear", 3))
    net = sequential((1, 3, 4), specs, bias)
    check_convertible(net)
    assert build_model(net)(torch.zeros(1, 1, 3, 4)).shape == (1, 3)
