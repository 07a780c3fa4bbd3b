"""Recurrent ('dense_rec') and delayed ('delay') dense layers: quantize -> netx -> read back, the same integers;
lava-dl's delay forms (scalar, per output, per input, per synapse); refusals by name (Lava-free)."""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest

from loihic.compiler import ir
from loihic.compiler.errors import LoihicError, NetxFormatError
from loihic.compiler.netx.read import optimize_weight_bits, read_netx, recurrent_weight_bits
from loihic.compiler.pipeline import compile_network
from sim_tests.temporal_cases import temporal_net, write_temporal


def test_round_trip_recurrent_and_delays(tmp_path):
    net = compile_network(temporal_net(3, sizes=(6, 8, 7, 4), recurrent=(1,), delayed=(0, 2), max_delay=62))
    path = write_temporal(tmp_path / "t.net", net)
    with h5py.File(path) as f:
        types = [f["layer"][str(i)]["type"][0].decode() for i in range(4)]
        assert types == ["input", "dense", "dense_rec", "dense"]
        assert "delay" in f["layer/1"] and "delay" not in f["layer/2"]
    model = read_netx(path)
    assert model.temporal
    for lay, src in zip(model.neuron_layers, net.synaptic(), strict=True):
        q = src.quant
        assert np.array_equal(lay.weight, q.weight) and lay.weight_exp == 0
        assert (lay.weight_rec is None) == (q.weight_rec is None)
        if q.weight_rec is not None:
            assert np.array_equal(lay.weight_rec, q.weight_rec)
        assert (lay.delay is None) == (src.delay is None)
        if src.delay is not None:
            assert np.array_equal(lay.delay, src.delay) and lay.delay.max() > 40
        assert np.array_equal(lay.neuron.bias, q.bias)


def test_recurrent_weights_share_one_scale():
    net = temporal_net(1, recurrent=(0,))
    lay = compile_network(net).synaptic()[0]
    q = lay.quant
    # one scale: the larger of the two matrices sets it, the other keeps the float ratio
    assert max(np.abs(q.weight).max(), np.abs(q.weight_rec).max()) >= 250
    ratio = q.weight_rec / q.scale - lay.weight_rec
    assert np.abs(ratio).max() <= 1.0 / q.scale + 1e-12


def _dense_file(path, delay=None, rec=None, w=None):
    w = np.array([[2, -4, 6], [8, 0, -2]], np.float32) if w is None else w
    with h5py.File(path, "w") as f:
        g = f.create_group("layer/0")
        g.create_dataset("type", (1,), "S10", [b"dense_rec" if rec is not None else b"dense"])
        g["shape"] = np.array([w.shape[0]])
        g["weight"] = w
        if rec is not None:
            g["weight_rec"] = rec
        if delay is not None:
            g["delay"] = delay
        n = g.create_group("neuron")
        n.create_dataset("type", (1,), "S10", [b"CUBA"])
        n["vThMant"], n["iDecay"], n["vDecay"] = 10, 1024, 256
    return path


@pytest.mark.parametrize(
    ("delay", "expected"),
    [
        (np.int64(5), np.full((2, 3), 5)),  # scalar
        (np.array([1.0, 7.0]), np.array([[1, 1, 1], [7, 7, 7]])),  # per output (slayer's floor(delay), float)
        (np.array([0, 3, 62]), np.array([[0, 3, 62], [0, 3, 62]])),  # per input
        (np.array([[1, 2, 3], [4, 5, 6]]), np.array([[1, 2, 3], [4, 5, 6]])),  # per synapse
    ],
)
def test_lava_dl_delay_forms(tmp_path, delay, expected):
    model = read_netx(_dense_file(tmp_path / "d.net", delay=delay))
    assert np.array_equal(model.layers[0].delay, expected)


@pytest.mark.parametrize(
    ("delay", "message"),
    [
        (np.array([63, 0, 1]), "delay 63 steps is not supported: outside [0, 62]"),
        (np.array([-1, 0, 1]), "delay -1 steps is not supported: outside [0, 62]"),
        (np.array([1.5, 0, 1]), "delay 1.5 is not a whole number"),
        (np.array([1, 2, 3, 4]), "delay of shape (4,)"),
    ],
)
def test_bad_delays_refused_by_name(tmp_path, delay, message):
    with pytest.raises(NetxFormatError, match="layer 0: " + re.escape(message)):
        read_netx(_dense_file(tmp_path / "d.net", delay=delay))


