"""Noise-based T=1 training (Jiang & Zhang), its T=N stages, and the deployed plain-LIF network (digits)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from loihic.compiler import ir
from loihic.compiler.config import CompileConfig
from loihic.compiler.encoding import encode_all as encoded
from loihic.compiler.errors import InputError
from loihic.compiler.load.checkpoint import network_data
from loihic.compiler.netx.read import read_netx
from loihic.deploy.verification.accuracy import emulator_accuracy
from loihic.training.checkpoint import load_checkpoint, save_checkpoint
from loihic.training.data import load_dataset
from loihic.training.deployment import compile_checkpoint
from loihic.training.models import build_model, sequential
from loihic.training.noise import (
    NoiseConfig,
    _forward_bptt,
    _normalised_potential,
    evaluate_noise,
    noise_network,
    noise_outputs,
    residual_gain,
    steady_offset,
    surrogate_spike,
    train_bptt,
    train_noise,
    with_offset,
)
from loihic.training.snn import SNNModel, evaluate_snn, snn_outputs


@pytest.fixture(scope="module")
def ckpt() -> dict:
    return train_noise("ap2-512fc", "digits", 40, 0, progress=False)


@pytest.fixture(scope="module")
def test_set() -> tuple[np.ndarray, np.ndarray]:
    return load_dataset("digits", "test")


# --- training and checkpoint -----------------------------------------------------------------------------
def test_checkpoint_fields(ckpt: dict, tmp_path) -> None:
    snn = ckpt["snn"]
    assert ckpt["kind"] == "snn" and snn["method"] == "noise" and snn["output"] == "spiking"
    assert snn["thresholds"] == [1.0, 1.0] and snn["leak"] == 0.5 and snn["reset"] == "hard"
    assert snn["encoding"] == "direct" and snn["timesteps"] == 1
    assert snn["noise"] == {"type": "gaussian", "mean": 0.5, "std": 1 / 6, "clip": True}
    assert ckpt["hyperparams"]["lr"] == 1e-3 and ckpt["hyperparams"]["t_max"] == 100  # digits default lr
    path = save_checkpoint(tmp_path / "n.pt", ckpt)
    back = load_checkpoint(path, "snn")
    assert back["snn"] == snn and all(torch.equal(back["state_dict"][k], v) for k, v in ckpt["state_dict"].items())


def test_training_beats_chance(ckpt: dict, test_set) -> None:
    x, y = test_set
    assert ckpt["metrics"]["test_accuracy"] > 0.5  # stage 2 at T = 1: the training condition
    assert evaluate_noise(ckpt, x, y, 5, "3") > 0.75
    assert evaluate_noise(ckpt, x, y, 10, "2") > ckpt["metrics"]["test_accuracy"]  # T = N helps (sec. 3.1)


def test_training_is_seeded() -> None:
    a = train_noise("mlp", "digits", 2, 3, progress=False, limit_train=200, hidden=32)
    b = train_noise("mlp", "digits", 2, 3, progress=False, limit_train=200, hidden=32)
    c = train_noise("mlp", "digits", 2, 4, progress=False, limit_train=200, hidden=32)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert not torch.equal(a["state_dict"]["1.weight"], c["state_dict"]["1.weight"])


def test_uniform_noise_trains() -> None:
    ck = train_noise("ap2-512fc", "digits", 10, 0, noise="uniform", progress=False)
    assert ck["snn"]["noise"]["type"] == "uniform" and ck["metrics"]["test_accuracy"] > 0.3


def test_networks() -> None:
    ap = network_data(noise_network("ap2-512fc", (1, 28, 28), 10).layers)
    assert [layer["type"] for layer in ap] == ["avgpool", "flatten", "dense", "dense"]
    assert (ap[2]["in"], ap[2]["out"], ap[2]["spiking"], ap[3]["out"]) == (196, 512, True, 10)
    cnn = noise_network("mnist-cnn", (1, 28, 28), 10)
    assert [layer.weight.shape[0] for layer in cnn.layers if isinstance(layer, ir.Conv)] == [64, 128, 128]
    assert ir.infer_shapes(cnn)[-2] == (128 * 7 * 7,) and cnn.layers[-1].out_features == 10
    assert tuple(build_model(cnn).state_dict()["9.weight"].shape) == (10, 6272)
    assert noise_network("mlp", (1, 8, 8), 10, hidden=16).layers[1].out_features == 16


# --- stage semantics -------------------------------------------------------------------------------------
def test_noise_distributions() -> None:
    gen = torch.Generator().manual_seed(0)
    g = NoiseConfig().sample((200_000,), gen)
    assert g.min() >= 0 and g.max() <= 1
    assert abs(float(g.mean()) - 0.5) < 2e-3 and abs(float(g.std()) - 1 / 6) < 3e-3
    u = NoiseConfig("uniform").sample((200_000,), gen)
    assert u.min() >= 0 and u.max() <= 1 and abs(float(u.std()) - 1 / math.sqrt(12)) < 3e-3
    free = NoiseConfig(std=0.5, clip=False).sample((10_000,), gen)
    assert free.min() < -1 and free.max() > 2


def test_surrogate_gradient_is_eq4() -> None:
    h = torch.linspace(-1, 3, 41, requires_grad=True)
    s = surrogate_spike(h, 1.0, 3.0)
    s.sum().backward()
    assert torch.equal(s, (h > 1).float())
    want = 3.0 / (2 * (1 + (math.pi / 2 * 3.0 * (h.detach() - 1)) ** 2))
    torch.testing.assert_close(h.grad, want)


def test_normalised_potential_eqs_8_to_10() -> None:
    v = torch.randn(7, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    n = _normalised_potential(v, 4.0, 0.5, 0.5).reshape(7, -1)
    torch.testing.assert_close(n.mean(1), torch.full((7,), 0.5))
    assert float(n.min()) >= 0.25 - 1e-6 and float(n.max()) <= 0.75 + 1e-6
    assert torch.allclose((n - 0.5).abs().amax(1), torch.full((7,), 0.25))  # the extreme reaches 1/alpha
    assert torch.equal(_normalised_potential(torch.zeros(2, 4), 4.0, 0.3, 0.5), torch.full((2, 4), 0.3))


def test_residual_gain() -> None:
    cfg = NoiseConfig()
    assert residual_gain(cfg, 2.0) == 0.0 and residual_gain(cfg, 4.0) == pytest.approx(0.5)
    assert residual_gain(cfg, math.inf) == 1.0 and residual_gain(cfg, 1.0) == 0.0
    assert residual_gain(NoiseConfig(std=0.0), 4.0) == 0.0


def test_stage3_limits(ckpt: dict, test_set) -> None:
    x, y = test_set
    # alpha = 2: no residual noise, so stage 3 is deterministic (direct input): seeds do not matter
    a = noise_outputs(ckpt, x, 5, "3", alpha=2.0, seed=0)
    np.testing.assert_array_equal(a, noise_outputs(ckpt, x, 5, "3", alpha=2.0, seed=9))
    assert not np.array_equal(noise_outputs(ckpt, x, 5, "3", seed=0), noise_outputs(ckpt, x, 5, "3", seed=9))
    # alpha -> inf: N(lambda V) = beta and N' = N_noise - mean, i.e. stage 2 (up to float rounding)
    s2, s3 = (noise_outputs(ckpt, x, 5, m, alpha=math.inf, seed=2) for m in ("2", "3"))
    assert (s2 != s3).any(axis=1).mean() < 0.02


def test_no_noise_equals_evaluate_snn(ckpt: dict, test_set) -> None:
    """Mode "lif" (the deployed network) is training.snn's float SNN, spike count for spike count."""
    x, y = test_set
    for steps in (1, 5):
        np.testing.assert_array_equal(noise_outputs(ckpt, x, steps, "lif"), snn_outputs(ckpt, x, steps))
        assert evaluate_noise(ckpt, x, y, steps, "lif") == evaluate_snn(ckpt, x, y, steps)
    np.testing.assert_array_equal(noise_outputs(ckpt, x, 5, "lif+mean", offset=0.0), noise_outputs(ckpt, x, 5, "lif"))


