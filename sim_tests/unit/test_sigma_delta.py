"""Sigma-delta neurons (netx 'SDNN'): deploy/emulator/sigma_delta.py's integer steps and the graded synapse
(synapse.py ``graded=True``) against Lava's own fixed-point models, and the netx reader's SDNN groups.

* :func:`sdnn_reference` runs a whole :class:`NetxModel` of sigma-delta layers one step at a time with those
  functions on numpy int64, in stream timing (a plain ``netx.hdf5.Network`` run: nothing reset, biases from
  step 1, the source's column ``(t-1) % T`` at step t, one step per synapse).  On lava-dl's PilotNet SDNN
  (its test's network.net and input.npy, sim_tests/golden/lava_dl) it gives lava-dl's output.npy exactly,
  without Lava.
* Marked ``lava``: random integers through Lava's ``Delta`` / ``SigmaDelta`` (ReLU and identity) / ``Sigma``
  behind a graded ``Dense`` or ``Conv`` (``num_message_bits = 16``) on Lava's CPU simulator, in regimes
  that wrap every int32 (the Delta's ``a << 12``, sigma, the dense int32 dot before ``weight_exp``) and
  with thresholds from 0 up; and netx files (a dense SDNN written here, lava-dl's PilotNet SDNN head) run by
  ``netx.hdf5.Network`` against :func:`sdnn_reference` on :func:`read_netx`'s model.  Exact equality.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from loihic.compiler.errors import NetxFormatError
from loihic.compiler.netx import schema
from loihic.compiler.netx.read import NetxModel, NxConv, NxDense, NxFlatten, NxNeuron, NxSigmaDelta, read_netx
from loihic.compiler.netx.write import write_sdnn_neuron
from loihic.deploy.emulator import sigma_delta as sd
from loihic.deploy.emulator import synapse
from sim_tests.golden.lava_dl.make_lava_dl import copy_layers, unpack

I32 = np.iinfo(np.int32)


# --- the reference: a netx SDNN model, step by step ----------------------------------------------------------
def _synapse_sum(layer: NxDense | NxConv, s: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """The exact integer sum a Dense / Conv computes from the upstream messages ``s`` (flat, int64)."""
    if isinstance(layer, NxDense):
        return layer.weight @ s
    x = torch.as_tensor(s.reshape(in_shape), dtype=torch.float64)[None]  # exact below 2^53
    w = torch.as_tensor(layer.weight, dtype=torch.float64)
    out = torch.nn.functional.conv2d(x, w, None, layer.stride, layer.padding, layer.dilation, layer.groups)
    return out[0].numpy().astype(np.int64).ravel()


def _neuron_step(n: NxSigmaDelta, a: np.ndarray, st: dict) -> np.ndarray:
    if n.kind == "sigma":
        st["sigma"] = sd.sigma_step(a, st["sigma"])
        return st["sigma"]
    if n.kind == "delta":
        msg, st["act"], st["residue"] = sd.delta_step(a, st["act"], st["residue"], sd.threshold(n.v_th_mant))
        return msg
    bias12 = sd.bias_term(np.zeros_like(a) if n.bias is None else np.asarray(n.bias, np.int64))
    msg, st["sigma"], st["act"], st["residue"] = sd.sigma_delta_step(
        a, st["sigma"], st["act"], st["residue"], bias12, sd.threshold(n.v_th_mant), n.relu
    )
    return msg


def sdnn_reference(model: NetxModel, x: np.ndarray, steps: int, input_message_bits: int = 0) -> list[np.ndarray]:
    """Every neuron layer's messages (steps, n) of a plain netx run of ``model`` (the input neuron's first if
    there is one).  ``x``: (*model.input.shape, T) int64 in the model's (C, H, W) order, sent as Lava's
    RingBuffer sends it (column ``t % T`` at step t, 0-based)."""
    layers = [lay for lay in model.layers if not isinstance(lay, NxFlatten)]
    shapes, shape = [], model.input.shape
    for lay in model.layers:  # each synaptic layer's input shape
        if not isinstance(lay, NxFlatten):
            shapes.append(shape)
        shape = lay.shape
    zero = lambda n: np.zeros(n, np.int64)  # noqa: E731
    states = [{"sigma": zero(int(np.prod(lay.shape))), "act": 0, "residue": 0} for lay in layers]
    in_state = {"act": 0, "residue": 0}
    bufs = [zero(int(np.prod(lay.shape))) for lay in layers]  # each synapse's a_buff: computed at t - 1
    rec: list[list[np.ndarray]] = [[] for _ in range(len(layers) + model.has_input_neuron)]
    for t in range(steps):
        cur = x[..., t % x.shape[-1]].reshape(-1).astype(np.int64)
        graded = input_message_bits > 0
        if model.has_input_neuron:
            cur, graded = _neuron_step(model.input.neuron, cur, in_state), True
            rec[0].append(cur)
        for k, lay in enumerate(layers):
            s = cur if graded else (cur != 0).astype(np.int64)
            wexp = lay.weight_exp if isinstance(lay, NxDense) else 0
            acc = _synapse_sum(lay, s, shapes[k])
            a, bufs[k] = bufs[k], synapse.synaptic(acc, wexp, isinstance(lay, NxConv), graded)[0]
            cur, graded = _neuron_step(lay.neuron, a, states[k]), lay.neuron.graded
            rec[k + model.has_input_neuron].append(cur)
    return [np.stack(r) for r in rec]


def test_pilotnet_sdnn_reference_gives_lava_dls_output(tmp_path: Path):
    """lava-dl's test_pilotnet_sdnn: its input (W, H, C, T=1) held for 9 steps, the Sigma output sink record."""
    path = unpack("pilotnet_sdnn.net", tmp_path)
    x = np.load(unpack("pilotnet_sdnn_input.npy", tmp_path)).transpose(2, 1, 0, 3).astype(np.int64)
    want = np.load(unpack("pilotnet_sdnn_output.npy", tmp_path))
    model = read_netx(path, sigma_delta=True)
    got = sdnn_reference(model, x, want.shape[-1])[-1]
    assert np.array_equal(got.T, want), (got.T, want)


