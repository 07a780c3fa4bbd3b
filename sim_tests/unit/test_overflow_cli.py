"""The overflow monitor through the command line: ``simulate``/``evaluate --check-overflow`` print the
per-layer counts and report them with ``--json``; ``verify`` always includes them.  The counts equal
the emulator's own (whose exactness sim_tests/unit/test_emulator_layer_major.py checks against numpy)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from loihic.compiler import ir
from loihic.compiler.netx.read import read_netx
from loihic.compiler.netx.write import write_netx
from loihic.deploy.cli.main import main
from loihic.deploy.emulator.network import Emulator

T = 40


def _wrapping_net(tmp_path, rng):  # noqa: ANN001, ANN202
    """Dense 40 -> 6 whose current never decays (iDecay 0) under excitatory drive: u wraps; then a
    readout 6 -> 3 that leaks and never overflows."""
    w1 = rng.integers(64, 128, (6, 40)) * 2
    w2 = rng.integers(-100, 128, (3, 6)) * 2

    def quant(w, vth, idec, vdec):  # noqa: ANN001, ANN202
        return ir.Quant(
            weight=w, bias=None, v_th_mant=vth, i_decay=idec, v_decay=vdec, scale=1.0, in_scale=1, sqnr_db=0.0
        )

    layers = (
        ir.Dense("d1", w1, None, ir.Neuron(1.0), quant=quant(w1, 1 << 17, 0, 4096)),
        ir.Dense("d2", w2, None, ir.Neuron(1.0), quant=quant(w2, 300, 1024, 256)),
    )
    net = ir.Network(ir.Input((40,)), layers, timesteps=T, encoding="poisson")
    return write_netx(net, tmp_path / "wrap.net", {})


def test_simulate_check_overflow_prints_and_reports_json(tmp_path, rng, capsys):
    path = _wrapping_net(tmp_path, rng)
    x = (rng.random((4, 40, T)) < 0.8).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    expected = Emulator(read_netx(path), "cpu").run(x, check_overflow=True).overflow
    assert expected[0].u_wraps > 0 and not expected[1].any
    args = ["simulate", str(path), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")]
    assert main([*args, "--check-overflow"]) == 0
    out = capsys.readouterr().out
    assert f"layer 1 (dense 6): u wrapped {expected[0].u_wraps}, v clipped 0" in out and "(none)" in out
    assert main([*args, "--check-overflow", "--json", "--force", "--emulator-memory", "0.01"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [o["u_wraps"] for o in res["overflow"]] == [o.u_wraps for o in expected]
    assert [o["layer"] for o in res["overflow"]] == [1, 2]  # netx layer numbers, as the compile table
    assert res["overflow"][0]["neuron_steps"] == 4 * 6 * T and res["shape"] == [4, 3, T]
    assert main([*args, "--force"]) == 0 and capsys.readouterr().out == ""  # off by default: nothing printed
    assert main([*args, "--force", "--check-overflow", "--backend", "lava-sim"]) == 2
    assert "--backend emulator" in capsys.readouterr().err


def test_evaluate_check_overflow(tmp_path, rng, capsys):
    path = _wrapping_net(tmp_path, rng)
    x, y = rng.random((10, 40)).astype(np.float32), rng.integers(0, 3, 10)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    args = ["evaluate", str(path), "-T", str(T), "--data", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy")]
    assert main([*args, "--check-overflow", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    (first, second) = res["overflow"]
    assert first["u_wraps"] > 0 and first["neuron_steps"] == 10 * 6 * T and second["u_wraps"] == 0
    assert main([*args, "--check-overflow"]) == 0
    assert "u wrapped" in capsys.readouterr().out
    assert main([*args, "--emulator-memory", "0"]) == 2
    assert "--emulator-memory" in capsys.readouterr().err


@pytest.mark.lava
def test_verify_reports_overflow(tmp_path, rng, capsys):
    path = _wrapping_net(tmp_path, rng)
    np.save(tmp_path / "x.npy", rng.random((3, 40)).astype(np.float32))
    assert main(["verify", str(path), "-T", str(T), "--data", str(tmp_path / "x.npy"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["identical"] and res["overflow"][0]["u_wraps"] > 0 and res["overflow"][1]["u_wraps"] == 0