def test_offset_checkpoint_is_lif_plus_mean(ckpt: dict, test_set) -> None:
    x, y = test_set
    c = steady_offset(0.5)
    assert c == 0.25
    off = with_offset(ckpt, c)
    assert all(layer["bias"] for layer in off["layers"] if layer["type"] == "dense")
    assert torch.equal(off["state_dict"]["4.bias"], torch.full((10,), 0.25))
    want = noise_outputs(ckpt, x, 5, "lif+mean")  # offset defaults to beta (1 - lambda)
    got = snn_outputs(off, x, 5)  # bias inside the matmul: float rounding may differ in a rare sample
    assert (want != got).any(axis=1).mean() < 0.02


def test_spiking_output_reference_loop() -> None:
    """SNNModel with a spiking output: LIF with leak and hard reset in the last layer, counts out."""
    rng = np.random.default_rng(5)
    w1 = (rng.integers(-8, 9, size=(6, 4)) / 8).astype(np.float32)
    w2 = (rng.integers(-8, 9, size=(3, 6)) / 8).astype(np.float32)
    arch = sequential((1, 2, 2), ["flatten", ("linear", 6), "relu", ("linear", 3)])
    state = {"1.weight": torch.tensor(w1), "3.weight": torch.tensor(w2)}
    spikes = (rng.random((5, 1, 2, 2, 9)) < 0.6).astype(np.uint8)
    run = SNNModel(arch, state, [0.5625, 0.3125], leak=0.5).simulate(spikes, record=True)
    want = np.zeros((5, 3), np.float32)
    for i in range(5):
        v1, v2 = np.zeros(6, np.float32), np.zeros(3, np.float32)
        for t in range(9):
            v1 = np.float32(0.5) * v1 + w1 @ spikes[i, ..., t].reshape(-1).astype(np.float32)
            s1 = v1 > 0.5625
            v1[s1] = 0
            v2 = np.float32(0.5) * v2 + w2 @ s1.astype(np.float32)
            s2 = v2 > 0.3125
            v2[s2] = 0
            want[i] += s2
            assert np.array_equal(run.spikes[1][i, :, t].numpy(), s2)
    np.testing.assert_array_equal(run.output.numpy(), want)
    assert len(run.spikes) == 2