# --- the steps by hand -----------------------------------------------------------------------------------------
def test_steps_by_hand():
    vth = sd.threshold(1)  # 4096
    assert vth == 4096 and sd.bias_term(np.array([-3])).tolist() == [-3 * 4096]
    # Delta: x = a << 12; sent only when |d| >= vth; the message is floored (>> 6)
    # (a << 12 wraps in int32: 2^19 becomes INT32_MIN, which is never sent, see below)
    msg, act, res = sd.delta_step(np.array([1, 0, -1, 1 << 19, (1 << 19) + 1]), 0, 0, vth)
    assert msg.tolist() == [64, 0, -64, 0, -(1 << 25) + 64]
    assert act.tolist() == [4096, 0, -4096, I32.min, I32.min + 4096] and res.tolist() == [0, 0, 0, I32.min, 0]
    # below threshold: kept in the residue, sent once it adds up
    s, res = sd.delta_encode(np.array([100, 4000]), 0, np.array([0, 100]), vth)
    assert s.tolist() == [0, 4100] and res.tolist() == [100, 0]
    # np.abs(INT32_MIN) is negative in int32: never sent, even at threshold 0
    s, res = sd.delta_encode(np.array([I32.min]), 0, 0, 0)
    assert s.tolist() == [0] and res.tolist() == [I32.min]
    # the floor shift: -1 >> 6 == -1
    assert sd.message(np.array([-1, 63, 64, -64, -65])).tolist() == [-1, 0, 1, -1, -2]
    # SigmaDelta: sigma wraps at 32 bits; ReLU after the bias; identity keeps the sign
    msg, sigma, act, res = sd.sigma_delta_step(np.array([I32.max, -5000]), np.array([1, 0]), 0, 0, 0, 0)
    assert sigma.tolist() == [I32.min, -5000] and act.tolist() == [0, 0] and msg.tolist() == [0, 0]
    msg, sigma, act, res = sd.sigma_delta_step(np.array([-5000]), 0, 0, 0, sd.bias_term(np.array([2])), 0, False)
    assert act.tolist() == [3192] and msg.tolist() == [3192 >> 6]
    assert sd.sigma_step(np.array([I32.max]), np.array([1])).tolist() == [I32.min]


