"""Old checkpoints (format_version 1: the network stored as an ``arch`` list of layer dicts) keep loading,
converting and compiling bit for bit: the goldens and their pins were made with the code of commit 39890fc
(``sim_tests/golden/checkpoint_v1/make_v1.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from loihic.compiler.load.checkpoint import ann_network
from loihic.compiler.load.checkpoint_v1 import layers_from_arch
from loihic.training.checkpoint import load_checkpoint
from loihic.training.convert import convert
from loihic.training.models import build_model
from sim_tests.golden.checkpoint_v1 import make_v1

GOLDEN = Path(make_v1.__file__).parent
EXPECTED = json.loads((GOLDEN / "expected.json").read_text())


def test_goldens_are_small_format_1_checkpoints() -> None:
    for name, kind in (("ann_v1.pt", "ann"), ("snn_v1.pt", "snn")):
        assert (GOLDEN / name).stat().st_size < 100_000
        raw = torch.load(GOLDEN / name, weights_only=True)
        assert raw["format_version"] == 1 and raw["arch"] == make_v1.ARCH
        ckpt = load_checkpoint(GOLDEN / name, kind)  # migrated to format 2
        assert ckpt["format_version"] == 2 and "arch" not in ckpt
        assert ckpt["layers"] == layers_from_arch(make_v1.ARCH)
        assert ckpt["state_dict"].keys() == raw["state_dict"].keys()


def test_v1_ann_builds_the_same_modules_as_format_1() -> None:
    """The torch modules of the migrated layers, in order, are those format 1 built from ``ARCH``."""
    ann = load_checkpoint(GOLDEN / "ann_v1.pt", "ann")
    torch.manual_seed(7)
    want = make_v1.ann_checkpoint()["state_dict"]
    torch.manual_seed(7)
    got = build_model(ann_network(ann, weights=False)).state_dict()
    assert [type(m).__name__ for m in build_model(ann_network(ann, weights=False))] == [
        "Conv2d",
        "BatchNorm2d",
        "ReLU",
        "AvgPool2d",
        "Flatten",
        "Linear",
        "ReLU",
        "Dropout",
        "Linear",
    ]
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in ("0.weight", "5.weight", "8.weight", "8.bias"))


def test_v1_ann_converts_and_v1_snn_compiles_as_before(tmp_path: Path) -> None:
    """Thresholds and bias scales of the conversion; the compiled network dataset by dataset, and its metadata."""
    assert make_v1.pins(GOLDEN / "ann_v1.pt", GOLDEN / "snn_v1.pt", tmp_path) == EXPECTED


def test_v1_ann_converts_to_the_stored_v1_snn_weights() -> None:
    snn = convert(GOLDEN / "ann_v1.pt", make_v1.calibration(), make_v1.TIMESTEPS, calib_samples=32, progress=False)
    old = load_checkpoint(GOLDEN / "snn_v1.pt", "snn")
    assert snn["snn"] == old["snn"]
    assert snn["state_dict"].keys() == old["state_dict"].keys()
    for key, value in old["state_dict"].items():
        assert torch.equal(snn["state_dict"][key], value), key