# --- the baseline: direct BPTT at T = N -------------------------------------------------------------------
@pytest.fixture(scope="module")
def bptt() -> tuple[dict, list]:
    seen: list = []
    ck = train_bptt("ap2-512fc", "digits", 6, 0, timesteps=4, progress=False, on_epoch=lambda e, c: seen.append((e, c)))
    return ck, seen


def test_bptt_checkpoint_and_callback(bptt) -> None:
    ck, seen = bptt
    assert ck["snn"]["method"] == "bptt" and "noise" not in ck["snn"] and ck["snn"]["timesteps"] == 4
    assert ck["hyperparams"]["timesteps_train"] == 4 and ck["snn"]["reset"] == "hard" and ck["snn"]["leak"] == 0.5
    assert [e for e, _ in seen] == list(range(1, 7))
    last = seen[-1][1]
    assert all(torch.equal(last["state_dict"][k], v) for k, v in ck["state_dict"].items())
    assert not torch.equal(seen[0][1]["state_dict"]["2.weight"], last["state_dict"]["2.weight"])
    assert ck["metrics"]["test_accuracy"] > 0.5  # 6 epochs at lr 1e-3 on digits; measured ~0.8


def test_bptt_forward_is_the_deployed_lif(bptt, test_set) -> None:
    """What BPTT trains (forward, through the surrogate) is spike for spike the plain LIF the compiler
    deploys (evaluate_snn, direct encoding): the spike counts agree exactly."""
    ck, _ = bptt
    x, _ = test_set
    model = SNNModel.from_checkpoint(ck)
    prefix, stages = model.prefix, model.stages
    with torch.no_grad():
        mean_spikes = _forward_bptt(prefix, stages, torch.from_numpy(x[:64]), 4, 3.0)
    counts = snn_outputs(ck, x[:64], timesteps=4, seed=0)
    np.testing.assert_allclose(mean_spikes.numpy() * 4, counts, atol=1e-5)


