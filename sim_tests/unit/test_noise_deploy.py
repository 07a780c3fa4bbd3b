"""The noise method's deployment stage (training/noise/deploy.py, issue 21) on a tiny digits network: it runs,
is seeded, records its options, does not lose deterministic accuracy on its training data, and compiles to
what it trained (input width, biases, no second offset)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loihic.compiler.config import CompileConfig
from loihic.compiler.errors import InputError
from loihic.compiler.netx.read import read_netx
from loihic.training.checkpoint import save_checkpoint, with_input_bits
from loihic.training.data import load_dataset, subset
from loihic.training.deployment import compile_checkpoint
from loihic.training.noise import evaluate_noise, noise_outputs, steady_offset, train_noise, with_offset
from loihic.training.noise.deploy import compiler_input_bits, deploy_stage

T = 4
LIMIT = 400  # training samples: the stage's data (and the noise training's)


@pytest.fixture(scope="module")
def noise_ckpt() -> dict:
    return train_noise("ap2-512fc", "digits", 15, 0, hidden=32, limit_train=LIMIT, progress=False)


@pytest.fixture(scope="module")
def deployed(noise_ckpt: dict) -> dict:
    return deploy_stage(noise_ckpt, epochs=3, seed=2, timesteps=T, progress=False)


def test_stage_records_its_options(noise_ckpt: dict, deployed: dict) -> None:
    snn, rec = deployed["snn"], deployed["snn"]["deploy_stage"]
    bits = compiler_input_bits(with_offset(noise_ckpt, steady_offset()))
    assert rec["epochs"] == 3 and rec["seed"] == 2 and rec["timesteps"] == T and rec["lr"] == 1e-3
    assert rec["input_bits"] == bits and rec["offset_init"] == 0.25 and rec["train_samples"] == LIMIT
    assert rec["gradient"].startswith("per step") and deployed["hyperparams"]["deploy_stage"] == rec
    assert snn["timesteps"] == T and snn["deploy_offset"] == 0.25 and snn["method"] == "noise"
    assert snn["encoding"] == ("direct" if bits == 8 else f"direct{bits}")
    assert snn["thresholds"] == [1.0, 1.0] and snn["reset"] == "hard" and snn["leak"] == 0.5
    m = deployed["metrics"]
    assert m["noise_metrics"] == noise_ckpt["metrics"] and m["timesteps"] == T
    assert m["test_accuracy_stage3"] == evaluate_noise(noise_ckpt, *load_dataset("digits", "test"), T, "3", seed=2)


def test_stage_is_seeded(noise_ckpt: dict, deployed: dict) -> None:
    again = deploy_stage(noise_ckpt, epochs=3, seed=2, timesteps=T, progress=False)
    other = deploy_stage(noise_ckpt, epochs=3, seed=3, timesteps=T, progress=False)
    sd = deployed["state_dict"]
    assert all(torch.equal(again["state_dict"][k], v) for k, v in sd.items())
    assert any(not torch.equal(other["state_dict"][k], v) for k, v in sd.items())


def test_stage_keeps_or_improves_deterministic_accuracy(noise_ckpt: dict, deployed: dict) -> None:
    """On its own training data, the deterministic LIF (noise mean as bias, the stage's input width) after the
    stage is at least as accurate as before it; the biases moved away from the noise mean."""
    x, y = subset(*load_dataset("digits", "train"), LIMIT, 0)
    bits = deployed["snn"]["deploy_stage"]["input_bits"]
    before = with_input_bits(with_offset(noise_ckpt, steady_offset()), bits)
    acc_before = evaluate_noise(before, x, y, T, "lif")
    acc_after = evaluate_noise(deployed, x, y, T, "lif")
    assert acc_after >= acc_before, (acc_before, acc_after)
    assert not torch.equal(deployed["state_dict"]["2.bias"], torch.full((32,), 0.25))


@pytest.fixture(scope="module")
def compiled(deployed: dict, tmp_path_factory):  # noqa: ANN201 - CompileResult
    d = tmp_path_factory.mktemp("deployed")
    save_checkpoint(d / "d.pt", deployed)
    return compile_checkpoint(str(d / "d.pt"), str(d / "d.net"), CompileConfig(), default_offset=True)


def test_compiles_to_what_it_trained(deployed: dict, compiled) -> None:  # noqa: ANN001
    res = compiled
    meta = read_netx(res.path).meta
    assert meta["input_bits"] == deployed["snn"]["deploy_stage"]["input_bits"] and meta["offset"] is None
    assert any("deployment stage" in note for note in res.notes)
    from loihic.deploy.verification.accuracy import emulator_accuracy

    x, y = load_dataset("digits", "test")
    emu = emulator_accuracy(read_netx(res.path), x, y, T, meta["encoding"], 0, device="cpu", progress=False)
    flt = evaluate_noise(deployed, x, y, T, "lif")
    assert abs(emu - flt) <= 0.02, (emu, flt)


def test_refusals(noise_ckpt: dict, deployed: dict) -> None:
    x, y = load_dataset("digits", "test")
    with pytest.raises(InputError, match=r"^--stage 3: this checkpoint's biases already hold the noise mean"):
        evaluate_noise(deployed, x[:4], y[:4], T, "3")
    np.testing.assert_array_equal(noise_outputs(deployed, x[:4], T, "lif"), noise_outputs(deployed, x[:4], T, "lif"))
    with pytest.raises(InputError, match=r"^--offset 0.25: this checkpoint's biases already hold"):
        with_offset(deployed, 0.25)
    with pytest.raises(InputError, match="already has its noise mean folded"):
        deploy_stage(deployed, progress=False)
    with pytest.raises(InputError, match=r"^--deploy-lr 0: must be"):
        deploy_stage(noise_ckpt, lr=0, progress=False)
    with pytest.raises(InputError, match=r"^--deploy-epochs 0: must be"):
        deploy_stage(noise_ckpt, epochs=0, progress=False)


@pytest.mark.lava
def test_lava_identical(deployed: dict, compiled) -> None:  # noqa: ANN001
    from loihic.compiler.encoding import encode_all
    from loihic.deploy.verification.parity import verify

    bits = deployed["snn"]["deploy_stage"]["input_bits"]
    x, y = load_dataset("digits", "test")
    spikes = encode_all(x[:3], T, deployed["snn"]["encoding"], 0)
    rep = verify(str(compiled.path), spikes, y[:3], input_message_bits=bits, device="cpu", progress=False)
    assert rep.identical and rep.mismatches == 0, rep.first_mismatch
