"""STDB hybrid training (Datta et al. sec. IV, VI, Algorithm 2): forward = SNNModel, eq. 12 surrogate,
fine-tuning beats conversion alone, resume, deployment (emulator, Lava), bad input."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from loihic.compiler.errors import CheckpointError, InputError, LoihicError
from loihic.compiler.load.checkpoint import ann_network
from loihic.training.ann import train_ann
from loihic.training.checkpoint import load_checkpoint, save_checkpoint
from loihic.training.convert import convert
from loihic.training.data import load_dataset
from loihic.training.models import sequential
from loihic.training.snn import SNNModel, encode_chunks, evaluate_snn
from loihic.training.stdb import (
    LAST_SPIKE_INIT,
    STDBNetwork,
    derived_seed,
    lr_at,
    stdb_spike,
    train_stdb,
    train_stdb_on_dataset,
)

T = 4  # low T: conversion alone loses ~5 points on digits, which STDB wins back in 3 epochs


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, ...]:
    x_tr, y_tr = load_dataset("digits", "train")
    x_te, y_te = load_dataset("digits", "test")
    return x_tr, y_tr, x_te, y_te


@pytest.fixture(scope="module")
def ann() -> dict:
    return train_ann("mlp", "digits", epochs=8, seed=0, progress=False)


@pytest.fixture(scope="module")
def converted(ann: dict, digits: tuple) -> dict:
    return convert(ann, digits[0], T, reset="hard", seed=0, calib_samples=256, progress=False)


@pytest.fixture(scope="module")
def tuned(converted: dict, digits: tuple) -> dict:
    x_tr, y_tr, x_te, y_te = digits
    return train_stdb(converted, x_tr, y_tr, T, 3, 0, x_test=x_te, y_test=y_te, progress=False)


def _network(ckpt: dict, reset: str | None = None, leak: float | None = None) -> tuple[STDBNetwork, SNNModel]:
    snn = ckpt["snn"]
    reset, leak = reset or snn["reset"], snn["leak"] if leak is None else leak
    args = (ann_network(ckpt, weights=False), ckpt["state_dict"], snn["thresholds"], leak, reset, snn["encoding"])
    return STDBNetwork(*args), SNNModel(*args)


@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("leak", [1.0, 0.875])
def test_forward_equals_snnmodel(converted: dict, digits: tuple, reset: str, leak: float) -> None:
    net, ref = _network(converted, reset, leak)
    _, spikes = next(encode_chunks(digits[2][:64], 12, "poisson", 3))
    want = ref(spikes)
    with torch.no_grad():
        assert torch.equal(net(spikes), want)
    assert torch.equal(net(spikes).detach(), want)  # the surrogate path computes the same forward values


def test_forward_equals_snnmodel_lenet(digits: tuple) -> None:
    lenet = train_ann("lenet5", "digits", epochs=1, seed=0, progress=False, limit_train=200)
    snn = convert(lenet, digits[0], 6, reset="soft", seed=0, calib_samples=32, progress=False)
    net, ref = _network(snn)
    _, spikes = next(encode_chunks(digits[2][:16], 6, "poisson", 0))
    with torch.no_grad():
        assert torch.equal(net(spikes), ref(spikes))


def test_surrogate_is_eq12() -> None:
    u = torch.tensor([0.5, 1.5, 2.0, 0.9], requires_grad=True)
    dt = torch.tensor([1.0, 5.0, 1000.0, 0.0])
    o = stdb_spike(u, 1.0, dt, 0.3, 0.01)
    assert o.tolist() == [0.0, 1.0, 1.0, 0.0]
    o.backward(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    want = torch.tensor([1.0, 2.0, 3.0, 4.0]) * 0.3 * torch.exp(-0.01 * dt)
    assert torch.allclose(u.grad, want, rtol=0, atol=1e-7)


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_bptt_matches_hand_derivation(reset: str) -> None:
    """One input, one hidden LIF neuron, one readout: d u_T / d w1 by hand (eqs. 2, 5, 12) vs autograd."""
    arch = sequential((1,), ["flatten", ("linear", 1), "relu", ("linear", 1)])
    w1, w2, th, lam, alpha, beta = 0.6, 0.7, 1.0, 0.9, 0.3, 0.2
    sd = {"1.weight": torch.tensor([[w1]]), "3.weight": torch.tensor([[w2]])}
    net = STDBNetwork(arch, sd, [th, None], lam, reset, "poisson", alpha, beta)
    x = [1, 1, 1, 1, 0, 1, 1, 1]
    out = net(torch.tensor(x, dtype=torch.uint8).reshape(1, 1, -1))
    out.sum().backward()
    # hand: u_t = lam v_{t-1} + w1 x_t; o_t = u_t > th; v_t = reset(u_t); grad through the reset only via u
    v, dv, last, grad, y = 0.0, 0.0, LAST_SPIKE_INIT, 0.0, 0.0
    for t, xt in enumerate(x):
        u, du = lam * v + w1 * xt, lam * dv + xt
        o = float(u > th)
        grad += w2 * alpha * math.exp(-beta * (t - last)) * du
        y += w2 * o
        if o:
            last = t
            v, dv = (0.0, 0.0) if reset == "hard" else (u - th, du)
        else:
            v, dv = u, du
    assert float(out.detach()) == pytest.approx(y)
    assert float(net.net[1].weight.grad) == pytest.approx(grad, rel=1e-5)
    assert y > 0 and grad > 0.1  # the pattern fires more than once, so late spikes carry gradient


def test_stdb_improves_over_conversion(converted: dict, tuned: dict, digits: tuple) -> None:
    x_tr, y_tr, x_te, y_te = digits
    st = tuned["stdb"]
    init_acc = evaluate_snn(converted, x_te, y_te, seed=0)
    assert st["test_accuracy_init"] == init_acc
    assert st["history"]["test_accuracy"][-1] == evaluate_snn(tuned, x_te, y_te, seed=0)
    assert st["history"]["test_accuracy"][-1] >= init_acc + 0.01
    # a less noisy check: the training set under other spikes
    assert evaluate_snn(tuned, x_tr, y_tr, seed=7) >= evaluate_snn(converted, x_tr, y_tr, seed=7) + 0.01
    assert tuned["kind"] == "snn" and tuned["snn"]["method"] == "stdb" and tuned["snn"]["timesteps"] == T
    assert tuned["snn"]["reset"] == "hard" and tuned["snn"]["thresholds"] == converted["snn"]["thresholds"]
    assert tuned["snn"]["norm"] == converted["snn"]["norm"]
    assert st["alpha"] == 0.3 and st["beta"] == 0.01 and st["epochs_done"] == 3
    assert len(st["history"]["loss"]) == len(st["history"]["seconds"]) == 3
    assert not torch.equal(tuned["state_dict"]["1.weight"], converted["state_dict"]["1.weight"])


def test_training_is_deterministic(converted: dict, tuned: dict, digits: tuple) -> None:
    again = train_stdb(converted, digits[0], digits[1], T, 3, 0, progress=False)
    for name, tensor in tuned["state_dict"].items():
        assert torch.equal(again["state_dict"][name], tensor)


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_both_resets_train(ann: dict, digits: tuple, reset: str) -> None:
    x_tr, y_tr, x_te, y_te = digits
    snn = convert(ann, x_tr, 2, reset=reset, seed=0, calib_samples=256, progress=False)
    out = train_stdb(snn, x_tr, y_tr, 2, 3, 0, reset=reset, x_test=x_te, y_test=y_te, progress=False)
    st = out["stdb"]
    assert out["snn"]["reset"] == reset
    assert st["history"]["test_accuracy"][-1] >= st["test_accuracy_init"] + 0.1  # T=2: ~62% -> ~81%
    assert st["history"]["loss"][-1] < st["history"]["loss"][0]


def test_resume_is_bit_identical(converted: dict, digits: tuple, tmp_path: Path) -> None:
    x_tr, y_tr = digits[0][:300], digits[1][:300]
    seen: list[dict] = []
    full = train_stdb(
        converted, x_tr, y_tr, T, 2, 1, progress=False, on_epoch=seen.append, checkpoint_path=tmp_path / "stdb.pt"
    )
    assert load_checkpoint(tmp_path / "stdb.pt", "snn")["stdb"]["epochs_done"] == 2
    first = save_checkpoint(tmp_path / "epoch1.pt", seen[0])
    resumed = train_stdb(converted, x_tr, y_tr, T, 2, 1, progress=False, resume=first)
    for name, tensor in full["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], tensor)
    assert resumed["stdb"]["history"]["loss"] == full["stdb"]["history"]["loss"]
    with pytest.raises(InputError, match="cannot resume .*: alpha = 0.5 but it was trained with alpha = 0.3"):
        train_stdb(converted, x_tr, y_tr, T, 2, 1, alpha=0.5, progress=False, resume=first)
    with pytest.raises(InputError, match="it has trained 2 of 2 epochs"):
        train_stdb(converted, x_tr, y_tr, T, 2, 1, progress=False, resume=tmp_path / "stdb.pt")


def test_threshold_scale_and_schedules(converted: dict, digits: tuple) -> None:
    out = train_stdb(converted, digits[0][:64], digits[1][:64], T, 1, 0, threshold_scale=0.7, progress=False)
    assert out["snn"]["thresholds"][0] == pytest.approx(0.7 * converted["snn"]["thresholds"][0])
    assert out["snn"]["threshold_scale"] == pytest.approx(0.7)
    assert lr_at("cosine", 1.0, 2, 10, 0, 0) == 1.0 and lr_at("cosine", 1.0, 2, 10, 1, 0) == pytest.approx(0.5)
    assert [lr_at("step", 1.0, 20, 5, e, 0) for e in (0, 6, 7, 12, 16)] == pytest.approx([1, 1, 0.1, 0.01, 0.001])
    assert derived_seed(0, 1) != derived_seed(0, 2) != derived_seed(1, 1)


def test_compiled_emulator_close_to_float(tuned: dict, digits: tuple, tmp_path: Path) -> None:
    from loihic.compiler.config import CompileConfig
    from loihic.compiler.netx.read import read_netx
    from loihic.deploy.verification.accuracy import emulator_accuracy
    from loihic.training.deployment import compile_checkpoint

    x_te, y_te = digits[2], digits[3]
    save_checkpoint(tmp_path / "stdb.pt", tuned)
    net = compile_checkpoint(str(tmp_path / "stdb.pt"), str(tmp_path / "m.net"), CompileConfig()).path
    emu = emulator_accuracy(read_netx(net), x_te, y_te, T, "poisson", 0, device="cpu", progress=False)
    flt = evaluate_snn(tuned, x_te, y_te, seed=0)
    print(f"float {flt:.4f} emulator {emu:.4f} gap {flt - emu:+.4f}")
    assert abs(flt - emu) <= 0.02


@pytest.mark.lava
def test_lava_spike_identical(tuned: dict, digits: tuple, tmp_path: Path) -> None:
    from loihic.compiler.config import CompileConfig
    from loihic.compiler.encoding import encode_all as encoded
    from loihic.deploy.verification.parity import verify
    from loihic.training.deployment import compile_checkpoint

    save_checkpoint(tmp_path / "stdb.pt", tuned)
    net = compile_checkpoint(str(tmp_path / "stdb.pt"), str(tmp_path / "m.net"), CompileConfig()).path
    spikes = encoded(digits[2][:3], T, "poisson", 0)
    rep = verify(str(net), spikes, digits[3][:3], progress=False)
    assert rep.identical, rep.first_mismatch


def test_from_files(converted: dict, tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "snn.pt", converted)
    out = train_stdb_on_dataset(path, T, 1, 0, dataset="digits", limit_train=64, progress=False)
    assert out["stdb"]["train_samples"] == 64 and len(out["stdb"]["history"]["test_accuracy"]) == 1
    assert out["stdb"]["init_sha256"] is not None
    with pytest.raises(InputError, match="--dataset mnist differs from the data set of .* \\(digits\\)"):
        train_stdb_on_dataset(path, T, 1, 0, dataset="mnist", progress=False)


def test_bad_init(ann: dict, converted: dict, digits: tuple, tmp_path: Path) -> None:
    x, y = digits[0][:8], digits[1][:8]
    with pytest.raises(CheckpointError, match="is an ANN checkpoint; STDB fine-tunes a converted SNN"):
        train_stdb(ann, x, y, T, 1, 0, progress=False)
    path = save_checkpoint(tmp_path / "ann.pt", ann)
    with pytest.raises(CheckpointError, match="ann.pt: is an ANN checkpoint"):
        train_stdb(path, x, y, T, 1, 0, progress=False)
    other = copy.deepcopy(converted)
    del other["snn"]["norm"]
    other["snn"]["method"] = "noise"
    with pytest.raises(CheckpointError, match="is not a converted SNN .*'noise'"):
        train_stdb(other, x, y, T, 1, 0, progress=False)
    spiking = copy.deepcopy(converted)
    spiking["snn"].update(output="spiking", thresholds=[converted["snn"]["thresholds"][0], 1.0])
    with pytest.raises(CheckpointError, match="has a spiking output layer"):
        train_stdb(spiking, x, y, T, 1, 0, progress=False)
    with pytest.raises(CheckpointError, match="no such file"):
        train_stdb(tmp_path / "missing.pt", x, y, T, 1, 0, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 0.0}, "alpha must be a finite number > 0, got 0.0"),
        ({"alpha": -1}, "alpha must be a finite number > 0, got -1"),
        ({"alpha": math.nan}, "alpha must be a finite number > 0, got nan"),
        ({"beta": 0}, "beta must be a finite number > 0, got 0"),
        ({"beta": -0.5}, "beta must be a finite number > 0, got -0.5"),
        ({"timesteps": 0}, "timesteps must be an integer >= 1, got 0"),
        ({"timesteps": -3}, "timesteps must be an integer >= 1, got -3"),
        ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
        ({"lr": 0.0}, "lr must be a finite number > 0, got 0.0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"reset": "zero"}, "reset 'zero' is not one of hard, soft"),
        ({"schedule": "linear"}, "schedule 'linear' is not one of"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"threshold_scale": 0}, "threshold_scale must be a finite number > 0, got 0"),
        ({"leak": 1.5}, r"leak 1.5 is outside \[0, 1\]"),
    ],
)
def test_bad_options(converted: dict, digits: tuple, kwargs: dict, match: str) -> None:
    args = {"timesteps": T, "epochs": 1, "seed": 0, "progress": False, **kwargs}
    with pytest.raises(InputError, match=match) as info:
        train_stdb(converted, digits[0][:8], digits[1][:8], **args)
    assert isinstance(info.value, LoihicError) and "\n" not in str(info.value)


def test_bad_data(converted: dict) -> None:
    with pytest.raises(InputError, match=r"training data has shape \(3, 64\)"):
        train_stdb(converted, np.zeros((3, 64), np.float32), np.zeros(3, np.int64), T, 1, 0, progress=False)
    with pytest.raises(InputError, match=r"training labels must be integers in \[0, 10\)"):
        train_stdb(converted, np.zeros((3, 1, 8, 8), np.float32), np.full(3, 10), T, 1, 0, progress=False)
