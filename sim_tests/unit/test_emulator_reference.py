"""The emulator against lif.py's reference (Lava-free): whole networks (a dense layer over 40 inputs, batches,
biases, decays, the u wrap) against the LIF reference of sim_tests/unit/test_neuron_kinds.py run on
``W @ x`` one sample at a time, and graded against binary input.

The reference is deploy/emulator/lif.py's step on numpy arrays (the one definition of Lava's LIF, lava-nc
0.10.0 ``proc/lif/models.py`` PyLifModelBitAcc); the conformance tests (sim_tests/conformance) and the Lava
parity tests close the loop against Lava itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from loihic.compiler.netx.read import NetxModel, NxDense, NxInput, NxNeuron
from loihic.deploy.emulator.network import Emulator
from sim_tests.unit.test_neuron_kinds import lif_reference


def _lif_reference(a_seq: np.ndarray, n: NxNeuron) -> tuple[np.ndarray, np.ndarray, bool]:
    spikes, v, wraps, _ = lif_reference(a_seq, n)
    return spikes, v, wraps > 0


@pytest.mark.parametrize(
    "i_decay,v_decay,bias,wmax,vth",
    [
        (4096, 0, None, 254, 300),  # integrate-and-fire, no leak
        (1024, 256, 40, 254, 900),  # both decays and a bias
        (0, 4096, -30, 254, 100),  # current never decays: u grows until it wraps at 2^23
        (200, 3000, 4000, 200, 131071),  # large bias, high threshold
    ],
)
def test_dense_lif_matches_lif_reference(rng, i_decay, v_decay, bias, wmax, vth):
    n_in, n_out, steps, batch = 40, 12, 120, 5
    w = rng.integers(-wmax // 2, wmax // 2 + 1, (n_out, n_in)) * 2
    if i_decay == 0:
        w = np.abs(w)  # excitatory drive, so that u, which never decays, climbs until it wraps
    b = None if bias is None else rng.integers(-abs(bias), abs(bias) + 1, n_out)
    neuron = NxNeuron(vth, i_decay, v_decay, b)
    model = NetxModel("<mem>", NxInput((n_in,), None), (NxDense(w, 0, neuron, (n_out,)),))
    x = (rng.random((batch, n_in, steps)) < 0.5).astype(np.uint8)
    res = Emulator(model, device="cpu").run(x, record_v=True)
    wrapped = False
    for k in range(batch):
        a = w.astype(np.int64) @ x[k].astype(np.int64)
        ref_s, ref_v, wrap_k = _lif_reference(a, neuron)
        wrapped |= wrap_k
        assert np.array_equal(res.output_spikes[k], ref_s), (
            f"sample {k}: first diff at {np.argwhere(res.output_spikes[k] != ref_s)[:1]}"
        )
        assert np.array_equal(res.output_v[k], ref_v)
    assert wrapped == (i_decay == 0)  # the wrap case really wraps u; the others never do


def test_graded_input_uses_values_binary_uses_nonzero(rng):
    w = rng.integers(-60, 60, (3, 4)) * 2
    neuron = NxNeuron(1 << 17, 4096, 0, None)
    model = NetxModel("<mem>", NxInput((4,), None), (NxDense(w, 0, neuron, (3,)),))
    x = rng.integers(0, 5, (2, 4, 3))
    graded = Emulator(model, "cpu", input_message_bits=8).run(x).output_v
    binary = Emulator(model, "cpu", input_message_bits=0).run(x).output_v
    assert np.array_equal(graded, 64 * np.einsum("oi,nit->no", w, x))
    assert np.array_equal(binary, 64 * np.einsum("oi,nit->no", w, (x != 0).astype(int)))
