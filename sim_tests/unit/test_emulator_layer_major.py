"""The layer-major emulator (the default) against the step-major one it replaced, and its overflow monitor.

* Random networks (dense and conv stacks, flatten, decays over 0..4096, biases, weight_exp, wrap and clip
  regimes, graded and 24-bit graded input, input neurons): ``mode="layer"`` with the numba and the torch
  recurrence, with blocks cut in samples and in time, equals ``mode="step"`` exactly: spikes of every
  layer, final voltages, the voltage trace and the overflow counts.
* The overflow monitor counts u wraps, v clips and synaptic wraps exactly on small networks built to
  overflow: the synaptic sums and wraps from numpy here, the LIF from lif.py's reference
  (sim_tests/unit/test_neuron_kinds.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from loihic.compiler.ir import conv_out_hw
from loihic.compiler.netx.read import NetxModel, NxConv, NxDense, NxFlatten, NxInput, NxNeuron
from loihic.deploy.emulator import kernels as emulator_kernels
from loihic.deploy.emulator.layer_major import plan_blocks, step_bytes
from loihic.deploy.emulator.network import Emulator, format_overflow, merge_overflow
from sim_tests.unit.test_neuron_kinds import lif_reference

DECAYS = (0, 1, 2, 7, 1000, 2048, 3000, 4095, 4096)
LAYER_BACKENDS = ["numba", "torch"] if emulator_kernels.HAVE_NUMBA else ["torch"]


def _neuron(rng: np.random.Generator, size: int, regime: str) -> NxNeuron:
    i_decay, v_decay = (int(rng.choice(DECAYS)) for _ in range(2))
    vth = int(rng.choice([1, 50, 400, 3000, 60000, (1 << 17) - 1, 1 << 17]))
    if regime == "wrap":  # current never decays under excitatory drive: u climbs past 2^23 and wraps
        i_decay, vth = 0, 1 << 17
    elif regime == "clip":  # u = a << 6 each step, v never leaks and never fires: it clips at 2^23 - 1
        i_decay, v_decay, vth = 4096, 0, 1 << 17
    bias = None if rng.random() < 0.4 else rng.integers(-4096, 4096, size)
    return NxNeuron(vth, i_decay, v_decay, bias)


def _weights(rng: np.random.Generator, shape: tuple[int, ...], regime: str) -> np.ndarray:
    w = rng.integers(-128, 128, shape) * 2
    return np.abs(w) if regime in ("wrap", "clip") else w


def random_model(rng: np.random.Generator) -> tuple[NetxModel, int]:
    """A random feed-forward network and its input message bits (0 = binary)."""
    regime = str(rng.choice(["normal", "normal", "wrap", "clip"]))
    bits = int(rng.choice([0, 0, 3, 8, 24]))
    conv = rng.random() < 0.5
    layers: list = []
    if conv:
        c, h, w = int(rng.integers(1, 4)), int(rng.integers(5, 10)), int(rng.integers(5, 10))
        in_shape = shape = (c, h, w)
        for _ in range(int(rng.integers(1, 3))):
            groups = int(rng.choice([1, 2])) if shape[0] % 2 == 0 else 1
            out_c = groups * int(rng.integers(1, 4))
            k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
            stride, pad = (int(rng.integers(1, 3)), int(rng.integers(1, 3))), (int(rng.integers(0, 2)),) * 2
            dil = (int(rng.integers(1, 3)), 1)
            hw = conv_out_hw(shape[1:], k, stride, pad, dil)
            if min(hw) < 1:
                break
            new = (out_c, *hw)
            weight = _weights(rng, (out_c, shape[0] // groups, *k), regime)
            layers.append(NxConv(weight, stride, pad, dil, groups, _neuron(rng, int(np.prod(new)), regime), new))
            shape = new
        layers.append(NxFlatten((int(np.prod(shape)),)))
        n = int(np.prod(shape))
    else:
        n = int(rng.integers(3, 40))
        in_shape = (n,)
    for _ in range(int(rng.integers(1, 4))):
        out = int(rng.integers(2, 30))
        wexp = int(rng.choice([0, 0, 0, -2, 1]))
        layers.append(NxDense(_weights(rng, (out, n), regime), wexp, _neuron(rng, out, regime), (out,)))
        n = out
    input_neuron = _neuron(rng, int(np.prod(in_shape)), regime) if rng.random() < 0.25 else None
    return NetxModel("<random>", NxInput(in_shape, input_neuron), tuple(layers)), bits


def random_input(rng: np.random.Generator, model: NetxModel, bits: int, batch: int, steps: int) -> np.ndarray:
    shape = (batch, *model.input.shape, steps)
    if bits == 0:
        return (rng.random(shape) < rng.uniform(0.05, 0.9)).astype(np.uint8)
    x = rng.integers(0, 1 << bits, shape) * (rng.random(shape) < 0.6)
    return x.astype(np.int64 if bits > 15 else np.int16)


def _assert_same(ref, res, what: str) -> None:  # noqa: ANN001
    for k, (a, b) in enumerate(zip(ref.layer_spikes, res.layer_spikes, strict=True)):
        assert a.shape == b.shape and a.dtype == b.dtype, f"{what}: layer {k} {a.shape} vs {b.shape}"
        if not np.array_equal(a, b):
            first = np.argwhere(a != b)[0]
            raise AssertionError(f"{what}: layer {k} spikes differ first at (sample, neuron..., step) {first}")
    assert np.array_equal(ref.output_spikes, res.output_spikes), what
    assert np.array_equal(ref.output_v, res.output_v), f"{what}: final v"
    assert np.array_equal(ref.output_v_trace, res.output_v_trace), f"{what}: v trace"
    assert ref.overflow == res.overflow, f"{what}: overflow {ref.overflow} vs {res.overflow}"


def test_layer_major_equals_step_major_on_random_networks():
    rng = np.random.default_rng(2026)
    seen = {"u": 0, "v": 0, "syn": 0, "conv": 0, "graded": 0, "input_neuron": 0, "spikes": 0}
    for case in range(80):
        model, bits = random_model(rng)
        batch, steps = int(rng.integers(1, 5)), int(rng.integers(1, 25))
        x = random_input(rng, model, bits, batch, steps)
        kw = dict(record_layers=True, record_v=True, check_overflow=True)
        ref = Emulator(model, "cpu", input_message_bits=bits, mode="step").run(x, **kw)
        for backend in LAYER_BACKENDS:
            res = Emulator(model, "cpu", input_message_bits=bits, backend=backend).run(x, **kw)
            _assert_same(ref, res, f"case {case} ({backend})")
        # blocks of one sample and 3 steps: state carried across time blocks
        tiny = Emulator(model, "cpu", input_message_bits=bits, memory_mb=3 * step_bytes_of(model, bits) / 2**20)
        assert plan_blocks(tiny, batch, steps)[1] == min(3, steps)
        _assert_same(ref, tiny.run(x, **kw), f"case {case} (time blocks)")
        seen["u"] += any(o.u_wraps for o in ref.overflow)
        seen["v"] += any(o.v_clips for o in ref.overflow)
        seen["syn"] += any(o.synapse_wraps for o in ref.overflow)
        seen["conv"] += any(isinstance(lay, NxConv) for lay in model.layers)
        seen["graded"] += bits > 0
        seen["input_neuron"] += model.has_input_neuron
        seen["spikes"] += int(sum(s.sum() for s in ref.layer_spikes) > 0)
    assert min(seen.values()) >= 2, seen  # every regime was reached by at least two networks


def test_without_numba_the_torch_path_is_used_and_equal(monkeypatch):
    """What runs on CUDA (torch recurrence, torch layout changes), here on the CPU: numba hidden."""
    rng = np.random.default_rng(7)
    monkeypatch.setattr(emulator_kernels, "HAVE_NUMBA", False)
    for case in range(12):
        model, bits = random_model(rng)
        x = random_input(rng, model, bits, int(rng.integers(1, 4)), int(rng.integers(1, 15)))
        kw = dict(record_layers=True, record_v=True, check_overflow=True)
        emu = Emulator(model, "cpu", input_message_bits=bits)
        assert emu.backend == "torch"
        ref = Emulator(model, "cpu", input_message_bits=bits, mode="step").run(x, **kw)
        _assert_same(ref, emu.run(x, **kw), f"case {case} (no numba)")
    with pytest.raises(ValueError, match="numba"):
        Emulator(model, "cpu", backend="numba")


def step_bytes_of(model: NetxModel, bits: int) -> int:
    return step_bytes(Emulator(model, "cpu", input_message_bits=bits))


def test_blocks_fit_the_memory_budget():
    rng = np.random.default_rng(5)
    w = rng.integers(-128, 128, (64, 784)) * 2
    model = NetxModel("<mem>", NxInput((784,), None), (NxDense(w, 0, NxNeuron(300, 1024, 256, None), (64,)),))
    per_step = step_bytes(Emulator(model, "cpu"))
    assert per_step >= 784 * 4 + 64 * 8  # input (float32) + accumulator and spikes
    for mb, batch, steps in [(1024, 10_000, 100), (16, 10_000, 100), (1, 50, 1000), (0.01, 3, 100)]:
        emu = Emulator(model, "cpu", memory_mb=mb)
        bc, tc = plan_blocks(emu, batch, steps)
        assert 1 <= bc <= batch and 1 <= tc <= steps
        assert bc * tc * per_step <= max(mb * 2**20, per_step)  # one step always runs
        if bc * steps * per_step > mb * 2**20:
            assert bc == 1 and tc < steps  # cut in time only when one sample does not fit
    x = (rng.random((7, 784, 40)) < 0.2).astype(np.uint8)
    whole = Emulator(model, "cpu").run(x, record_layers=True, record_v=True)
    cut = Emulator(model, "cpu", memory_mb=0.2).run(x, record_layers=True, record_v=True)
    assert plan_blocks(Emulator(model, "cpu", memory_mb=0.2), 7, 40)[1] < 40
    _assert_same(whole, cut, "0.2 MB blocks")


def test_options_are_checked():
    model = NetxModel("<m>", NxInput((3,), None), (NxDense(np.full((2, 3), 2), 0, NxNeuron(1, 0, 0, None), (2,)),))
    with pytest.raises(ValueError, match="mode"):
        Emulator(model, "cpu", mode="fast")
    with pytest.raises(ValueError, match="backend"):
        Emulator(model, "cpu", backend="cuda")
    with pytest.raises(Exception, match="memory"):
        Emulator(model, "cpu", memory_mb=0)


# --- the overflow monitor against lif.py's reference ----------------------------------------------------
@pytest.mark.parametrize("mode", ["layer", "step"])
@pytest.mark.parametrize(
    "i_decay,v_decay,vth,bits,what",
    [
        (0, 4096, 1 << 17, 0, "u"),  # current never decays: u wraps again and again
        (4096, 0, 1 << 17, 0, "v"),  # no leak, no spike: v clips at 2^23 - 1
        (1024, 256, 900, 0, "none"),  # an ordinary layer: nothing overflows
        (4096, 4096, 1 << 17, 24, "channel"),  # 24-bit graded input: W @ x leaves int32 (channel wrap)
    ],
)
def test_monitor_counts_dense_overflows_exactly(rng, mode, i_decay, v_decay, vth, bits, what):
    n_in, n_out, steps, batch = 30, 9, 80, 3
    w = rng.integers(-100, 128, (n_out, n_in)) * 2
    if what != "none":
        w = np.abs(w)
    neuron = NxNeuron(vth, i_decay, v_decay, None)
    model = NetxModel("<mem>", NxInput((n_in,), None), (NxDense(w, 0, neuron, (n_out,)),))
    if bits:
        x = rng.integers(0, 1 << bits, (batch, n_in, steps))
    else:
        x = (rng.random((batch, n_in, steps)) < 0.6).astype(np.uint8)
    res = Emulator(model, "cpu", input_message_bits=bits, mode=mode).run(x, check_overflow=True)
    wraps = clips = chan = 0
    for k in range(batch):
        acc = w.astype(np.int64) @ (x[k] if bits else (x[k] != 0)).astype(np.int64)
        chan += int((acc != acc.astype(np.int32)).sum())  # Lava's int32 channel wraps it
        s, v, uw, vc = lif_reference(acc, neuron)
        assert np.array_equal(res.output_spikes[k], s) and np.array_equal(res.output_v[k], v)
        wraps, clips = wraps + uw, clips + vc
    (o,) = res.overflow
    assert (o.u_wraps, o.v_clips, o.synapse_wraps) == (wraps, clips, chan)
    assert o.neuron_steps == batch * n_out * steps and o.kind == "dense" and o.layer == 1
    expected = {"u": o.u_wraps, "v": o.v_clips, "channel": o.synapse_wraps, "none": 0}[what]
    assert expected > 0 if what != "none" else not o.any
    if what != "channel":
        assert o.synapse_wraps == 0


@pytest.mark.parametrize("mode", ["layer", "step"])
@pytest.mark.parametrize("bits", [16, 22])
def test_monitor_counts_conv_accumulator_wraps(rng, mode, bits):
    """A graded 3x3 conv whose sums pass 2^23 (Lava's 24-bit conv wrap) and, with 22-bit inputs, 2^31
    (Lava's astype(int32) makes them INT_MIN, which wraps to 0); expected counts from numpy."""
    c_in, c_out, h, wd, steps, batch = 2, 3, 6, 5, 12, 2
    w = np.abs(rng.integers(0, 128, (c_out, c_in, 3, 3)) * 2)
    neuron = NxNeuron(1 << 17, 4096, 4096, None)
    shape = (c_out, h - 2, wd - 2)
    model = NetxModel("<mem>", NxInput((c_in, h, wd), None), (NxConv(w, (1, 1), (0, 0), (1, 1), 1, neuron, shape),))
    x = rng.integers(0, 1 << bits, (batch, c_in, h, wd, steps))
    res = Emulator(model, "cpu", input_message_bits=bits, mode=mode).run(x, check_overflow=True)
    syn = wraps = clips = beyond = 0
    for k in range(batch):
        win = np.lib.stride_tricks.sliding_window_view(x[k], (3, 3), axis=(1, 2))  # (c_in, y, x, T, 3, 3)
        acc = np.einsum("oikl,iyxtkl->oyxt", w, win).reshape(-1, steps)
        a = np.where((acc < -(2**31)) | (acc >= 2**31), -(2**31), acc)
        beyond += int((a != acc).sum())
        wrapped = ((a + 2**23) % 2**24) - 2**23
        syn += int((wrapped != a).sum())
        s, v, uw, vc = lif_reference(wrapped, neuron)
        assert np.array_equal(res.output_spikes[k].reshape(-1, steps), s)
        wraps, clips = wraps + uw, clips + vc
    (o,) = res.overflow
    assert (o.kind, o.u_wraps, o.v_clips, o.synapse_wraps) == ("conv", wraps, clips, syn)
    assert syn > 0 and (beyond > 0) == (bits == 22)
    assert "layer 1 (conv 3x4x3)" in format_overflow(res.overflow)  # netx layer number: layer/0 is the input


@pytest.mark.parametrize("mode", ["layer", "step"])
def test_monitor_counts_input_neuron_wraps(rng, mode):
    """An input neuron (layer 0) driven with large graded a_in wraps u; the dense layer after it is
    counted separately."""
    n_in, steps, batch = 10, 30, 2
    in_neuron = NxNeuron(1 << 16, 0, 4096, None)  # u never decays: (x << 6) accumulates past 2^23
    w = rng.integers(-100, 128, (4, n_in)) * 2
    model = NetxModel("<mem>", NxInput((n_in,), in_neuron), (NxDense(w, 0, NxNeuron(50, 2048, 1024, None), (4,)),))
    x = rng.integers(0, 1 << 14, (batch, n_in, steps))
    res = Emulator(model, "cpu", input_message_bits=14, mode=mode).run(x, record_layers=True, check_overflow=True)
    wraps = clips = 0
    for k in range(batch):
        s, _, uw, vc = lif_reference(x[k], in_neuron)
        assert np.array_equal(res.layer_spikes[0][k], s)
        wraps, clips = wraps + uw, clips + vc
    o_in, o_dense = res.overflow
    assert (o_in.layer, o_in.kind, o_in.u_wraps, o_in.v_clips) == (0, "input", wraps, clips) and wraps > 0
    assert (o_dense.layer, o_dense.kind) == (1, "dense")
    twice = merge_overflow(res.overflow, res.overflow)
    assert twice[0].u_wraps == 2 * wraps and twice[1].neuron_steps == 2 * o_dense.neuron_steps


def test_monitor_off_by_default_and_changes_nothing(rng):
    w = rng.integers(-128, 128, (5, 12)) * 2
    model = NetxModel("<m>", NxInput((12,), None), (NxDense(w, 0, NxNeuron(100, 0, 4096, None), (5,)),))
    x = (rng.random((4, 12, 50)) < 0.7).astype(np.uint8)
    plain = Emulator(model, "cpu").run(x, record_layers=True)
    watched = Emulator(model, "cpu").run(x, record_layers=True, check_overflow=True)
    assert plain.overflow is None and watched.overflow is not None
    assert np.array_equal(plain.output_spikes, watched.output_spikes)
    assert np.array_equal(plain.output_v, watched.output_v)
