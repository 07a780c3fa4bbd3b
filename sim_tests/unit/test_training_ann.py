"""ANN training: accuracy on digits, determinism, recorded provenance."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from loihic.compiler.errors import InputError
from loihic.training.ann import train_ann
from loihic.training.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def two_runs() -> tuple[dict, dict]:
    return tuple(train_ann("mlp", "digits", epochs=3, seed=0, progress=False) for _ in range(2))


def test_mlp_learns_digits(two_runs: tuple[dict, dict]) -> None:
    ckpt = two_runs[0]
    assert ckpt["metrics"]["test_accuracy"] >= 0.90
    assert ckpt["kind"] == "ann" and ckpt["seed"] == 0 and ckpt["input_shape"] == [1, 8, 8]
    assert ckpt["hyperparams"]["epochs"] == 3 and ckpt["hyperparams"]["train_samples"] == 1437


def test_training_is_deterministic(two_runs: tuple[dict, dict]) -> None:
    a, b = two_runs
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name in a["state_dict"]:
        assert torch.equal(a["state_dict"][name], b["state_dict"][name]), name
    assert a["metrics"] == b["metrics"]


def test_caller_rng_is_untouched() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_ann("mlp", "digits", epochs=1, seed=5, progress=False, limit_train=64)
    assert torch.equal(torch.rand(3), expected)


def test_lenet_trains_and_saves(tmp_path: Path) -> None:
    ckpt = train_ann("lenet5", "digits", epochs=1, seed=1, progress=False, limit_train=256)
    path = save_checkpoint(tmp_path / "lenet.pt", ckpt)
    assert load_checkpoint(path, kind="ann")["hyperparams"]["limit_train"] == 256


def test_bad_arguments() -> None:
    with pytest.raises(InputError, match="epochs 0"):
        train_ann("mlp", "digits", epochs=0, seed=0, progress=False)
