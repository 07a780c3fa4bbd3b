"""The emulator against a plain numpy transcription of Lava's fixed_pt models (Lava-free oracle).

The reference below follows lava-nc 0.10.0 ``proc/lif/models.py`` (AbstractPyLifModelFixed
.subthr_dynamics, PyLifModelBitAcc) and ``proc/dense/models.py`` statement by statement, with
numpy's own int32 semantics, one sample at a time.  The Lava parity tests then close the loop
against Lava itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from loihic.compiler.netx.read import NetxModel, NxDense, NxInput, NxNeuron
from loihic.deploy.emulator.network import Emulator


def _lif_counts(a_seq: np.ndarray, n: NxNeuron) -> tuple[np.ndarray, np.ndarray, int, int]:
    """lava-nc 0.10.0 PyLifModelBitAcc on one sample, in numpy int32, line by line, counting where u wrapped
    and where v was clipped.  a_seq: (n, T) int64 synaptic input."""
    size = a_seq.shape[0]
    u = np.zeros(size, np.int32)
    v = np.zeros(size, np.int32)
    bias = np.zeros(size, np.int32) if n.bias is None else n.bias.astype(np.int32)
    eff_bias = np.left_shift(bias, 6)
    vth = np.left_shift(np.int32(n.v_th_mant), 6)
    spikes = np.zeros(a_seq.shape, np.uint8)
    wraps = clips = 0
    with np.errstate(over="ignore"):
        for t in range(a_seq.shape[1]):
            a_in = a_seq[:, t].astype(np.int32)  # the int32 channel
            decayed = np.int64(u) * (4096 - n.i_decay)
            decayed = np.int32(np.sign(decayed) * np.right_shift(np.abs(decayed), 12))
            decayed += np.left_shift(a_in, 6)
            wrapped = np.where(decayed > 2**23, decayed - 2**24, decayed)
            wrapped = np.where(wrapped <= -(2**23), decayed + 2**24, wrapped)
            wraps += int((wrapped != decayed).sum())
            u[:] = wrapped
            dv = np.int64(v) * (4096 - n.v_decay)
            dv = np.int32(np.sign(dv) * np.right_shift(np.abs(dv), 12))
            pre = (dv + u + eff_bias).astype(np.int32)
            v[:] = np.clip(pre, -(2**23) + 1, 2**23 - 1)
            clips += int((v != pre).sum())
            s = v > vth
            v[s] = 0
            spikes[:, t] = s
    return spikes, v.astype(np.int64), wraps, clips


def _lif_reference(a_seq: np.ndarray, n: NxNeuron) -> tuple[np.ndarray, np.ndarray, bool]:
    spikes, v, wraps, _ = _lif_counts(a_seq, n)
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
def test_dense_lif_matches_numpy_transcription(rng, i_decay, v_decay, bias, wmax, vth):
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
