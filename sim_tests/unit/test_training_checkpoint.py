"""Checkpoint files: round trip, atomic save, and every way a file can be bad (never executing it)."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import pytest
import torch

from loihic.compiler.errors import CheckpointError, OutputExistsError
from loihic.compiler.fileio import file_sha256
from loihic.compiler.load.checkpoint import ann_network, network_data
from loihic.training.checkpoint import (
    CREATED_BY,
    FORMAT,
    load_checkpoint,
    save_checkpoint,
    validate_checkpoint,
)
from loihic.training.models import build_model, make_network, model_from_checkpoint


def make_ckpt(kind: str = "ann") -> dict:
    net = make_network("mlp", (1, 8, 8), 10, hidden=16)
    torch.manual_seed(0)
    ckpt = {
        "format": FORMAT,
        "format_version": 2,
        "kind": "ann",
        "model": "mlp",
        "dataset": "digits",
        "input_shape": [1, 8, 8],
        "num_classes": 10,
        "layers": network_data(net.layers),
        "state_dict": dict(build_model(net).state_dict()),
        "seed": 0,
        "hyperparams": {"epochs": 1},
        "metrics": {"test_accuracy": 0.5},
        "created_by": CREATED_BY,
    }
    if kind == "snn":
        ckpt["kind"] = "snn"
        ckpt["snn"] = {
            "thresholds": [1.5, None],
            "timesteps": 8,
            "reset": "hard",
            "leak": 1.0,
            "encoding": "poisson",
            "norm": "max",
            "seed": 0,
            "calib_samples": 4,
            "source_sha256": None,
            "first_layer_mean_potential": [0.0] * 16,
        }
    return ckpt


class Evil:
    """Unpickling this creates the marker file: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("kind", ["ann", "snn"])
def test_round_trip(tmp_path: Path, kind: str) -> None:
    ckpt = make_ckpt(kind)
    path = save_checkpoint(tmp_path / "sub" / "m.pt", ckpt)
    loaded = load_checkpoint(path, kind=kind)
    assert loaded.keys() == ckpt.keys()
    for key, value in ckpt.items():
        if key != "state_dict":
            assert loaded[key] == value
    for name, tensor in ckpt["state_dict"].items():
        assert torch.equal(loaded["state_dict"][name], tensor)
    assert [p.name for p in path.parent.iterdir()] == ["m.pt"]  # no temp file left behind
    assert len(file_sha256(path)) == 64


