"""Old checkpoints (format_version 1: the network stored as an ``arch`` list of layer dicts) keep loading,
converting and compiling bit for bit: the goldens and their pins were made with the code of commit 39890fc
(``sim_tests/golden/checkpoint_v1/make_v1.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from loihic.training.checkpoint import load_checkpoint
from loihic.training.convert import convert
from sim_tests.golden.checkpoint_v1 import make_v1

GOLDEN = Path(make_v1.__file__).parent
EXPECTED = json.loads((GOLDEN / "expected.json").read_text())


def test_goldens_are_small_format_1_checkpoints() -> None:
    for name, kind in (("ann_v1.pt", "ann"), ("snn_v1.pt", "snn")):
        assert (GOLDEN / name).stat().st_size < 100_000
        ckpt = load_checkpoint(GOLDEN / name, kind)
        assert ckpt["format_version"] == 1 and ckpt["arch"] == make_v1.ARCH


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
