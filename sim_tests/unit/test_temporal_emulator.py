"""Recurrent and delayed layers in the emulator (deploy/emulator/temporal.py): the layer-major path (numba and
torch recurrence) against the step-major reference that runs Lava's synapse buffers literally, on random networks
(recurrent weights, delays 0..62, weight exponents, conv stacks before them, wrap and clip regimes, graded input,
both timings, T down to 1 where netx's reset phase wraps); and the overflow monitor on a recurrent wrap.
(Lava itself: sim_tests/parity/test_temporal_parity.py and the conformance suite.)"""

from __future__ import annotations

import dataclasses

import numpy as np

from loihic.compiler.netx.read import NetxModel, NxDense, NxInput, NxNeuron
from loihic.deploy.emulator.network import Emulator
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
    for case in range(40):
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
