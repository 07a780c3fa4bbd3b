"""``loihic report`` on sigma-delta files (deploy/verification/report.py ``build_sdnn_report``, ``sdnn_traffic``):
messages and synaptic operations per layer against the ANN's MACs, activations against the float ANN, counted
independently here from the emulator's record; the refusals (wrong reference, ``export-nir``)."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import loihic
from loihic.compiler import ir
from loihic.compiler.errors import InputError
from loihic.compiler.netx.read import read_netx
from loihic.compiler.resources import layer_resources, network_macs
from loihic.deploy.emulator.network import Emulator
from loihic.deploy.verification.report import sdnn_traffic
from loihic.training.ann import train_ann
from loihic.training.checkpoint import save_checkpoint
from loihic.training.data import load_dataset


@pytest.fixture(scope="module")
def sdnn_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digits MLP (64-32-10, bias) as a sigma-delta file (fixed thresholds: no threshold search), its SDNN
    checkpoint, its ANN checkpoint, and a rate-coded file of the same ANN."""
    d = tmp_path_factory.mktemp("report_sdnn")
    x, _ = load_dataset("digits", "train")
    torch.manual_seed(0)
    ann = train_ann("mlp", "digits", 2, 0, hidden=32, progress=False, bias=True)
    save_checkpoint(d / "ann.pt", ann)
    sd = loihic.convert(ann, x[:128], neuron="sdnn", thresholds="0.02,0.05")
    save_checkpoint(d / "sd.pt", sd)
    loihic.compile(sd, d / "m.net")
    snn = loihic.convert(ann, x[:64], timesteps=8)
    save_checkpoint(d / "snn.pt", snn)
    loihic.compile(snn, d / "lif.net")
    return d


def _main(cwd: Path, *argv: str) -> tuple[int, str, str]:
    """The CLI in this process (no interpreter start-up): exit code, stdout and stderr."""
    from loihic.deploy.cli.main import main

    out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            rc = main(list(argv))
    finally:
        os.chdir(here)
    return rc, out.getvalue(), err.getvalue()


def test_report_on_an_sdnn_file(sdnn_dir: Path) -> None:
    rc, out, err = _main(sdnn_dir, "report", "m.net", "--reference", "sd.pt", "--samples", "40", "-o", "rep", "--json")
    assert rc == 0, err
    res = json.loads(out.strip().splitlines()[-1])
    for name in ("report.json", "parity.png", "weights.png", "accuracy_vs_T.png"):
        assert (sdnn_dir / "rep" / name).stat().st_size > 0, name
    assert res["sigma_delta"] and res["timesteps"] == 3 and res["settle_index"] == 2 and res["samples"] == 40
    delta, hidden, readout = res["layers"]
    assert delta["name"] == "input (Delta)" and delta["activation"]["max_error"] <= 0.5 / 255 + 1e-12  # rounding
    assert hidden["activation"]["correlation"] > 0.99 and readout["readout"]["correlation"] > 0.99
    assert res["prediction_agreement"] >= 0.95
    # accuracy from the read-out at each step: chance until the pipeline has filled, evaluate's answer at T = 3
    sweep = res["accuracy_vs_timesteps"]
    assert [s["timesteps"] for s in sweep] == [1, 2, 3] and sweep[0]["loihi"] < 0.5
    xt, yt = load_dataset("digits", "test")
    assert loihic.evaluate(sdnn_dir / "m.net", xt[:40], yt[:40]) == pytest.approx(sweep[-1]["loihi"])
    rc, text, err = _main(sdnn_dir, "report", "m.net", "--reference", "sd.pt", "--samples", "9", "-o", "rep2")
    assert rc == 0 and "synops/MAC" in text and "the read-out has settled from step 3" in text, err
    r = res["resources"]
    assert [row["ann_macs"] for row in r["layers"]] == [64 * 33, 33 * 10]  # 32 hidden + the read-out's bias unit
    assert r["synops_per_ann_mac"] == pytest.approx(r["synops_per_inference"] / r["ann_macs_per_inference"])
    assert 0 < r["synops_per_inference"] and r["synops_per_image_stream"] > 0 and res["stream_images"] == 35


def test_traffic_counted_independently(sdnn_dir: Path) -> None:
    """Messages and synops of sdnn_traffic equal a count made here from the emulator's record: every nonzero
    message times the nonzero weights it reaches; a chain of one image repeated costs no synaptic operation
    once the pipeline has filled."""
    model = read_netx(sdnn_dir / "m.net", sigma_delta=True)
    xt, _ = load_dataset("digits", "test")
    x = xt[:30]
    tr = sdnn_traffic(model, x, 4, chain=5, chunk=7)  # chunks and chains that do not divide 30 evenly
    held = np.repeat(np.rint(x * 255).astype(np.int64)[..., None], 4, axis=-1)
    rec = Emulator(model, "cpu", stream=True).run(held, record_layers=True).layer_spikes
    dense = model.neuron_layers
    want_msgs = [float((r != 0).sum()) / len(x) for r in rec]
    want_ops = [
        float(((rec[k] != 0).reshape(len(x), -1, 4).sum(-1) @ (lay.weight != 0).sum(0)).mean())
        for k, lay in enumerate(dense)
    ]
    assert tr.messages == pytest.approx(want_msgs, rel=1e-12) and tr.synops == pytest.approx(want_ops, rel=1e-12)
    assert np.array_equal(tr.output, rec[-1])
    # the stream: images 2..5 of each chain; by hand for the first chain
    chain = np.concatenate([held[i] for i in range(5)], axis=-1)[None]
    srec = Emulator(model, "cpu", stream=True).run(chain, record_layers=True).layer_spikes
    first = [float((r[..., 4:] != 0).sum()) / 4 for r in srec]
    per_chain = sdnn_traffic(model, x[:5], 4, chain=5)
    assert per_chain.stream_images == 4 and per_chain.stream_messages == pytest.approx(first, rel=1e-12)
    still = sdnn_traffic(model, np.repeat(x[:1], 4, axis=0), 4, chain=4)
    assert still.stream_synops == [0.0, 0.0] and still.stream_messages[:-1] == [0.0, 0.0]
    assert still.synops[0] > 0  # from a fresh network the same image costs its messages once


