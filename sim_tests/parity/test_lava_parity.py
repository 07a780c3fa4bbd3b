"""Oracle tests: the same input through the emulator and Lava's CPU simulator, exact equality.

Start small (4 neurons), grow to conv stacks and trained networks.  A failure names the layer,
sample, neuron and step of the first divergence.
"""

from __future__ import annotations

import numpy as np
import pytest

from loihic.compiler import ir
from loihic.compiler.netx.write import write_netx
from loihic.compiler.pipeline import compile_network
from loihic.deploy.verification.parity import verify
from sim_tests.golden.make_golden import golden_networks
from sim_tests.tolerances import SPIKES_EXACT

pytestmark = pytest.mark.lava


def _assert_identical(path, x, bits=0, min_spikes=1):  # noqa: ANN001
    rep = verify(str(path), x, input_message_bits=bits, progress=False)
    assert rep.mismatches == SPIKES_EXACT, f"first divergence: {rep.first_mismatch}"
    assert rep.identical
    return rep


def _quant(w, bias, vth, idec, vdec):  # noqa: ANN001
    return ir.Quant(weight=w, bias=bias, v_th_mant=vth, i_decay=idec, v_decay=vdec, scale=1.0, in_scale=1, sqnr_db=0.0)


def _raw_net(layers, shape, steps=24):  # noqa: ANN001
    return ir.Network(ir.Input(shape), tuple(layers), timesteps=steps, encoding="poisson")


def _dense(name, w, q):  # noqa: ANN001
    return ir.Dense(name, w, None, ir.Neuron(1.0), quant=q)


def test_four_neurons(tmp_path, rng):
    w = rng.integers(-100, 128, (4, 6)) * 2
    net = _raw_net([_dense("d", w, _quant(w, None, 200, 4096, 0))], (6,))
    x = (rng.random((3, 6, 20)) < 0.5).astype(np.uint8)
    _assert_identical(write_netx(net, tmp_path / "n.net", {}), x)


def test_dense_leak_bias_and_readout(tmp_path, rng):
    w1, w2, w3 = (rng.integers(-128, 128, s) * 2 for s in ((30, 16), (20, 30), (5, 20)))
    net = _raw_net(
        [
            _dense("d1", w1, _quant(w1, rng.integers(-200, 200, 30), 500, 1024, 300)),
            _dense("d2", w2, _quant(w2, None, 300, 4096, 64)),
            ir.Dense(
                "d3",
                w3,
                None,
                ir.Neuron(1.0, spiking=False),
                quant=_quant(w3, rng.integers(-50, 50, 5), 1 << 17, 4096, 0),
            ),
        ],
        (16,),
    )
    x = (rng.random((6, 16, 24)) < 0.4).astype(np.uint8)
    rep = _assert_identical(write_netx(net, tmp_path / "n.net", {}), x)
    assert rep.voltage_equal is True


def test_u_wraps_at_24_bits(tmp_path, rng):
    """Current that never decays (iDecay 0) under excitatory drive wraps from +2^23 to -2^23."""
    w = np.abs(rng.integers(0, 128, (8, 40)) * 2)
    net = _raw_net([_dense("d", w, _quant(w, None, 131071, 0, 4096))], (40,), steps=64)
    x = (rng.random((2, 40, 64)) < 0.8).astype(np.uint8)
    rep = _assert_identical(write_netx(net, tmp_path / "n.net", {}), x)
    assert rep.spikes_compared > 0


def test_conv_stride_padding_groups_nonsquare(tmp_path, rng):
    c1 = rng.integers(-100, 128, (4, 2, 3, 5)) * 2
    c2 = rng.integers(-100, 128, (6, 2, 3, 3)) * 2  # groups=2: 4 -> 6 channels
    layers = [
        ir.Conv(
            "c1",
            c1,
            None,
            ir.Neuron(1.0),
            stride=(1, 2),
            padding=(1, 2),
            quant=_quant(c1, rng.integers(-30, 30, 4), 300, 2048, 200),
        ),
        ir.Conv("c2", c2, None, ir.Neuron(1.0), stride=2, padding=1, groups=2, quant=_quant(c2, None, 250, 4096, 100)),
        ir.Flatten("f"),
    ]
    shapes = ir.infer_shapes(_raw_net(layers, (2, 9, 12)))
    w3 = rng.integers(-128, 128, (5, shapes[-1][0])) * 2
    layers.append(_dense("d", w3, _quant(w3, None, 400, 4096, 0)))
    x = (rng.random((3, 2, 9, 12, 16)) < 0.4).astype(np.uint8)
    rep = _assert_identical(write_netx(_raw_net(layers, (2, 9, 12)), tmp_path / "n.net", {}), x)
    assert rep.spikes_compared > 0


def test_golden_conv_compiled_with_pooling_and_bias(tmp_path, rng):
    net = compile_network(golden_networks()["conv_small"])
    x = (rng.random((4, 1, 8, 8, 16)) < 0.5).astype(np.uint8)
    _assert_identical(write_netx(net, tmp_path / "n.net", {}), x)


def test_direct_coded_graded_input(tmp_path, rng):
    net = compile_network(golden_networks()["mlp_direct"])
    x = np.repeat(rng.integers(0, 256, (4, 12, 1)), 8, axis=-1)
    _assert_identical(write_netx(net, tmp_path / "n.net", {}), x, bits=8)


def test_netx_builds_the_intended_layers(tmp_path):
    from loihic.deploy.lava.compat import import_netx

    netx = import_netx()
    path = write_netx(compile_network(golden_networks()["conv_small"]), tmp_path / "n.net", {})
    net = netx.hdf5.Network(net_config=str(path))
    kinds = [type(b).__name__ for b in net.layers]
    assert kinds == ["Conv", "Conv", "Dense"]
    assert [tuple(b.out.shape) for b in net.layers] == [(8, 8, 4), (4, 4, 6), (5,)]


@pytest.mark.parametrize("model", ["mlp", "lenet5"])
def test_trained_digits_networks(tmp_path, model):
    from loihic.compiler.config import CompileConfig
    from loihic.compiler.encoding import encode_all as encoded
    from loihic.training.ann import train_ann
    from loihic.training.checkpoint import save_checkpoint
    from loihic.training.convert import convert
    from loihic.training.data import load_dataset
    from loihic.training.deployment import compile_checkpoint

    x_train, _ = load_dataset("digits", "train")
    x_test, y_test = load_dataset("digits", "test")
    ann = train_ann(model, "digits", epochs=2, seed=0, progress=False, limit_train=400)
    snn = convert(ann, x_train, 12, seed=0, calib_samples=64, progress=False)
    save_checkpoint(tmp_path / "snn.pt", snn)
    path = compile_checkpoint(str(tmp_path / "snn.pt"), str(tmp_path / "m.net"), CompileConfig()).path
    spikes = encoded(x_test[:3], 12, "poisson", seed=0)
    rep = _assert_identical(path, spikes)
    assert rep.accuracy_emulator is None and rep.voltage_equal is True
