"""IR validation: frozen, read-only arrays, one-line errors naming the layer (Lava-free)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from loihic.compiler import ir
from loihic.compiler.errors import LoihicError, UnsupportedLayerError


def test_frozen_and_read_only(rng):
    d = ir.Dense("d", rng.normal(size=(2, 3)), None, ir.Neuron(1.0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.name = "x"  # type: ignore[misc]
    with pytest.raises(ValueError):
        d.weight[0, 0] = 1.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_rejected(bad):
    w = np.ones((2, 3))
    w[1, 2] = bad
    with pytest.raises(LoihicError, match="layer 'fc': weight: contains non-finite"):
        ir.Dense("fc", w, None, ir.Neuron(1.0))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": 1.0, "voltage_decay": 1.5}, "voltage_decay"),
        ({"threshold": 1.0, "reset": "sideways"}, "reset"),
    ],
)
def test_neuron_validation(kwargs, match):
    with pytest.raises(LoihicError, match=match):
        ir.Neuron(**kwargs)


def test_shape_inference_and_mismatch(rng):
    n = ir.Neuron(1.0)
    net = ir.Network(
        ir.Input((1, 8, 8)),
        (
            ir.Conv("c", rng.normal(size=(4, 1, 3, 3)), None, n, stride=2, padding=1),
            ir.Flatten("f"),
            ir.Dense("d", rng.normal(size=(3, 64)), None, n),
        ),
        timesteps=4,
        encoding="poisson",
    )
    assert ir.infer_shapes(net) == [(4, 4, 4), (64,), (3,)]
    bad = net.replace(layers=(*net.layers[:2], ir.Dense("d", rng.normal(size=(3, 65)), None, n)))
    with pytest.raises(UnsupportedLayerError, match="layer 'd': dense expects 65 inputs"):
        ir.infer_shapes(bad)


def test_network_needs_a_synapse_and_unique_names(rng):
    with pytest.raises(LoihicError, match="no dense or conv"):
        ir.Network(ir.Input((4,)), (ir.Flatten("f"),), timesteps=1, encoding="poisson")
    d = ir.Dense("d", rng.normal(size=(2, 4)), None, ir.Neuron(1.0))
    with pytest.raises(LoihicError, match="duplicate"):
        ir.Network(ir.Input((4,)), (d, d), timesteps=1, encoding="poisson")