def test_graded_dense_wraps_the_int32_sum_before_weight_exp():
    acc = np.array([(1 << 31) + 8, -(1 << 31) - 8, 1 << 33, 100], np.int64)
    graded, _ = synapse.synaptic(acc, -2, False, graded=True)
    assert graded.tolist() == [-(1 << 29) + 2, (1 << 29) - 2, 0, 25]  # wrap32 first, then the floor shift
    binary, _ = synapse.synaptic(acc, -2, False)
    assert binary.tolist() == [(1 << 29) + 2, -(1 << 29) - 2, -(1 << 31), 25]  # int64 sum, shift, then wrap32
    assert np.array_equal(synapse.synaptic(acc, 0, True, True)[0], synapse.synaptic(acc, 0, True)[0])  # conv


def _numpy_scan(acc: np.ndarray, wexp: int, bias12: np.ndarray, vth: int, relu: bool) -> np.ndarray:
    """Graded dense sums (T, n) -> SigmaDelta messages, then a Delta and a Sigma over those: numpy arrays."""
    n = acc.shape[1]
    sigma, act, res = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    dact, dres, total, out = 0, 0, 0, []
    for t in range(acc.shape[0]):
        a = synapse.synaptic(acc[t], wexp, False, True)[0]
        msg, sigma, act, res = sd.sigma_delta_step(a, sigma, act, res, bias12, vth, relu)
        m2, dact, dres = sd.delta_step(msg, dact, dres, vth)
        total = sd.sigma_step(m2, total)
        out.append(np.stack([msg, m2, total]))
    return np.stack(out)


def test_steps_are_array_generic():
    """The same functions on torch int64 tensors and compiled by numba (register_jitable, int64 scalars, as
    numba_kernels compiles lif.py) give numpy's results, in regimes where every int32 wraps."""
    rng = np.random.default_rng(5)
    acc = rng.integers(-(1 << 40), 1 << 40, (30, 40)) * (rng.random((30, 40)) < 0.5)
    bias12 = sd.bias_term(rng.integers(-300, 300, 40))
    for relu in (True, False):
        want = _numpy_scan(acc, -3, bias12, 4096, relu)
        assert np.count_nonzero(want) > want.size // 4
        tt = lambda x: torch.as_tensor(x)  # noqa: E731
        sigma, act, res = (torch.zeros(40, dtype=torch.int64) for _ in range(3))
        for t in range(acc.shape[0]):
            a = synapse.synaptic(tt(acc[t]), -3, False, True)[0]
            msg, sigma, act, res = sd.sigma_delta_step(a, sigma, act, res, tt(bias12), 4096, relu)
            assert np.array_equal(msg.numpy(), want[t, 0])
        numba = pytest.importorskip("numba")
        got = np.zeros_like(want)
        _numba_scan(numba)(acc, -3, bias12, 4096, relu, got)
        assert np.array_equal(got, want)


_NUMBA_SCAN = []


def _numba_scan(numba):  # noqa: ANN001, ANN202
    if not _NUMBA_SCAN:
        from numba.extending import register_jitable

        fns = (synapse.wrap, synapse.weight_exp, synapse.int32_cast, synapse.synaptic)
        fns += (sd.encode_input, sd.activation, sd.delta_encode, sd.message, sd.delta_step)
        for fn in (*fns, sd.sigma_delta_step, sd.sigma_step):
            register_jitable(inline="always")(fn)

        @numba.njit
        def scan(acc, wexp, bias12, vth, relu, out):  # noqa: ANN001, ANN202, PLR0913
            for j in range(acc.shape[1]):
                sigma, act, res, dact, dres, total = 0, 0, 0, 0, 0, 0
                for t in range(acc.shape[0]):
                    a = synapse.synaptic(acc[t, j], wexp, False, True)[0]
                    msg, sigma, act, res = sd.sigma_delta_step(a, sigma, act, res, bias12[j], vth, relu)
                    m2, dact, dres = sd.delta_step(msg, dact, dres, vth)
                    total = sd.sigma_step(m2, total)
                    out[t, 0, j], out[t, 1, j], out[t, 2, j] = msg, m2, total

        _NUMBA_SCAN.append(scan)
    return _NUMBA_SCAN[0]


