"""Any ReLU ANN to a sigma-delta netx file (issue 19 item 3, the compiler side): IR, quantization, writer and
reader, compile table, error bounds and automatic thresholds, end to end on the emulator in stream timing.

Tolerances follow from compiler/passes/quantize_sdnn.py and deploy/sdnn_thresholds.error_bound: once settled
(sink index K for K synaptic layers), the Sigma read-out / (4096 S_L) is within ``error_bound`` of the quantized
ANN (what the thresholds and the message floor cost) and of the float ANN (plus weight, bias, input rounding).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from loihic.compiler import ir
from loihic.compiler.driver import compile_source
from loihic.compiler.errors import LoihicError
from loihic.compiler.netx import schema
from loihic.compiler.netx.model import NxSigmaDelta
from loihic.compiler.netx.read import read_netx
from loihic.compiler.passes.quantize_sdnn import HEADROOM, choose_scales
from loihic.compiler.report import format_report
from loihic.deploy import sdnn_thresholds as st

FLOAT_EPS = 1e-9  # float64 evaluation of the bound and of the read-out / (4096 S)


def mlp(rng: np.random.Generator, th: float = 0.0, out_bias: bool = False) -> ir.Network:
    b_out = rng.normal(0, 0.1, 5) if out_bias else None
    layers = (
        ir.Dense("fc1", rng.normal(0, 0.3, (24, 12)), rng.normal(0, 0.1, 24), ir.SigmaDelta(th)),
        ir.Dense("fc2", rng.normal(0, 0.3, (16, 24)), rng.normal(0, 0.1, 16), ir.SigmaDelta(th)),
        ir.Dense("out", rng.normal(0, 0.3, (5, 16)), b_out, ir.SigmaDelta(0, "sigma")),
    )
    return ir.Network(ir.Input((12,), delta=th), layers, timesteps=8, encoding="direct")


def convnet(rng: np.random.Generator, th: float = 0.0) -> ir.Network:
    """conv 3x3 pad 1 + BatchNorm, average pooling (folded into the next conv), conv stride 2, flatten, Sigma."""
    bn = ir.BatchNorm(
        "bn1", rng.normal(0, 0.1, 4), rng.uniform(0.5, 1.5, 4), rng.uniform(0.5, 1.5, 4), rng.normal(0, 0.1, 4)
    )
    layers = (
        ir.Conv("c1", rng.normal(0, 0.3, (4, 2, 3, 3)), rng.normal(0, 0.1, 4), ir.SigmaDelta(th), padding=1),
        bn,
        ir.AvgPool("p1", 2, 2),
        ir.Conv("c2", rng.normal(0, 0.3, (6, 4, 3, 3)), rng.normal(0, 0.1, 6), ir.SigmaDelta(th), stride=2, padding=1),
        ir.Flatten("fl"),
        ir.Dense("out", rng.normal(0, 0.3, (3, 6 * 2 * 2)), None, ir.SigmaDelta(0, "sigma")),
    )
    return ir.Network(ir.Input((2, 8, 8), delta=th), layers, timesteps=8, encoding="direct")


# --- IR --------------------------------------------------------------------------------------------------


def test_sigma_delta_neuron_validates() -> None:
    with pytest.raises(LoihicError, match="output"):
        ir.SigmaDelta(0.1, "spike")
    with pytest.raises(LoihicError, match="threshold"):
        ir.SigmaDelta(-0.1)
    with pytest.raises(LoihicError, match="act_max"):
        ir.SigmaDelta(0.1, act_max=float("nan"))
    with pytest.raises(LoihicError, match="delta"):
        ir.Input((3,), delta=-1.0)


def test_a_network_holds_one_kind_of_neuron(rng: np.random.Generator) -> None:
    net = mlp(rng)
    lif = ir.Dense("fc2", net.layers[1].weight, None, ir.Neuron(1.0))
    with pytest.raises(LoihicError, match="one kind"):
        net.replace(layers=(net.layers[0], lif, net.layers[2]))
    with pytest.raises(LoihicError, match="Delta"):
        net.replace(input=ir.Input((12,)))
    with pytest.raises(LoihicError, match="graded input"):
        net.replace(encoding="poisson")
    with pytest.raises(LoihicError, match="only the last"):
        early = ir.Dense("early", net.layers[0].weight, None, ir.SigmaDelta(0, "sigma"))
        net.replace(layers=(early, *net.layers[1:]))
    with pytest.raises(LoihicError, match="no bias"):
        mlp(rng, out_bias=True)
    assert net.sigma_delta


# --- quantization, writer, reader, compile table ------------------------------------------------------------


@pytest.mark.parametrize("make", [mlp, convnet])
@pytest.mark.parametrize("calibrated", [False, True])
def test_scales_follow_lavas_arithmetic(rng: np.random.Generator, tmp_path: Path, make, calibrated: bool) -> None:
    net = make(rng, 0.05)
    net = st.calibrate(net, rng.random((20, *net.input.shape))) if calibrated else net
    res = compile_source(net, tmp_path / "m.net")
    s_in = 255.0
    for layer in res.network.synaptic():
        q, n = layer.quant, layer.neuron
        assert q.in_act_scale == s_in and q.weight_scale == pytest.approx(64 * q.act_scale / s_in, rel=1e-12)
        assert np.all(q.weight % 2 == 0) and schema.WEIGHT_MIN <= q.weight.min() and q.weight.max() <= schema.WEIGHT_MAX
        assert np.array_equal(q.weight, 2 * np.rint(layer.weight * q.weight_scale / 2))  # no weight clipped
        if layer.bias is not None:
            assert np.array_equal(q.bias, np.rint(q.act_scale * layer.bias))
        assert q.v_th_mant == (0 if n.output == "sigma" else round(q.act_scale * n.threshold))
        assert (n.act_max is not None) == calibrated and q.act_bound == (n.act_max if calibrated else q.act_bound)
        bmax = 0.0 if layer.bias is None else float(np.abs(layer.bias).max())
        limit = 2**23 if isinstance(layer, ir.Conv) else 2**31
        assert 4096 * q.act_scale * (q.act_bound + bmax) * HEADROOM < limit
        s_in = q.act_scale
    assert res.network.meta["sdnn_delta"] == {"v_th_mant": round(0.05 * 255), "act_scale": 255.0}


@pytest.mark.parametrize("make", [mlp, convnet])
def test_the_file_reads_back_as_delta_sigma_delta_sigma(rng: np.random.Generator, tmp_path: Path, make) -> None:
    res = compile_source(st.calibrate(make(rng, 0.1), rng.random((10, *make(rng).input.shape))), tmp_path / "m.net")
    model = read_netx(res.path, sigma_delta=True)
    assert model.input.neuron == NxSigmaDelta("delta", round(0.1 * 255), None)
    syn = res.network.synaptic()
    assert [lay.neuron.kind for lay in model.neuron_layers] == ["sigma_delta"] * (len(syn) - 1) + ["sigma"]
    for nx, layer in zip(model.neuron_layers, syn, strict=True):
        assert np.array_equal(nx.weight, layer.quant.weight)
        assert nx.neuron.v_th_mant == layer.quant.v_th_mant
        if layer.neuron.output == "sigma_delta":
            per_neuron = np.asarray(nx.neuron.bias).reshape(len(layer.quant.bias), -1)  # (C, H*W) or (n, 1)
            assert np.all(per_neuron == layer.quant.bias[:, None])
    recorded = model.meta["sdnn"]
    assert recorded["readout_divisor"] == 4096 * syn[-1].quant.act_scale and recorded["settle_index"] == len(syn)
    rows = res.layers
    assert [r["neuron"] for r in rows] == ["sigma_delta"] * (len(syn) - 1) + ["sigma"]
    for r, layer in zip(rows, syn, strict=True):
        q = layer.quant
        assert r["act_scale"] == q.act_scale and r["vThMant"] == q.v_th_mant
        if r["threshold"] is not None:
            assert r["threshold_error"] == q.v_th_mant / q.act_scale
            assert r["floor_error_per_message"] == 1 / (64 * q.act_scale)
    table = format_report(rows)
    assert "S (1/act)" in table and "floor/msg" in table and syn[0].name in table


# --- end to end on the emulator --------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [mlp, convnet])
@pytest.mark.parametrize("th", [0.0, 0.05, 0.3])
@pytest.mark.parametrize("calibrated", [False, True])
def test_settled_readout_is_the_ann_within_the_derived_bound(
    rng: np.random.Generator, tmp_path: Path, make, th: float, calibrated: bool
) -> None:
    net = make(rng, th)
    x = rng.random((16, *net.input.shape))
    net = st.calibrate(net, x) if calibrated else net
    res = compile_source(net, tmp_path / "m.net")
    k = st.settle_index(net)
    run = st.run_sdnn(res.path, res.network, x, k + 3)
    out = run.output[..., k]
    assert run.synapse_wraps == 0
    assert np.array_equal(np.broadcast_to(run.raw[..., k : k + 1], run.raw[..., k:].shape), run.raw[..., k:])
    assert not np.array_equal(run.raw[..., k - 1], run.raw[..., k])  # settled at K, not before
    for ref, want in (("quantized", st.quantized_ann(res.network, x)), ("float", st.ann_forward(net, x)[-1])):
        bound = st.error_bound(res.network, x, ref)
        err = np.abs(out - want)
        worst = np.unravel_index(np.argmax(err - bound), err.shape)
        assert np.all(err <= bound + FLOAT_EPS), (ref, worst, err[worst], bound[worst])
    if th == 0.0:  # zero thresholds: only the message floor separates the read-out from the quantized ANN
        assert np.abs(out - st.quantized_ann(res.network, x)).max() < 1e-3


def test_automatic_thresholds_meet_the_budget_and_cut_messages(rng: np.random.Generator) -> None:
    net = mlp(rng)
    x = rng.random((32, 12))
    choice = st.choose_thresholds(net, x, budget=0.05, fractions=(0.5, 0.2, 0.05))
    fractions = [t.fraction for t in choice.trials]
    assert fractions == [0.5, 0.2, 0.05, 0.0]
    assert choice.trials[-1].error == 0.0 and choice.chosen.error <= 0.05
    assert all(t.error > 0.05 for t in choice.trials[: fractions.index(choice.chosen.fraction)])
    assert choice.chosen.messages <= choice.trials[-1].messages
    chosen = {lay.name: lay.neuron.threshold for lay in choice.network.synaptic()}
    assert (
        chosen["fc1"] == choice.chosen.thresholds["fc1"]
        and choice.network.input.delta == choice.chosen.thresholds["input"]
    )
    assert all(lay.neuron.act_max is not None for lay in choice.network.synaptic())


def test_thresholds_can_be_set_explicitly(rng: np.random.Generator) -> None:
    net = st.with_thresholds(mlp(rng), {"fc1": 0.2, "fc2": 0.1}, input_delta=0.02)
    assert [lay.neuron.threshold for lay in net.synaptic()[:2]] == [0.2, 0.1] and net.input.delta == 0.02
    with pytest.raises(LoihicError, match="unknown"):
        st.with_thresholds(net, {"nope": 1.0})


def test_scales_balance_weight_resolution_around_a_capped_layer() -> None:
    """Layer 2 capped at S = 100.  Greedy scales (S_1 = 255 * 500 / 64 = 1992) would leave layer 2 a weight scale
    of 64 * 100 / 1992 = 3.2, 0.8% of its 400; balanced, layers 1 and 2 both keep rho = sqrt(100 * 64^2 /
    (255 * 500 * 400)) = 9.0% and layer 3 all of its own; no larger rho fits."""
    s0, omega, caps = 255.0, [500.0, 400.0, 300.0], [1e9, 100.0, 1e9]
    scales, why, rho = choose_scales(s0, omega, caps)
    ratios = [64 * s / p / o for s, p, o in zip(scales, [s0, *scales[:-1]], omega, strict=True)]
    assert min(ratios) == pytest.approx(rho, rel=1e-9)
    assert rho == pytest.approx((100 * 64**2 / (255 * 500 * 400)) ** 0.5)
    assert ratios[2] == pytest.approx(1.0) and scales[1] <= caps[1]
    assert ratios[0] == pytest.approx(ratios[1], rel=1e-6)  # the capped layer and the one before share the cost
    assert why == ["next layer's weights", "cap", "weights"]
    assert choose_scales(s0, omega, [1e9] * 3)[2] == 1.0  # nothing capped: every layer at its largest


def test_an_underestimated_act_max_wraps_the_conv_sum(rng: np.random.Generator, tmp_path: Path) -> None:
    """The 24-bit conv cap is real: sized for |z| = 0.01 the scales overflow Lava's conv accumulator, which the
    emulator's monitor counts (with the calibrated act_max, the end-to-end test above sees none)."""
    net = convnet(rng)
    net = net.replace(
        layers=tuple(
            dataclasses.replace(lay, neuron=dataclasses.replace(lay.neuron, act_max=0.01))
            if isinstance(lay, ir.SYNAPTIC)
            else lay
            for lay in net.layers
        )
    )
    res = compile_source(net, tmp_path / "m.net")
    assert st.run_sdnn(res.path, res.network, rng.random((4, *net.input.shape)), 6).synapse_wraps > 0


def test_readme_sdnn_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"<!-- readme-sdnn-example -->\s*```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope: dict = {"__name__": "readme_sdnn"}
    exec(compile(block, "README.md", "exec"), scope)  # noqa: S102 - our own README
    assert (tmp_path / "sdnn.net").is_file() and scope["choice"].chosen.error <= 0.05
