"""Compiled sigma-delta networks (IR -> quantize_sdnn -> netx) on Lava equal the emulator exactly, every layer and
step, with images held for T steps (deploy/sdnn_thresholds.hold) in stream timing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loihic.compiler.driver import compile_source
from loihic.compiler.netx.read import read_netx
from loihic.deploy import sdnn_thresholds as st
from loihic.deploy.verification.parity import verify
from sim_tests.unit.test_sdnn_compile import convnet, mlp


@pytest.mark.lava
@pytest.mark.parametrize(("make", "th"), [(mlp, 0.0), (mlp, 0.1), (convnet, 0.05)])
def test_compiled_sdnn_equals_lava(rng: np.random.Generator, tmp_path: Path, make, th: float) -> None:
    net = make(rng, th)
    x = rng.random((2, *net.input.shape))
    res = compile_source(st.calibrate(net, x), tmp_path / "m.net")
    held = st.hold(res.network, x, st.settle_index(net) + 3)
    model = read_netx(res.path, sigma_delta=True)
    rep = verify(str(res.path), held, model=model, progress=False)
    assert rep.stream and rep.identical, rep.first_mismatch
    neurons = np.prod(model.input.shape) + sum(np.prod(lay.shape) for lay in model.neuron_layers)
    assert rep.spikes_compared == held.shape[0] * held.shape[-1] * neurons  # the Delta and every layer, every step