# --- the reader ----------------------------------------------------------------------------------------------
def write_sdnn(path: Path, rng: np.random.Generator, sizes=(12, 10, 8, 3), vth=(0, 3, 1), edit=None) -> Path:
    """input (Delta) -> dense SigmaDelta (bias) -> dense SigmaDelta -> dense Sigma, the neuron groups written
    by write.py's :func:`write_sdnn_neuron` (as slayer writes them)."""
    with h5py.File(path, "w") as f:
        lay = f.create_group("layer")
        g = lay.create_group("0")
        g.create_dataset("type", (1,), "S10", [b"input"])
        g["shape"] = np.array([sizes[0]])
        write_sdnn_neuron(g, NxSigmaDelta("delta", vth[0], None))
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), 1):
            g = lay.create_group(str(i))
            g.create_dataset("type", (1,), "S10", [b"dense"])
            g["shape"] = np.array([n_out])
            g["weight"] = (rng.integers(-128, 128, (n_out, n_in)) * 2).astype(np.float32)
            if i == len(sizes) - 1:
                write_sdnn_neuron(g, NxSigmaDelta("sigma", 0, None))
            else:
                write_sdnn_neuron(g, NxSigmaDelta("sigma_delta", vth[min(i, len(vth) - 1)], None))
                g["bias"] = rng.integers(-40, 40, n_out).astype(np.float32) * (i == 1)
        if edit is not None:
            edit(f)
    return path


def test_reader_reads_sdnn_groups(tmp_path: Path):
    m = read_netx(write_sdnn(tmp_path / "sd.net", np.random.default_rng(0)), sigma_delta=True)
    assert m.is_sigma_delta and m.has_input_neuron
    assert m.input.neuron == NxSigmaDelta("delta", 0, None)
    kinds = [(lay.neuron.kind, lay.neuron.v_th_mant, lay.neuron.bias is None) for lay in m.layers]
    assert kinds == [("sigma_delta", 3, False), ("sigma_delta", 1, False), ("sigma", 0, True)]
    assert m.layers[0].neuron.graded and m.layers[0].neuron.relu and NxNeuron.kind == "lif" and not NxNeuron.graded
    with pytest.raises(NetxFormatError, match="neuron type 'SDNN' is not supported: sigma-delta"):
        read_netx(tmp_path / "sd.net")  # not asked for: refused as before


def test_reader_reads_lava_dls_pilotnet_sdnn(tmp_path: Path):
    m = read_netx(unpack("pilotnet_sdnn.net", tmp_path), sigma_delta=True)
    assert m.input.shape == (3, 33, 100) and m.input.neuron.kind == "delta"
    assert [type(lay).__name__[2:] for lay in m.layers] == ["Conv"] * 4 + ["Flatten"] + ["Dense"] * 4
    assert [lay.neuron.v_th_mant for lay in m.neuron_layers] == [13, 0, 0, 0, 23, 1, 6, 0]
    assert [lay.neuron.kind for lay in m.neuron_layers] == ["sigma_delta"] * 7 + ["sigma"]
    head = read_netx(unpack("pilotnet_sdnn_head.net", tmp_path), sigma_delta=True)
    assert head.input.shape == (3, 33, 33) and head.layers[0].neuron.kind == "sigma_delta"


def _set(key: str, value, layer: str = "1"):  # noqa: ANN001, ANN202
    def edit(f: h5py.File) -> None:
        g = f[f"layer/{layer}"]
        if key in g:
            del g[key]
        if value is not None:
            g[key] = value

    return edit


def _cuba_input(f: h5py.File) -> None:
    del f["layer/0/neuron"]
    f["layer/0/neuron/type"], f["layer/0/neuron/vThMant"] = "CUBA", 10
    f["layer/0/neuron/iDecay"], f["layer/0/neuron/vDecay"] = 0, 4096


