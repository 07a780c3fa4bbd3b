"""Recurrent and delayed layers in the emulator (deploy/emulator/temporal.py): the layer-major path (numba and
torch recurrence) against the step-major reference that runs Lava's synapse buffers literally, on random networks
(recurrent weights, delays 0..62, weight exponents, conv stacks before them, wrap and clip regimes, graded input,
both timings, T down to 1 where netx's reset phase wraps); and the overflow monitor on a recurrent wrap.
(Lava itself: sim_tests/parity/test_temporal_parity.py and the conformance suite.)"""

from __future__ import annotations

import dataclasses

import numpy as np

from loihic.compiler import ir
from loihic.compiler.netx.read import NetxModel, NxDense, NxInput, NxNeuron, read_netx
from loihic.compiler.pipeline import compile_network
from loihic.deploy.emulator.network import Emulator
from loihic.deploy.verification.float_ir import IRModel
from sim_tests.temporal_cases import spikes, write_temporal
from sim_tests.unit.test_emulator_layer_major import LAYER_BACKENDS, _assert_same, random_input, random_model


def temporal_model(rng: np.random.Generator) -> tuple[NetxModel, int]:
    """A random network of sim_tests/unit/test_emulator_layer_major.py with recurrent and delayed dense layers."""
    while True:
        model, bits = random_model(rng)
        if not model.has_input_neuron:
            break
    layers = list(model.layers)
    dense = [k for k, lay in enumerate(layers) if isinstance(lay, NxDense)]
    for k in dense:
        lay = layers[k]
        n_out, n_in = lay.weight.shape
        kind = rng.choice(["rec", "delay", "rec", "plain"]) if k != dense[0] or rng.random() < 0.7 else "delay"
        if kind == "rec":
            w_rec = rng.integers(-128, 128, (n_out, n_out)) * 2
            lay = dataclasses.replace(lay, weight_rec=np.abs(w_rec) if rng.random() < 0.2 else w_rec)
        elif kind == "delay":
            top = int(rng.choice([1, 5, 62]))
            lay = dataclasses.replace(lay, delay=rng.integers(0, top + 1, (n_out, n_in)))
        layers[k] = lay
    return dataclasses.replace(model, layers=tuple(layers)), bits


def test_layer_major_equals_step_major_with_recurrence_and_delays():
    rng = np.random.default_rng(20)
    seen = {"rec": 0, "delay": 0, "stream": 0, "aligned": 0, "short": 0, "spikes": 0, "overflow": 0}
    for case in range(30):
        model, bits = temporal_model(rng)
        if not model.temporal:
            continue
        batch, steps = int(rng.integers(1, 4)), int(rng.choice([1, 2, 3, 9, 20, 70]))
        x = random_input(rng, model, bits, batch, steps)
        stream = bool(rng.random() < 0.5)
        kw = dict(record_layers=True, record_v=True, check_overflow=True)
        ref = Emulator(model, "cpu", input_message_bits=bits, mode="step", stream=stream).run(x, **kw)
        for backend in LAYER_BACKENDS:
            res = Emulator(model, "cpu", input_message_bits=bits, backend=backend, stream=stream).run(x, **kw)
            _assert_same(ref, res, f"case {case} ({backend}, stream={stream})")
        seen["rec"] += any(getattr(lay, "weight_rec", None) is not None for lay in model.layers)
        seen["delay"] += any(getattr(lay, "delay", None) is not None for lay in model.layers)
        seen["stream" if stream else "aligned"] += 1
        seen["short"] += steps <= 3
        seen["spikes"] += int(sum(s.sum() for s in ref.layer_spikes) > 0)
        seen["overflow"] += any(o.any for o in ref.overflow)
    assert min(seen.values()) >= 2, seen


def test_recurrent_wrap_is_counted_and_equal():
    """Self-excitation with no current decay: u climbs through the recurrent synapse alone and wraps."""
    n = 3
    neuron = NxNeuron(v_th_mant=1, i_decay=0, v_decay=4096, bias=None)
    w = np.full((n, 2), 254)
    lay = NxDense(w, 0, neuron, (n,), weight_rec=np.full((n, n), 254))
    model = NetxModel("<rec>", NxInput((2,), None, declared=False), (lay,))
    x = np.ones((2, 2, 200), np.uint8)
    kw = dict(record_layers=True, check_overflow=True)
    ref = Emulator(model, "cpu", mode="step", stream=True).run(x, **kw)
    assert ref.overflow[0].u_wraps > 0
    for backend in LAYER_BACKENDS:
        _assert_same(ref, Emulator(model, "cpu", backend=backend, stream=True).run(x, **kw), backend)


def test_aligned_emulator_is_the_ir_equations(tmp_path):
    """Without biases (nothing fires before a sample arrives) and with exact integer arithmetic (weights on the
    integer grid, iDecay 4096, vDecay 0), the aligned emulator computes the IR's float equations
    (``ir.Dense``: ``u[t] = W s_in[t] + W_rec s[t-1]``, synapse (i, j) delivering ``s_j[t - delay_ij]``) spike for
    spike: the float reference (deploy/verification/float_ir.py) and the compiled file agree."""
    rng = np.random.default_rng(4)
    sizes, layers = (10, 14, 9, 4), []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = rng.integers(-60, 128, (n_out, n_in)) * 2 / 64.0
        w.flat[0] = 254 / 64.0  # the largest weight sets the scale to 64: every weight exact
        w_rec = rng.integers(-100, 60, (n_out, n_out)) * 2 / 64.0 if k == 1 else None
        delay = rng.integers(0, 6, (n_out, n_in)) if k != 1 else None
        neuron = ir.Neuron(threshold=3.0, current_decay=1.0, voltage_decay=0.0)
        layers.append(ir.Dense(f"fc{k}", w, None, neuron, weight_rec=w_rec, delay=delay))
    net = ir.Network(ir.Input((sizes[0],)), tuple(layers), 30, "poisson")
    x = spikes(9, 4, sizes[0], 30, 0.3)
    assert all(abs(lay.quant.scale - 64) < 1e-3 for lay in compile_network(net).synaptic())
    model = read_netx(write_temporal(tmp_path / "f.net", net))
    emu = Emulator(model, "cpu").run(x, record_layers=True)
    ref = IRModel(net).simulate(x, record=True)
    for k, (a, b) in enumerate(zip(emu.layer_spikes, ref.spikes, strict=True)):
        assert np.array_equal(a, b.numpy().astype(np.uint8)), f"layer {k}"
    assert sum(int(a.sum()) for a in emu.layer_spikes) > 50