def test_dense_rec_reads_netx_shared_exponent(tmp_path):
    # odd, small recurrent weights beside large even ones: netx picks one exponent for both (hdf5.py create_dense)
    w = np.array([[100, -120, 64], [8, 0, -2]], np.float32)
    rec = np.array([[3, -1], [5, 7]], np.float32)
    model = read_netx(_dense_file(tmp_path / "r.net", rec=rec, w=w))
    lay = model.layers[0]
    wr, rr, wexp = recurrent_weight_bits(w.astype(np.int64), rec.astype(np.int64))
    assert np.array_equal(lay.weight, wr) and np.array_equal(lay.weight_rec, rr) and lay.weight_exp == wexp
    # alone, each matrix would get its own exponent: the shared one differs from the recurrent one's own
    assert optimize_weight_bits(rec.astype(np.int64))[2] != wexp
    # either way Lava computes W s exactly: weight << -exp is the file's weight
    assert np.array_equal(wr >> -wexp if wexp < 0 else wr, w.astype(np.int64))
    assert np.array_equal(rr >> -wexp if wexp < 0 else rr, rec.astype(np.int64))


def test_dense_rec_refusals(tmp_path):
    with pytest.raises(NetxFormatError, match="lacks 'weight_rec'"):
        p = _dense_file(tmp_path / "a.net", rec=np.eye(2, dtype=np.float32))
        with h5py.File(p, "a") as f:
            del f["layer/0/weight_rec"]
        read_netx(p)
    with pytest.raises(NetxFormatError, match="recurrent layer with delays"):
        read_netx(_dense_file(tmp_path / "b.net", rec=np.eye(2, dtype=np.float32), delay=np.int64(1)))
    with pytest.raises(NetxFormatError, match=r"weight_rec has shape \(2, 3\)"):
        read_netx(_dense_file(tmp_path / "c.net", rec=np.ones((2, 3), np.float32)))


def test_ir_refuses_delay_beyond_62_and_recurrent_delayed_compile():
    with pytest.raises(LoihicError, match="delay 63 steps is outside"):
        ir.Dense("fc", np.ones((2, 2)), None, ir.Neuron(1.0), delay=np.full((2, 2), 63))
    net = temporal_net(0, recurrent=(1,), delayed=(1,))
    with pytest.raises(LoihicError, match="recurrent layer with delays"):
        compile_network(net)


def test_report_resources_and_refusals_elsewhere(tmp_path):
    from loihic.compiler.netx.nir_export import export_nir
    from loihic.compiler.report import format_report, layer_report
    from loihic.compiler.resources import layer_resources, synops_per_inference
    from loihic.deploy.emulator.network import Emulator
    from loihic.training.models import build_model
    from sim_tests.temporal_cases import spikes

    net = temporal_net(2, sizes=(6, 8, 5), recurrent=(1,), delayed=(0,))
    compiled = compile_network(net)
    rows = layer_report(compiled)
    assert [r["type"] for r in rows] == ["dense", "dense_rec"] and rows[1]["fan_in"] == 8 + 5
    assert rows[0]["max_delay"] == int(net.layers[0].delay.max()) and "dense_rec" in format_report(rows)
    path = write_temporal(tmp_path / "r.net", net)
    model = read_netx(path)
    res = layer_resources(model)
    assert [r["type"] for r in res] == ["dense+delay", "dense_rec"] and res[1]["synapses"] == 5 * 8 + 5 * 5
    x = spikes(0, 3, 6, 24, 0.4)
    run = Emulator(model, "cpu").run(x, record_layers=True)
    ops = synops_per_inference(model, run.layer_spikes, x)
    own = (run.layer_spikes[1] != 0).sum(-1) @ np.count_nonzero(model.layers[1].weight_rec, axis=0)
    ff = (run.layer_spikes[0] != 0).sum(-1) @ np.count_nonzero(model.layers[1].weight, axis=0)
    assert ops[1] == pytest.approx(float(np.mean(ff + own)))
    with pytest.raises(NetxFormatError, match="layer 0: a delayed"):
        export_nir(path, tmp_path / "r.nir")
    with pytest.raises(LoihicError, match="layer 'fc0': synaptic delays are not supported by loihic's training"):
        build_model(net)
