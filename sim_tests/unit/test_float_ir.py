"""deploy/verification/float_ir.py, the float reference of any IR network: against NIR's own equations (single
neurons, every spiking kind) and against the float SNN of a converted checkpoint (training/snn.py), an independent
implementation of the same equations."""

from __future__ import annotations

import numpy as np
import pytest

from loihic.compiler.load.checkpoint import network_from_checkpoint
from loihic.compiler.load.nir import network_from_nir
from loihic.deploy.verification.float_ir import IRModel
from loihic.training.ann import train_ann
from loihic.training.convert import convert
from loihic.training.data import load_dataset
from loihic.training.snn import SNNModel, encode_chunks
from sim_tests.unit.test_nir_frontend import DT, _euler, _graph, _node, _params


@pytest.mark.parametrize("kind", ["LIF", "CubaLIF", "IF"])
def test_single_nir_neurons(kind: str) -> None:
    rng = np.random.default_rng(10 + ["LIF", "CubaLIF", "IF"].index(kind))
    n, n_in, steps = 5, 3, 80
    w, b = rng.normal(0.8, 0.5, (n, n_in)), rng.normal(0, 0.05, n)
    if kind.startswith("Cuba"):
        b = np.zeros(n)
    p = _params(kind, n, rng)
    s = (rng.random((steps, n_in)) < 0.4).astype(float)
    z_ref, _ = _euler(kind, p, w, b, s, DT)
    net = network_from_nir(_graph(w, b, _node(kind, p), n_in), steps, DT)
    run = IRModel(net).simulate(s.T[None], record=True)
    assert z_ref.sum() > 5, "the case should spike"
    np.testing.assert_array_equal(run.spikes[0][0].numpy().T, z_ref)
    np.testing.assert_array_equal(run.output[0].numpy(), z_ref.sum(0))


def test_matches_the_float_snn_of_a_converted_checkpoint() -> None:
    x, _ = load_dataset("digits", "train")
    ann = train_ann("mlp", "digits", 2, 0, hidden=32, progress=False)
    ckpt = convert(ann, x, 16, calib_samples=64, progress=False)
    _, spikes = next(encode_chunks(x[:40], 16, ckpt["snn"]["encoding"], 0))
    ref = SNNModel.from_checkpoint(ckpt).simulate(spikes, record=True)
    got = IRModel(network_from_checkpoint(ckpt, "ckpt")).simulate(spikes, record=True)
    assert len(got.spikes) == len(ref.spikes) == 1
    a, b = ref.spikes[0].numpy(), got.spikes[0].numpy()
    assert a.sum() > 100
    # float32 (SNNModel) against float64 (IRModel): a voltage within rounding of the threshold may fall either side
    assert (a != b).mean() < 1e-3, (a != b).sum()
    np.testing.assert_allclose(got.output.numpy(), ref.output.numpy(), rtol=1e-3, atol=1e-3 * np.abs(a).max())
