"""``loihic report`` and the resource / hardware-readiness numbers (compiler/resources.py)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from loihic.compiler.config import CompileConfig
from loihic.compiler.netx.read import read_netx
from loihic.compiler.resources import hardware_notes, layer_resources, synops_per_inference
from loihic.training.ann import train_ann
from loihic.training.checkpoint import save_checkpoint
from loihic.training.convert import convert
from loihic.training.data import load_dataset
from loihic.training.deployment import compile_checkpoint
from sim_tests.unit.test_cli_bad_input import assert_refused, run_cli


@pytest.fixture(scope="module")
def digits_net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("report")
    x_train, _ = load_dataset("digits", "train")
    for name, hidden in (("snn", 32), ("other", 24)):
        ann = train_ann("mlp", "digits", 2, 0, hidden=hidden, progress=False)
        save_checkpoint(d / f"{name}.pt", convert(ann, x_train, 12, calib_samples=64, progress=False))
    compile_checkpoint(str(d / "snn.pt"), str(d / "m.net"), CompileConfig())
    return d


def test_report_writes_json_and_plots(digits_net: Path) -> None:
    run = run_cli(digits_net, "report", "m.net", "--reference", "snn.pt", "--samples", "60", "-o", "rep", "--json")
    assert run.rc == 0, run.stderr
    res = json.loads(run.stdout.strip().splitlines()[-1])
    for name in ("report.json", "parity.png", "weights.png", "accuracy_vs_T.png"):
        assert (digits_net / "rep" / name).stat().st_size > 0, name
    hidden, readout = res["layers"]
    assert hidden["spike_count_correlation"] > 0.9 and hidden["rate_error"] < 0.05
    assert readout["readout_v_correlation"] > 0.9
    assert 0.9 <= res["prediction_agreement"] <= 1.0 and res["samples"] == 60
    assert [s["timesteps"] for s in res["accuracy_vs_timesteps"]] == [1, 3, 6, 12]
    ev = run_cli(digits_net, "evaluate", "m.net", "--samples", "60", "--json")
    assert json.loads(ev.stdout.strip().splitlines()[-1])["accuracy"] == pytest.approx(res["accuracy_loihi"])
    r = res["resources"]
    assert r["neurons"] == 32 + 10 and r["synapses"] == 64 * 32 + 32 * 10
    assert r["synops_per_inference"] > 0 and "Davies" in r["energy_source"] and "Intel" in r["limits_source"]
    assert {n["field"] for n in res["hardware_notes"]} == {"iDecay", "timesteps"}  # T=12: not a power of two
    assert_refused(run_cli(digits_net, "report", "m.net", "--reference", "snn.pt", "-o", "rep"), "rep", "--force")


def test_report_refuses_a_reference_that_does_not_match(digits_net: Path) -> None:
    run = run_cli(digits_net, "report", "m.net", "--reference", "other.pt", "-o", "bad")
    assert_refused(run, "other.pt", "does not match", "m.net")


def test_target_loihi2_refuses_illegal_decays_with_the_nearest_setting(digits_net: Path) -> None:
    run = run_cli(digits_net, "compile", "snn.pt", "--target", "loihi2", "-o", "hw.net", "--effect-samples", "50")
    line = assert_refused(run, "--target loihi2", "iDecay = 4096", "nearest legal: iDecay 4095")
    assert "decays clamped to 4095: emulator accuracy" in line


def _hand_net(path: Path) -> Path:
    """conv 1x5x5 -> 2 channels k3 pad 1 stride 2 (3x3 out), flatten, dense 18 -> 4: hand-countable."""
    with h5py.File(path, "w") as f:
        layer = f.create_group("layer")

        def neuron(g: h5py.Group) -> None:
            n = g.create_group("neuron")
            n["type"] = "CUBA"
            for k, v in (("iDecay", 4096), ("vDecay", 100), ("vThMant", 80), ("refDelay", 1), ("gradedSpike", 0)):
                n[k] = v

        g = layer.create_group("0")
        g["type"], g["shape"] = "input", np.array([1, 5, 5])  # loihic's layout: (C, H, W), torch weights
        g = layer.create_group("1")
        g["type"], g["shape"] = "conv", np.array([2, 3, 3])
        g["weight"] = np.full((2, 1, 3, 3), 2, np.int64)
        g["stride"], g["padding"], g["dilation"], g["groups"] = np.array([2, 2]), np.array([1, 1]), np.array([1, 1]), 1
        neuron(g)
        g = layer.create_group("2")
        g["type"], g["shape"] = "flatten", np.array([18])
        g = layer.create_group("3")
        g["type"], g["shape"] = "dense", np.array([4])
        w = np.zeros((4, 18), np.int64)
        w[:, :9] = 4
        g["weight"] = w
        neuron(g)
    return path


def test_resources_of_a_hand_countable_network(tmp_path: Path) -> None:
    model = read_netx(_hand_net(tmp_path / "h.net"))
    conv, dense = layer_resources(model)
    # stride 2, pad 1 on 5x5: output rows/cols 0, 2, 4 of the padded grid see 2, 3, 2 valid taps per axis
    assert conv["neurons"] == 18 and conv["synapses"] == 2 * (2 + 3 + 2) ** 2
    assert dense["neurons"] == 4 and dense["synapses"] == 72 and dense["nonzero_synapses"] == 36
    assert conv["stored_weights"] == 18 and conv["synaptic_memory_bits"] == conv["synapses"] * 8
    assert {n["field"] for n in hardware_notes(model, 12)} == {"iDecay", "timesteps"}
    # synops: every input spike times the nonzero weights it reaches
    x = np.zeros((1, 1, 5, 5, 3), np.uint8)
    x[0, 0, 2, 2, :] = 1  # the centre pixel, on 3 steps
    spikes = [np.zeros((1, 2, 3, 3, 3), np.uint8), np.zeros((1, 4, 3), np.uint8)]
    spikes[0][0, 0, 0, 0, :2] = 1  # flattened index 0: reaches 4 dense neurons, twice
    ops = synops_per_inference(model, spikes, x)
    centre_fanout = 2 * 1 * 1  # padded (3, 3) lies only in output (1, 1)'s window (rows/cols 2..4), 2 channels
    assert ops == [3 * centre_fanout, 2 * 4]


def _snntorch_nir(path: Path, hidden: int, seed: int) -> None:
    """An snnTorch 1.0 network (leaky hidden and output layers, reset to zero) written by its own NIR exporter."""
    import nir
    import snntorch as snn
    import torch
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, hidden),
        snn.Leaky(
            beta=torch.full((hidden,), 0.9), threshold=torch.ones(hidden), init_hidden=True, reset_mechanism="zero"
        ),
        torch.nn.Linear(hidden, 10),
        snn.Leaky(
            beta=torch.full((10,), 0.9), threshold=torch.ones(10), init_hidden=True, output=True, reset_mechanism="zero"
        ),
    )
    with torch.no_grad():  # strong enough weights that both layers fire on digits
        net[0].weight.mul_(4.0)
        net[2].weight.mul_(3.0)
    nir.write(path, export_to_nir(net, torch.rand(64)))


def test_report_with_a_nir_reference(tmp_path: Path) -> None:
    x, y = load_dataset("digits", "test")
    np.save(tmp_path / "x.npy", x[:40].reshape(40, 64))
    np.save(tmp_path / "y.npy", y[:40])
    _snntorch_nir(tmp_path / "g.nir", 32, 0)
    _snntorch_nir(tmp_path / "other.nir", 24, 1)
    assert run_cli(tmp_path, "compile", "g.nir", "-T", "16", "-o", "m.net").rc == 0
    args = ("--data", "x.npy", "--labels", "y.npy", "--json")
    run = run_cli(tmp_path, "report", "m.net", "--reference", "g.nir", "-o", "rep", *args)
    assert run.rc == 0, run.stderr
    res = json.loads(run.stdout.strip().splitlines()[-1])
    assert res["reference_kind"] == "nir" and res["reference_sha256"] == res["reference_sha256_recorded"]
    hidden, out = res["layers"]
    assert hidden["rate_float"] > 0.01 and out["rate_float"] > 0.001, "the case should spike"
    assert hidden["spike_count_correlation"] > 0.9 and out["spike_count_correlation"] > 0.8
    assert res["prediction_agreement"] >= 0.8
    assert (tmp_path / "rep" / "parity.png").stat().st_size > 0
    bad = run_cli(tmp_path, "report", "m.net", "--reference", "other.nir", "-o", "bad", *args)
    assert_refused(bad, "other.nir", "does not match", "m.net")