def test_bptt_backprops_through_time(bptt, test_set) -> None:
    """The gradient reaches the first layer's weights through the membrane carried across steps: at T = 4 it
    differs from the sum of four independent single steps (which is what T = 1 training sees)."""
    ck, _ = bptt
    x, _ = test_set
    model = SNNModel.from_checkpoint(ck)
    prefix, stages = model.prefix, model.stages
    w = stages[0].synapse.weight
    xb = torch.from_numpy(x[:32])
    g_t4 = torch.autograd.grad(_forward_bptt(prefix, stages, xb, 4, 3.0).sum(), w)[0]
    g_t1 = torch.autograd.grad(_forward_bptt(prefix, stages, xb, 1, 3.0).sum(), w)[0]
    assert torch.isfinite(g_t4).all() and g_t4.abs().sum() > 0
    assert not torch.allclose(g_t4, g_t1, atol=1e-6)


def test_bptt_bad_options() -> None:
    with pytest.raises(InputError, match="^--timesteps 0"):
        train_bptt("ap2-512fc", "digits", 1, 0, timesteps=0, progress=False)
    with pytest.raises(InputError, match="^--surrogate-a -1"):
        train_bptt("ap2-512fc", "digits", 1, 0, surrogate_a=-1.0, progress=False)


# --- deployment ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compiled(ckpt: dict, tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("noise")
    paths = {}
    for name, ck in (("plain", ckpt), ("offset", with_offset(ckpt, steady_offset(0.5)))):
        save_checkpoint(d / f"{name}.pt", ck)
        # input_bits=None: 8-bit input as trained, so only weight quantization separates it from float
        out = compile_checkpoint(str(d / f"{name}.pt"), str(d / f"{name}.net"), CompileConfig(input_bits=None)).path
        paths[name] = str(out)
    return paths


@pytest.mark.parametrize("name", ["plain", "offset"])
def test_emulator_close_to_float(ckpt: dict, compiled: dict, test_set, name: str) -> None:
    x, y = test_set
    model = read_netx(compiled[name])
    assert model.layers[-1].neuron.v_decay == 2048 and model.layers[-1].neuron.i_decay == 4096
    emu = emulator_accuracy(model, x, y, 5, "direct", 0, device="cpu", progress=False)
    flt = evaluate_noise(ckpt, x, y, 5, "lif" if name == "plain" else "lif+mean")
    assert abs(emu - flt) <= 0.05, (name, emu, flt)  # weight quantization only; measured gap ~0.01


@pytest.mark.lava
@pytest.mark.parametrize("name", ["plain", "offset"])
def test_emulator_equals_lava(compiled: dict, test_set, name: str) -> None:
    from loihic.deploy.verification.parity import verify

    x, y = test_set
    spikes = encoded(x[:3], 5, "direct", 0)
    rep = verify(compiled[name], spikes, y[:3], input_message_bits=8, device="cpu", progress=False)
    assert rep.identical and rep.mismatches == 0, rep.first_mismatch
    assert rep.voltage_equal is None  # spiking output: read by spike counts


# --- bad input -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"noise": "pink"}, "--noise 'pink'"),
        ({"noise_std": -0.1}, "--noise-std -0.1"),
        ({"noise_std": float("nan")}, "--noise-std nan"),
        ({"noise_mean": float("inf")}, "--noise-mean inf"),
        ({"lr": 0.0}, "--lr 0.0"),
        ({"epochs": 0}, "--epochs 0"),
        ({"t_max": 0}, "--t-max 0"),
        ({"model": "resnet"}, "--model 'resnet'"),
    ],
)
def test_train_bad_options(kwargs: dict, flag: str) -> None:
    args = {"model": "ap2-512fc", "dataset": "digits", "epochs": 1, "seed": 0, "progress": False} | kwargs
    with pytest.raises(InputError, match="^" + flag.replace("(", r"\(")) as exc:
        train_noise(**args)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"timesteps": 0}, "--timesteps 0"),
        ({"alpha": 0.0}, "--alpha 0.0"),
        ({"alpha": -4.0}, "--alpha -4.0"),
        ({"alpha": float("nan")}, "--alpha nan"),
        ({"stage": "4"}, "--stage '4'"),
        ({"beta": math.inf}, "--beta inf"),
        ({"stage": "lif+mean", "offset": math.nan}, "--offset nan"),
    ],
)
def test_evaluate_bad_options(ckpt: dict, test_set, kwargs: dict, flag: str) -> None:
    x, y = test_set
    with pytest.raises(InputError, match="^" + flag) as exc:
        evaluate_noise(ckpt, x[:4], y[:4], **({"timesteps": 2} | kwargs))
    assert "\n" not in str(exc.value)