@pytest.mark.parametrize(
    "edit,match",
    [
        (_set("neuron/activation", "tanh"), "activation 'tanh' is not supported: netx ignores it"),
        (_set("neuron/messageBits", 8), "messageBits is not supported: netx .* NetDict"),
        (_set("neuron/sigma_output", False), r"sigma_output = \[False\] is ambiguous: netx tests only"),
        (_set("neuron/sigma_output", True, "0"), "ambiguous: netx builds a Delta for every 'input' layer"),
        (_set("bias", np.ones(3, np.float32), "3"), "a bias on a Sigma neuron"),
        (_set("neuron/vThMant", -1), r"vThMant' = \[-1\], expected integers in \[0, 524287\]"),
        (_set("neuron/vThMant", 1 << 19), "expected integers in"),
        (_set("neuron/vThMant", None), "neuron lacks 'vThMant'"),
        (_set("neuron", None, "2"), "layer 2: CUBA neurons in a network whose first neuron layer is SDNN"),
        (_cuba_input, "layer 1: SDNN neurons in a network whose first neuron layer is CUBA"),
        (_set("bias", np.full(10, 40000, np.float32)), "int16"),
        # found by the SDNN fuzz campaign: these said "neuron type '?' ... only CUBA/LOIHI LIF neurons"
        (_set("neuron", np.asarray([1.5, -2.5]), "2"), "layer 2: 'neuron' is a Dataset, expected a group"),
        (_set("neuron/type", None, "2"), "layer 2: the neuron group lacks 'type'"),
    ],
)
def test_reader_refuses_what_netx_reads_differently(tmp_path: Path, edit, match):  # noqa: ANN001
    path = write_sdnn(tmp_path / "sd.net", np.random.default_rng(1), edit=edit)
    with pytest.raises(NetxFormatError, match=match) as err:
        read_netx(path, sigma_delta=True)
    assert "\n" not in str(err.value)


# --- Lava ----------------------------------------------------------------------------------------------------
def _lava():  # noqa: ANN202
    from loihic.deploy.lava import compat

    compat.import_netx()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io

    return RunSteps, Loihi2SimCfg(select_tag="fixed_pt"), io


def _run(source, out_port, steps: int) -> np.ndarray:  # noqa: ANN001
    run_steps, cfg, io = _lava()
    sink = io.sink.RingBuffer(shape=out_port.shape, buffer=steps)
    out_port.connect(sink.a_in)
    try:
        source.run(condition=run_steps(num_steps=steps), run_cfg=cfg)
        return np.asarray(sink.data.get()).astype(np.int64)
    finally:
        source.stop()


def _regime_input(rng: np.random.Generator, n: int, steps: int, regime: str) -> np.ndarray:
    """Source integers (n, steps) in int32: small (images), large (the int32 sums wrap), or slowly changing."""
    if regime == "small":
        return rng.integers(-255, 256, (n, steps))
    if regime == "large":
        return rng.integers(-(1 << 24), 1 << 24, (n, steps)) * (rng.random((n, steps)) < 0.7)
    if regime == "exact":  # sums in multiples of 4096: deltas land exactly on the threshold
        return rng.integers(-1, 2, (n, steps)) * 2048
    if regime == "edges":  # Delta: a << 12 at and beyond the int32 edges (2^19 << 12 = 2^31 wraps to INT32_MIN)
        edges = np.array([1 << 19, -(1 << 19), (1 << 19) - 1, (1 << 19) + 1, 0, 1, -1, 1 << 20, 3 << 18])
        return rng.choice(edges, (n, steps))
    return np.cumsum(rng.integers(-3, 4, (n, steps)), axis=1) + 100  # small changes: thresholds matter


@pytest.mark.lava
@pytest.mark.parametrize("regime", ["small", "large", "drift", "edges"])
def test_delta_equals_lavas_delta(regime: str):
    from lava.proc.sdn.process import Delta

    rng = np.random.default_rng(7)
    n, steps = 16, 20
    x = _regime_input(rng, n, steps, regime) >> (6 if regime == "large" else 0)  # a << 12 wraps for |a| >= 2^19
    vth = int(rng.choice([0, 1, 5])) if regime != "edges" else 0
    _, _, io = _lava()
    src = io.source.RingBuffer(data=x.astype(np.int32))
    delta = Delta(shape=(n,), vth=vth, spike_exp=schema.SPIKE_EXP, state_exp=schema.STATE_EXP)
    src.s_out.connect(delta.a_in)
    got = _run(src, delta.s_out, steps)
    model = NetxModel("<mem>", _input(n, NxSigmaDelta("delta", vth, None)), ())
    want = _run_delta_only(model, x, steps)
    assert np.array_equal(got, want), _first_diff(got, want)
    assert np.count_nonzero(want) > want.size // 8, "too few messages to compare"


def _input(n: int, neuron):  # noqa: ANN001, ANN202
    from loihic.compiler.netx.read import NxInput

    return NxInput((n,), neuron)


