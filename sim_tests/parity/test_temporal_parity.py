"""Recurrent ('dense_rec') and delayed ('delay') layers: the emulator against Lava's RecurrentDense and DelayDense,
spike for spike, in both timings, through the verification ``loihic verify`` runs (Lava)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from loihic.compiler.netx.read import read_netx
from loihic.deploy.verification.parity import verify
from sim_tests.temporal_cases import spikes, temporal_net, write_temporal
from sim_tests.tolerances import SPIKES_EXACT

pytestmark = pytest.mark.lava


def _identical(path, x, stream):  # noqa: ANN001
    rep = verify(str(path), x, stream=stream, progress=False)
    assert rep.mismatches == SPIKES_EXACT, f"first divergence: {rep.first_mismatch}"
    assert rep.identical and rep.stream == stream
    return rep


@pytest.mark.parametrize("stream", [False, True])
def test_recurrent_and_delayed_chain(tmp_path, stream):
    # 12 -> 16 (delays 0..10 per synapse) -> 10 (recurrent) -> 5 (delays), biases, leaky currents
    net = temporal_net(7, recurrent=(1,), delayed=(0, 2), max_delay=10, timesteps=30)
    path = write_temporal(tmp_path / "t.net", net)
    rep = _identical(path, spikes(3, 2, 12, 30, 0.25), stream)
    assert rep.recurrent_layers == [2] and rep.delayed_layers == [1, 3] and rep.max_delay == 10
    assert "one Lava network per sample" in rep.temporal_note
    assert rep.spikes_compared == 2 * 30 * (16 + 10 + 5)


def test_lava_dl_forms_with_weight_exponents(tmp_path):
    """Files as lava-dl writes them, whose weights netx re-scales (weight_exp != 0): a 'dense_rec' with odd
    recurrent weights beside even ones (one shared exponent for both synapses) and a per-output delay on odd
    weights (DelayDense shifts each delay value's sum of each step on its own)."""
    rng = np.random.default_rng(11)
    path = tmp_path / "lavadl.net"
    with h5py.File(path, "w") as f:
        g = f.create_group("layer/0")
        g.create_dataset("type", (1,), "S10", [b"dense_rec"])
        g["shape"] = np.array([9])
        g["weight"] = rng.integers(-60, 60, (9, 8)).astype(np.float32) * 2
        g["weight_rec"] = rng.integers(-15, 15, (9, 9)).astype(np.float32) * 2 + 1
        g2 = f.create_group("layer/1")
        g2.create_dataset("type", (1,), "S10", [b"dense"])
        g2["shape"] = np.array([4])
        g2["weight"] = rng.integers(-40, 40, (4, 9)).astype(np.float32) * 2 + 1
        g2["delay"] = np.array([0.0, 3.0, 7.0, 12.0])  # slayer: floor(delay) per output neuron, float
        for grp, vth in ((g, 60), (g2, 40)):
            n = grp.create_group("neuron")
            n.create_dataset("type", (1,), "S10", [b"CUBA"])
            n["vThMant"], n["iDecay"], n["vDecay"], n["refDelay"] = vth, 1024, 512, 1
    model = read_netx(path)
    assert [lay.weight_exp for lay in model.layers] != [0, 0]
    _identical(path, spikes(5, 2, 8, 40, 0.3), stream=False)
