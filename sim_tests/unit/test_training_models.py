"""Architectures: make_arch shapes, builder key mapping, convertibility rules."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loihic.compiler.errors import UnsupportedLayerError
from loihic.training.models import (
    build_model,
    check_convertible,
    expected_state_shapes,
    make_arch,
    output_shapes,
    validate_arch,
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


@pytest.mark.parametrize("model", ["mlp", "lenet5", "vgg5", "vgg9"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28)])
def test_make_arch_shapes_and_forward(model: str, shape: tuple[int, ...]) -> None:
    if model == "vgg9" and shape == (1, 8, 8):
        with pytest.raises(UnsupportedLayerError, match="empty"):
            make_arch(model, shape, 10)
        return
    arch = make_arch(model, shape, 10)
    check_convertible(arch)
    assert output_shapes(arch, shape)[-1] == (10,)
    net = build_model(arch).eval()
    assert net(torch.zeros(2, *shape)).shape == (2, 10)
    assert not any(layer.get("bias") for layer in arch)  # Datta et al. sec. V.C: no bias by default


def test_lenet5_matches_datta_on_28x28() -> None:
    arch = make_arch("lenet5", (1, 28, 28), 10)
    shapes = output_shapes(arch, (1, 28, 28))
    assert shapes[0] == (6, 28, 28) and shapes[3] == (16, 10, 10) and shapes[6] == (400,)
    small = make_arch("lenet5", (1, 8, 8), 10)
    assert small[3]["kernel"] == 3 and small[3]["padding"] == 1


def test_state_dict_keys_follow_arch_indices() -> None:
    arch = [FLAT, lin(64, 16, bias=True), {"type": "batchnorm", "features": 16}, RELU, lin(16, 10)]
    shapes = expected_state_shapes(arch)
    assert shapes["1.weight"] == (16, 64) and shapes["1.bias"] == (16,) and shapes["4.weight"] == (10, 16)
    assert "2.running_mean" in shapes
    assert isinstance(build_model(arch)[2], torch.nn.BatchNorm1d)
    conv_arch = [conv(1, 4), {"type": "batchnorm", "features": 4}, RELU, FLAT, lin(4 * 64, 10)]
    assert isinstance(build_model(conv_arch)[1], torch.nn.BatchNorm2d)


@pytest.mark.parametrize(
    ("arch", "match"),
    [
        ([FLAT, {"type": "maxpool", "kernel": 2}], r"arch layer 1: unsupported type 'maxpool'"),
        ([lin(4, 4, bias=True) | {"extra": 1}], r"arch layer 0 \(linear\): keys"),
        ([lin(4, 0)], r"'out' = 0 must be >= 1"),
        ([{"type": "dropout", "p": 1.5}], r"p = 1.5"),
        ([{"type": "batchnorm", "features": 4}], r"batchnorm must directly follow"),
        ([{"type": "linear", "in": 4, "out": 2, "bias": 1}], r"'bias' = 1 is not bool"),
        ([], r"non-empty"),
    ],
)
def test_validate_arch_errors(arch: list, match: str) -> None:
    with pytest.raises(UnsupportedLayerError, match=match):
        validate_arch(arch)


@pytest.mark.parametrize(
    ("arch", "match"),
    [
        ([FLAT, lin(64, 10), lin(10, 10)], r"arch layer 1 \(linear\): a hidden linear layer must be"),
        ([FLAT, lin(64, 10), RELU], r"arch layer 1 \(linear\): the last synaptic layer"),
        ([FLAT, lin(64, 8), POOL, RELU, lin(8, 2)], r"must be followed by relu"),
        ([conv(1, 2), RELU, RELU, FLAT, lin(128, 2)], r"arch layer 2 \(relu\): relu must directly follow"),
        ([RELU, FLAT, lin(64, 2)], r"arch layer 0 \(relu\)"),
        ([FLAT, lin(64, 8), RELU, lin(8, 2), FLAT], r"arch layer 4 \(flatten\)"),
        ([FLAT, RELU], r"no linear or conv"),
    ],
)
def test_check_convertible_errors(arch: list, match: str) -> None:
    with pytest.raises(UnsupportedLayerError, match=match):
        check_convertible(arch)


def test_check_convertible_accepts_batchnorm_and_input_flatten() -> None:
    check_convertible(
        [
            FLAT,
            lin(64, 8),
            {"type": "batchnorm", "features": 8},
            RELU,
            {"type": "dropout", "p": 0.1},
            lin(8, 2),
            {"type": "batchnorm", "features": 2},
        ]
    )


def test_shape_mismatch_is_reported() -> None:
    with pytest.raises(UnsupportedLayerError, match=r"layer .1.linear.: dense expects 63 inputs"):
        output_shapes([FLAT, lin(63, 2)], (1, 8, 8))


def test_unknown_model() -> None:
    with pytest.raises(UnsupportedLayerError, match="unknown model 'resnet'"):
        make_arch("resnet", (1, 8, 8), 10)


@settings(derandomize=True, deadline=None, max_examples=30)
@given(hidden=st.lists(st.integers(1, 32), min_size=0, max_size=3), bias=st.booleans())
def test_any_relu_mlp_is_convertible(hidden: list[int], bias: bool) -> None:
    arch, n = [FLAT], 12
    for h in hidden:
        arch += [lin(n, h, bias), RELU]
        n = h
    arch.append(lin(n, 3, bias))
    check_convertible(arch)
    assert build_model(arch)(torch.zeros(1, 3, 4)).shape == (1, 3)