def _run_delta_only(model: NetxModel, x: np.ndarray, steps: int) -> np.ndarray:
    st = {"act": 0, "residue": 0}
    return np.stack([_neuron_step(model.input.neuron, x[:, t].astype(np.int64), st) for t in range(steps)], 1)


def _first_diff(got: np.ndarray, want: np.ndarray) -> str:
    if got.shape != want.shape:
        return f"shapes {got.shape} vs {want.shape}"
    i = np.argwhere(got != want)[0]
    return f"first difference at (neuron, step) {tuple(i)}: Lava {got[tuple(i)]}, reference {want[tuple(i)]}"


@pytest.mark.lava
@pytest.mark.parametrize(
    "kind,regime,wexp",
    [
        ("sigma_delta", "small", 0),
        ("sigma_delta", "large", -3),  # the int32 dot wraps before the weight_exp shift; sigma wraps
        ("sigma_delta", "drift", 1),
        ("sigma_delta", "exact", 0),  # |d| == vth: sent (>=, not >)
        ("identity", "exact", 0),
        ("identity", "large", -1),
        ("identity", "drift", 0),
        ("sigma", "large", -2),
        ("sigma", "small", 0),
    ],
)
def test_graded_dense_into_sigma_delta_equals_lava(kind: str, regime: str, wexp: int):
    from lava.proc.dense.process import Dense
    from lava.proc.sdn.process import ActivationMode, Sigma, SigmaDelta

    rng = np.random.default_rng(sum(map(ord, kind + regime)) + wexp)
    n_in, n, steps = 24, 12, 25
    x = _regime_input(rng, n_in, steps, regime)
    w = rng.integers(-128, 128, (n, n_in)) * 2  # even: Lava's Dense (8 bits, mixed) keeps them as they are
    if regime == "exact":
        w = rng.integers(-1, 2, (n, n_in)) * 2  # small sums: |d| often equals vth
    vth = int(rng.choice([1, 2])) if regime == "exact" else int(rng.choice([0, 1, 2, 40]))
    bias = rng.integers(-300, 300, n)
    _, _, io = _lava()
    src = io.source.RingBuffer(data=x.astype(np.int32))
    dense = Dense(weights=w, weight_exp=wexp, num_weight_bits=8, num_message_bits=schema.SDNN_MESSAGE_BITS)
    if kind == "sigma":
        neuron = Sigma(shape=(n,))
        nx = NxSigmaDelta("sigma", 0, None)
    else:
        mode = ActivationMode.RELU if kind == "sigma_delta" else ActivationMode.UNIT
        neuron = SigmaDelta(shape=(n,), vth=vth, bias=bias.astype(np.int32), act_mode=mode, spike_exp=6, state_exp=6)
        nx = NxSigmaDelta("sigma_delta", vth, bias, relu=kind == "sigma_delta")
    src.s_out.connect(dense.s_in)
    dense.a_out.connect(neuron.a_in)
    got = _run(src, neuron.s_out, steps)
    # the reference: a graded source straight into the dense (input_message_bits 16), no input neuron
    model = NetxModel("<mem>", _input(n_in, None), (NxDense(w, wexp, nx, (n,)),))
    want = sdnn_reference(model, x, steps, input_message_bits=16)[-1].T
    assert np.array_equal(got, want), _first_diff(got, want)
    assert np.count_nonzero(want) > want.size // 8, "too few messages to compare"
    if regime == "large":
        sums = w.astype(np.int64) @ x.astype(np.int64)
        assert np.abs(sums).max() > I32.max  # the regime reached the int32 wrap


@pytest.mark.lava
@pytest.mark.parametrize("regime", ["small", "large"])
def test_netx_dense_sdnn_file_equals_reference(tmp_path: Path, regime: str):
    """A dense SDNN file (Delta input, SigmaDelta with and without bias, Sigma output) through netx, streamed."""
    rng = np.random.default_rng(11)
    path = write_sdnn(tmp_path / "sd.net", rng)
    model = read_netx(path, sigma_delta=True)
    steps = 16
    x = _regime_input(rng, 12, 6, regime) >> (8 if regime == "large" else 0)
    got = _run_netx(path, x, steps)
    want = sdnn_reference(model, x, steps)[-1].T
    assert np.array_equal(got, want), _first_diff(got, want)