def test_network_macs_counts_the_ann_as_written(rng: np.random.Generator) -> None:
    """Average pooling folded into the next conv widens its kernel (what the netx file, and layer_resources,
    count); network_macs counts the ANN before the fold."""
    from loihic.compiler.config import CompileConfig
    from loihic.compiler.passes.lower_avgpool import lower_avgpool

    net = ir.Network(
        ir.Input((1, 8, 8)),
        (
            ir.Conv("c1", rng.normal(size=(4, 1, 3, 3)), None, ir.RELU, padding=(1, 1)),
            ir.AvgPool("p", (2, 2), (2, 2)),
            ir.Conv("c2", rng.normal(size=(6, 4, 3, 3)), None, ir.RELU),
            ir.Flatten("f"),
            ir.Dense("d", rng.normal(size=(10, 6 * 2 * 2)), None, ir.READOUT),
        ),
        timesteps=4,
        encoding="direct",
    )
    interior = 4 * 6 * 6 * 9  # 8x8, pad 1: 36 outputs see all 9 taps
    edges = 4 * (4 * 6 * 6 + 4 * 4)  # 24 border outputs see 6 taps, 4 corners 4
    c2 = 6 * 2 * 2 * 4 * 9
    assert [r["macs"] for r in network_macs(net)] == [interior + edges, c2, 10 * 24]
    folded = network_macs(lower_avgpool(net, CompileConfig()))
    assert folded[1]["macs"] == 6 * 2 * 2 * 4 * 36  # a 6x6 kernel at stride 2: four times the MACs


def test_report_refusals_and_export_nir(sdnn_dir: Path) -> None:
    bad = (
        (
            ("report", "m.net", "--reference", "ann.pt", "--dataset", "digits", "-o", "r1"),
            "ann.pt: is not a sigma-delta",
        ),
        (
            ("report", "m.net", "--reference", "snn.pt", "--dataset", "digits", "-o", "r2"),
            "'loihic convert --neuron sdnn'",
        ),
        (("report", "lif.net", "--reference", "sd.pt", "--dataset", "digits", "-o", "r3"), "sd.pt: is a sigma-delta"),
        (("export-nir", "m.net", "-o", "m.nir"), "layer 0: neuron type 'SDNN' (sigma-delta) has no NIR equivalent"),
    )
    for argv, msg in bad:
        rc, _, err = _main(sdnn_dir, *argv)
        lines = [line for line in err.splitlines() if line.startswith("loihic: error:")]
        assert rc != 0 and len(lines) == 1 and msg in lines[0] and "Traceback" not in err, (argv, err)
        assert not (sdnn_dir / argv[-1]).exists(), argv
    assert layer_resources(read_netx(sdnn_dir / "m.net", sigma_delta=True))[0]["ann_macs"] == 64 * 33


def test_pooling_as_a_layer_computes_the_same_ann_with_fewer_synops(tmp_path: Path) -> None:
    """``pooling="layer"``: each average pooling a depthwise-conv sigma-delta layer instead of folded into the next
    layer's (wider) kernel: the same float ANN, two more synaptic layers (LeNet-5 pools twice), and fewer
    synaptic operations per image on the emulator."""
    from loihic.compiler.load.checkpoint import ann_network
    from loihic.deploy import sdnn_thresholds as st
    from loihic.deploy.sdnn_convert import convert_sdnn, lowered_ann

    x, _ = load_dataset("digits", "train")
    xt, _ = load_dataset("digits", "test")
    torch.manual_seed(0)
    ann = train_ann("lenet5", "digits", 1, 0, progress=False, bias=True)
    folded, pooled = (lowered_ann(ann_network(ann), p) for p in ("fold", "layer"))
    assert len(pooled.synaptic()) == len(folded.synaptic()) + 2
    pools = [lay for lay in pooled.synaptic() if isinstance(lay, ir.Conv) and lay.groups > 1]
    assert [p.groups for p in pools] == [6, 16] and all(np.all(p.weight == 0.25) for p in pools)
    np.testing.assert_allclose(st.ann_forward(pooled, xt[:50])[-1], st.ann_forward(folded, xt[:50])[-1], atol=1e-9)
    runs = {}
    for p in ("fold", "layer"):
        sd = convert_sdnn(ann, x, thresholds=None, calib_samples=64, pooling=p)
        assert sd["snn"]["pooling"] == p and sd["snn"]["timesteps"] == len(sd["snn"]["thresholds"]) + 1
        model = read_netx(loihic.compile(sd, tmp_path / f"{p}.net"), sigma_delta=True)
        runs[p] = sdnn_traffic(model, xt[:60], sd["snn"]["timesteps"])
    assert sum(runs["layer"].synops) < 0.7 * sum(runs["fold"].synops), (runs["layer"].synops, runs["fold"].synops)
    with pytest.raises(InputError, match="pooling 'max'"):
        lowered_ann(ann_network(ann), "max")
