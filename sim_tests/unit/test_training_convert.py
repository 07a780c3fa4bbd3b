"""Threshold balancing (Datta et al. Fig. 3): thresholds, accuracy after conversion, option checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loihic.compiler.errors import CheckpointError, InputError
from loihic.compiler.fileio import file_sha256
from loihic.training.ann import evaluate_ann, train_ann
from loihic.training.checkpoint import load_checkpoint, save_checkpoint
from loihic.training.convert import _TopValues, convert, parse_norm
from loihic.training.data import load_dataset
from loihic.training.models import model_from_checkpoint
from loihic.training.snn import SNNModel, encode_chunks, evaluate_snn


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x_tr, _ = load_dataset("digits", "train")
    x_te, y_te = load_dataset("digits", "test")
    return x_tr, x_te, y_te


@pytest.fixture(scope="module")
def ann() -> dict:
    return train_ann("mlp", "digits", epochs=8, seed=0, progress=False)


def test_conversion_keeps_accuracy(ann: dict, digits: tuple) -> None:
    x_tr, x_te, y_te = digits
    snn = convert(ann, x_tr, timesteps=48, norm="max", reset="hard", seed=0, progress=False)
    assert snn["kind"] == "snn" and snn["metrics"]["ann_test_accuracy"] == ann["metrics"]["test_accuracy"]
    th = snn["snn"]["thresholds"]
    assert len(th) == 2 and th[0] > 0 and th[1] is None
    assert len(snn["snn"]["first_layer_mean_potential"]) == 128
    for name, tensor in ann["state_dict"].items():  # weights are copied unchanged
        assert torch.equal(snn["state_dict"][name], tensor)
    acc = evaluate_snn(snn, x_te, y_te, seed=1)
    assert acc >= ann["metrics"]["test_accuracy"] - 0.04


def test_threshold_is_max_preactivation(ann: dict, digits: tuple) -> None:
    x_tr = digits[0][:40]
    snn = convert(ann, x_tr, timesteps=6, seed=3, calib_samples=40, progress=False)
    model = SNNModel.from_checkpoint(snn)
    seen = [c.max() for _, s in encode_chunks(x_tr, 6, "poisson", 3) for c in model.currents(s, 0)]
    assert snn["snn"]["thresholds"][0] == pytest.approx(float(max(seen)))
    scaled = convert(ann, x_tr, timesteps=6, norm="scaled:0.3", seed=3, calib_samples=40, progress=False)
    assert scaled["snn"]["thresholds"][0] == pytest.approx(0.3 * snn["snn"]["thresholds"][0])
    pct = convert(ann, x_tr, timesteps=6, norm="p99", seed=3, calib_samples=40, progress=False)
    values = torch.cat(
        [c.reshape(-1) for _, s in encode_chunks(x_tr, 6, "poisson", 3) for c in model.currents(s, 0)]
    ).numpy()
    assert pct["snn"]["thresholds"][0] == pytest.approx(float(np.percentile(values, 99)), rel=1e-5)


def test_mean_potential_of_first_layer(ann: dict, digits: tuple) -> None:
    x_tr = digits[0][:16]
    snn = convert(ann, x_tr, timesteps=4, leak=1.0, seed=0, calib_samples=16, progress=False)
    model = SNNModel.from_checkpoint(snn)
    _, spikes = next(encode_chunks(x_tr, 4, "poisson", 0))
    th, v, pre = snn["snn"]["thresholds"][0], torch.zeros(16, 128), []
    for current in model.currents(spikes, 0):
        v = v + current
        pre.append(v)
        v = torch.where(v > th, 0.0, v)
    want = torch.stack(pre).mean(dim=(0, 1)).numpy()
    np.testing.assert_allclose(snn["snn"]["first_layer_mean_potential"], want, rtol=1e-4, atol=1e-5)


def test_lenet_conversion_runs(digits: tuple) -> None:
    x_tr, x_te, y_te = digits
    x_te, y_te = x_te[:120], y_te[:120]
    ann = train_ann("lenet5", "digits", epochs=4, seed=0, progress=False)
    snn = convert(ann, x_tr, timesteps=16, norm="p99.9", reset="soft", seed=0, calib_samples=32, progress=False)
    assert len(snn["snn"]["first_layer_mean_potential"]) == 6  # one per output channel
    assert all(t > 0 for t in snn["snn"]["thresholds"][:-1]) and len(snn["snn"]["thresholds"]) == 5
    ann_acc = evaluate_ann(model_from_checkpoint(ann), x_te, y_te)
    assert ann_acc > 0.5 and evaluate_snn(snn, x_te, y_te, seed=0) >= ann_acc - 0.1


def test_convert_from_file_records_sha(ann: dict, digits: tuple, tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "ann.pt", ann)
    snn = convert(path, digits[0], timesteps=4, calib_samples=8, progress=False)
    assert snn["snn"]["source_sha256"] == file_sha256(path)
    out = save_checkpoint(tmp_path / "snn.pt", snn)
    assert load_checkpoint(out, kind="snn")["snn"]["thresholds"] == snn["snn"]["thresholds"]
    with pytest.raises(CheckpointError, match="already an SNN checkpoint"):
        convert(out, digits[0], timesteps=4, progress=False)
    with pytest.raises(CheckpointError, match="already an SNN checkpoint"):
        convert(snn, digits[0], timesteps=4, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"timesteps": 0}, "timesteps must be >= 1, got 0"),
        ({"reset": "zero"}, "reset 'zero' is not one of hard, soft"),
        ({"leak": 1.5}, r"leak 1.5 is outside \[0, 1\]"),
        ({"encoding": "latency"}, "encoding 'latency' is not one of"),
        ({"norm": "p0"}, "norm 'p0' is not"),
        ({"calib_samples": 0}, "calib_samples must be >= 1"),
    ],
)
def test_bad_options(ann: dict, digits: tuple, kwargs: dict, match: str) -> None:
    args = {"timesteps": 4, "progress": False, **kwargs}
    with pytest.raises(InputError, match=match):
        convert(ann, digits[0], **args)


def test_wrong_calibration_shape(ann: dict) -> None:
    with pytest.raises(InputError, match=r"calibration data has shape \(3, 64\)"):
        convert(ann, np.zeros((3, 64), np.float32), timesteps=4, progress=False)


@settings(derandomize=True, deadline=None, max_examples=40)
@given(
    norm=st.one_of(
        st.just("max"), st.floats(1e-3, 100).map(lambda q: f"p{q}"), st.floats(1e-3, 10).map(lambda k: f"scaled:{k}")
    )
)
def test_parse_norm_accepts_valid(norm: str) -> None:
    method, value = parse_norm(norm)
    assert method in ("max", "percentile", "scaled") and value > 0


@pytest.mark.parametrize(
    "norm", ["", "mean", "p", "p100.1", "p-5", "pnan", "scaled:0", "scaled:-1", "scaled:inf", "scaled:x", "scaled"]
)
def test_parse_norm_rejects(norm: str) -> None:
    with pytest.raises(InputError, match=f"norm '{norm}' is not"):
        parse_norm(norm)


@settings(derandomize=True, deadline=None, max_examples=40)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 300), q=st.floats(0.01, 100), chunk=st.integers(1, 50))
def test_streamed_percentile_is_exact(seed: int, n: int, q: float, chunk: int) -> None:
    values = np.random.default_rng(seed).normal(size=n).astype(np.float32)
    top = _TopValues(q, n)
    for start in range(0, n, chunk):
        top.update(torch.from_numpy(values[start : start + chunk]))
    want = float(np.percentile(values.astype(np.float64), q))
    assert top.value() == pytest.approx(want, rel=1e-5, abs=1e-6)