def test_save_refuses_existing_unless_force(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(path, make_ckpt())
    with pytest.raises(OutputExistsError, match=f"^{path}: already exists"):
        save_checkpoint(path, make_ckpt())
    other = make_ckpt()
    other["seed"] = 7
    save_checkpoint(path, other, force=True)
    assert load_checkpoint(path)["seed"] == 7


def test_save_rejects_non_plain_metadata(tmp_path: Path) -> None:
    ckpt = make_ckpt()
    ckpt["hyperparams"] = {"fn": object()}
    with pytest.raises(CheckpointError, match="hyperparams.fn: object is not plain data"):
        save_checkpoint(tmp_path / "m.pt", ckpt)
    assert not (tmp_path / "m.pt").exists()


def test_wrong_kind(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", make_ckpt("snn"))
    with pytest.raises(CheckpointError, match=f"^{path}: is an SNN checkpoint, expected an ANN one$"):
        load_checkpoint(path, kind="ann")


def test_malicious_pickle_is_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps({"format": FORMAT, "payload": Evil(marker)}))
    raw2 = tmp_path / "raw2.pt"
    raw2.write_bytes(pickle.dumps({"format": FORMAT, "payload": Evil(marker)}, protocol=2))
    zipped = tmp_path / "zipped.pt"
    torch.save({"format": FORMAT, "state_dict": {}, "payload": Evil(marker)}, zipped)
    for path in (raw, raw2, zipped):
        with pytest.raises(CheckpointError, match=f"^{path}: ") as info:
            load_checkpoint(path)
        assert "\n" not in str(info.value)
        assert not marker.exists()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_unreadable_files(tmp_path: Path) -> None:
    good = save_checkpoint(tmp_path / "good.pt", make_ckpt())
    blob = good.read_bytes()
    bad = {
        "missing": tmp_path / "nope.pt",
        "directory": tmp_path,
        "empty": _write(tmp_path / "empty.pt", b""),
        "garbage": _write(tmp_path / "garbage.pt", bytes(range(256)) * 4),
        "text": _write(tmp_path / "text.pt", b'{"format": "loihic-checkpoint"}'),
        "truncated": _write(tmp_path / "trunc.pt", blob[: len(blob) // 2]),
        "tail-cut": _write(tmp_path / "tail.pt", blob[:-30]),
    }
    for what, path in bad.items():
        with pytest.raises(CheckpointError, match=f"^{path}: ") as info:
            load_checkpoint(path)
        assert "\n" not in str(info.value), what


def test_format_2_stores_the_ir_as_plain_json(tmp_path: Path) -> None:
    """The layers are plain JSON, the IR comes back from them and the state_dict, and training's modules hold
    the IR's arrays."""
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "a.pt", make_ckpt()))
    assert ckpt["format_version"] == 2 and json.loads(json.dumps(ckpt["layers"])) == ckpt["layers"]
    net = ann_network(ckpt)
    assert network_data(net.layers) == ckpt["layers"]
    assert [layer.name for layer in net.layers] == ["0.flatten", "1.linear", "3.dropout", "4.linear"]
    model = model_from_checkpoint(ckpt)
    assert torch.equal(model[4].weight, torch.as_tensor(net.layers[3].weight, dtype=torch.float32))


def test_format_1_dict_is_migrated_without_changing_it() -> None:
    """A format-1 dict (the Python API takes dicts) validates as its format-2 form; the caller's dict is kept."""
    v2 = make_ckpt()
    arch = [
        {"type": "flatten"},
        {"type": "linear", "in": 64, "out": 16, "bias": False},
        {"type": "relu"},
        {"type": "dropout", "p": 0.1},
        {"type": "linear", "in": 16, "out": 10, "bias": False},
    ]
    v1 = {**{k: v for k, v in v2.items() if k != "layers"}, "format_version": 1, "arch": arch}
    before = copy.deepcopy(v1)
    out = validate_checkpoint(v1, "v1")
    assert out["format_version"] == 2 and out["layers"] == v2["layers"] and "arch" not in out
    assert v1.keys() == before.keys() and v1["arch"] == before["arch"] and v1["format_version"] == 1
    with pytest.raises(CheckpointError, match=r"^v1: invalid arch: arch layer 3 \(relu\)"):
        validate_checkpoint({**v1, "arch": [arch[0], arch[1], arch[3], arch[2], arch[4]]}, "v1")


def _saved(tmp_path: Path, obj: object) -> Path:
    path = tmp_path / "x.pt"
    torch.save(obj, path)
    return path


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda c: c.pop("format"), "not a loihic checkpoint"),
        (lambda c: c.update(format_version=3), "format_version 3 is not supported"),
        (lambda c: c.update(kind="cnn"), "kind 'cnn' is not one of"),
        (lambda c: c.pop("seed"), "missing key 'seed'"),
        (lambda c: c.update(seed="0"), "'seed' is str, expected int"),
        (lambda c: c["state_dict"].pop("1.weight"), r"does not match the layers \(missing \['1.weight'\]"),
        (lambda c: c["state_dict"].update({"1.weight": torch.zeros(3, 3)}), "tensor '1.weight' has shape"),
        (lambda c: c["state_dict"]["4.weight"].__setitem__((0, 0), float("nan")), "'4.weight' contains NaN"),
        (lambda c: c["state_dict"]["1.weight"].__setitem__((1, 2), float("inf")), "'1.weight' contains NaN"),
        (lambda c: c["layers"].__setitem__(2, {"type": "gelu"}), "layer 2: type 'gelu' is not one of"),
        (lambda c: c["layers"][1].update(spiking=1), r"layer 1 \(dense\): 'spiking' = 1 has the wrong type"),
        (lambda c: c["layers"][1].pop("name"), r"layer 1 \(dense\): keys"),
        (lambda c: c.update(num_classes=9), r"layers output shape \(10,\), expected \(9,\)"),
    ],
)
def test_invalid_content(tmp_path: Path, mutate, match: str) -> None:  # noqa: ANN001
    ckpt = copy.deepcopy(make_ckpt())
    mutate(ckpt)
    path = _saved(tmp_path, ckpt)
    with pytest.raises(CheckpointError, match=f"^{path}: .*{match}"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda s: s.update(thresholds=[1.0]), "snn.thresholds has 1 entries"),
        (lambda s: s.update(thresholds=[-1.0, None]), r"snn.thresholds\[0\] = -1.0"),
        (lambda s: s.update(reset="zero"), "snn.reset = 'zero'"),
        (lambda s: s.update(encoding="latency"), "snn.encoding = 'latency'"),
        (lambda s: s.pop("timesteps"), "snn: missing key 'timesteps'"),
    ],
)
def test_invalid_snn_section(tmp_path: Path, mutate, match: str) -> None:  # noqa: ANN001
    ckpt = make_ckpt("snn")
    mutate(ckpt["snn"])
    path = _saved(tmp_path, ckpt)
    with pytest.raises(CheckpointError, match=f"^{path}: {match}"):
        load_checkpoint(path)


def test_bare_state_dict_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = _saved(tmp_path, make_ckpt()["state_dict"])
    with pytest.raises(CheckpointError, match=f"^{path}: not a loihic checkpoint"):
        load_checkpoint(path)
