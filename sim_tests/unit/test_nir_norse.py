"""Norse's NIR export (norse 1.1.0 ``to_nir``, installed by ``make setup-norse``, run by ``make test-norse``):
its convention (tau = dt * tau_true, the current as a jump) recognised with ``--from norse``; the float IR
spike-identical to Norse's own forward, the compiled network close to it, Lava identical."""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest

from sim_tests.unit.test_cli_bad_input import assert_refused, run_cli
from sim_tests.unit.test_nir_recurrent import ir_float, with_always_on

norse = pytest.importorskip("norse.torch", reason="make setup-norse installs Norse")
pytestmark = pytest.mark.norse

STEPS = 60


def _norse_graph(path: Path) -> tuple[object, np.ndarray, np.ndarray]:
    """A Norse network (Linear -> LIFCell 24 -> Linear -> LIFCell 6; 5 ms synapse, 10 ms membrane at Norse's
    dt = 1e-3), written by ``to_nir``; its own output spikes on random input spikes."""
    import torch
    from norse.torch.utils.export_nir import to_nir

    torch.manual_seed(0)

    def params(n: int) -> object:  # per-neuron tensors: Norse's scalar defaults break nir.write
        return norse.LIFParameters(
            tau_syn_inv=torch.full((n,), 200.0),
            tau_mem_inv=torch.full((n,), 100.0),
            v_leak=torch.zeros(n),
            v_th=torch.ones(n),
            v_reset=torch.zeros(n),
        )

    net = norse.SequentialState(
        torch.nn.Linear(10, 24), norse.LIFCell(params(24)), torch.nn.Linear(24, 6), norse.LIFCell(params(6))
    )
    with torch.no_grad():
        net[0].weight.mul_(20)
        net[2].weight.mul_(20)
        net[0].bias.mul_(5)
    nir.write(path, to_nir(net, torch.rand(10)))  # an unbatched sample: a batched one breaks type inference
    x = (np.random.default_rng(0).random((30, 10, STEPS)) < 0.3).astype(np.uint8)
    state, outs = None, []
    with torch.no_grad():
        for t in range(STEPS):
            z, state = net(torch.tensor(x[..., t], dtype=torch.float32), state)
            outs.append(z.numpy())
    return net, x, np.stack(outs, -1)


@pytest.mark.lava
def test_norse_graph_compiles_with_from_norse_and_follows_norse(tmp_path: Path) -> None:
    import loihic
    from loihic.compiler.load.nir import network_from_nir

    _, x, ref = _norse_graph(tmp_path / "n.nir")
    assert ref.sum() > 100
    graph = nir.read(tmp_path / "n.nir")
    assert float(np.asarray(graph.nodes["1"].tau_mem).max()) == pytest.approx(1e-5)  # dt * tau_true
    net = network_from_nir(graph, STEPS, 1e-3, "n.nir", convention="norse")
    np.testing.assert_array_equal(ir_float(net, with_always_on(net, x))[-1], ref)  # Norse's forward, exactly
    # without --from norse the 1e-5 s time constants are refused, and the message says what to pass
    assert_refused(run_cli(tmp_path, "compile", "n.nir", "-T", str(STEPS), "-o", "m.net"), "--from norse")
    res = run_cli(tmp_path, "compile", "n.nir", "-T", str(STEPS), "--from", "norse", "-o", "m.net")
    assert res.rc == 0, res.stderr
    out = loihic.simulate(tmp_path / "m.net", x).output_spikes
    counts, ref_counts = out.sum(-1), ref.sum(-1)
    assert np.corrcoef(counts.ravel(), ref_counts.ravel())[0, 1] >= 0.95
    assert (counts.argmax(1) == ref_counts.argmax(1)).mean() >= 0.8
    lava = loihic.simulate(tmp_path / "m.net", x[:2], backend="lava-sim")
    np.testing.assert_array_equal(lava.output_spikes, out[:2])