@pytest.mark.lava
@pytest.mark.parametrize("input_message_bits", [0, 16])
def test_netx_sdnn_file_without_input_layer_equals_reference(tmp_path: Path, input_message_bits: int):
    """No 'input' layer: the source drives the first dense directly, binary (netx's default) or graded
    (``Network(input_message_bits=16)``), into a SigmaDelta."""
    rng = np.random.default_rng(13)
    path = copy_layers(write_sdnn(tmp_path / "sd.net", rng), tmp_path / "noinput.net", 1)
    model = read_netx(path, sigma_delta=True)
    assert not model.has_input_neuron and model.is_sigma_delta
    steps = 12
    x = _regime_input(rng, 12, 5, "small") * (rng.random((12, 5)) < 0.6)
    got = _run_netx(path, x, steps, input_message_bits)
    want = sdnn_reference(model, x, steps, input_message_bits)[-1].T
    assert np.array_equal(got, want), _first_diff(got, want)
    assert np.count_nonzero(want) > 0


@pytest.mark.lava
def test_netx_pilotnet_sdnn_head_equals_reference(tmp_path: Path):
    """lava-dl's PilotNet SDNN head (Delta 3x33x33 -> conv 24, SigmaDelta): conv with graded input, streamed,
    on inputs that overflow the conv's 24-bit accumulator."""
    rng = np.random.default_rng(12)
    path = unpack("pilotnet_sdnn_head.net", tmp_path)
    model = read_netx(path, sigma_delta=True)
    steps = 6
    x = rng.integers(0, 256, (3, 33, 33, 3)) << np.array([0, 0, 12])  # the last frame: huge messages
    got = _run_netx(path, x, steps)
    want = sdnn_reference(model, x, steps)[-1]  # (steps, C*H*W) in (C, H, W) order
    want = want.reshape(steps, *model.output_shape).transpose(3, 2, 1, 0)  # Lava's (W, H, C, steps)
    assert np.array_equal(got, want), _first_diff(got.reshape(-1, steps), want.reshape(-1, steps))


def _run_netx(path: Path, x: np.ndarray, steps: int, input_message_bits: int = 0) -> np.ndarray:
    """A plain netx run (lava-dl's test_pilotnet_sdnn): the source into the input Delta (or, without an
    'input' layer, into the network's first synapse), a sink on the output."""
    from loihic.deploy.lava import compat

    netx = compat.import_netx()
    run_steps, cfg, io = _lava()
    net = netx.hdf5.Network(net_config=str(path), input_message_bits=input_message_bits)
    data = x.transpose(2, 1, 0, 3) if x.ndim == 4 else x  # (C, H, W, T) -> Lava's (W, H, C, T)
    src = io.source.RingBuffer(data=data.astype(np.int32))
    has_input_neuron = isinstance(net.in_layer, netx.blocks.process.Input)
    src.s_out.connect(net.in_layer.neuron.a_in if has_input_neuron else net.inp)
    sink = io.sink.RingBuffer(shape=net.out_layer.out.shape, buffer=steps)
    net.out_layer.out.connect(sink.a_in)
    try:
        net.run(condition=run_steps(num_steps=steps), run_cfg=cfg)
        return np.asarray(sink.data.get()).astype(np.int64)
    finally:
        net.stop()


@pytest.mark.lava
def test_netx_pilotnet_sdnn_on_a_moving_frame_equals_reference(tmp_path: Path):
    """lava-dl's whole PilotNet SDNN (4 convs, flatten, 3 dense with weight_exp -4 / -3, a Sigma output) on
    its input frame shifted and brightened step by step (a short video, one frame a step, cycled), the
    output sink of a 14-step stream."""
    path = unpack("pilotnet_sdnn.net", tmp_path)
    frame = np.load(unpack("pilotnet_sdnn_input.npy", tmp_path)).transpose(2, 1, 0, 3)[..., 0].astype(np.int64)
    video = np.stack([np.roll(frame, 2 * k, axis=2) + 3 * k for k in range(5)], -1)  # (C, H, W, 5)
    model = read_netx(path, sigma_delta=True)
    steps = 14
    got = _run_netx(path, video, steps)
    want = sdnn_reference(model, video, steps)[-1].T
    assert np.array_equal(got, want), _first_diff(got, want)
    assert np.count_nonzero(want) > steps // 2
