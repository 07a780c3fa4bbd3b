"""Regenerate the format-1 checkpoint goldens (``ann_v1.pt``, ``snn_v1.pt``) and their pins (``expected.json``).

These are checkpoints in the format that stores the network as an ``arch`` list of layer dicts
(``format_version`` 1).  They pin what an old checkpoint must keep giving whatever the current format is:
the same thresholds when the ANN is converted, and the same network (every dataset netx reads) and metadata when
either SNN is compiled (``sim_tests/unit/test_checkpoint_v1.py``).  The pins in ``expected.json`` were computed
with the code of 39890fc and this file's :func:`pins` (the metadata pin leaves out the compile-report rows'
``index``, which came later).

They were made with the code of commit 39890fc (the start of the ``train`` branch, before the IR took over
shape inference), from a copy of that commit's tree:

    git archive 39890fc | tar -x -C /tmp/v1 && mkdir /tmp/v1/pkg && cp -r /tmp/v1/loihic /tmp/v1/pkg/ && \\
    ln -s /tmp/v1/compiler /tmp/v1/training /tmp/v1/deploy /tmp/v1/pkg/loihic/ && \\
    PYTHONPATH=/tmp/v1/pkg .venv/bin/python sim_tests/golden/checkpoint_v1/make_v1.py --out DIR

Rerunning it with the current code writes the same ``expected.json`` pins (that is the test); the ``.pt`` files
themselves are torch zip archives whose bytes may differ between torch versions, so they are kept as made.
Seeds: weights torch.manual_seed(7); calibration data numpy default_rng(3); conversion seed 0.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import torch

import loihic
from loihic.training.checkpoint import CREATED_BY, FORMAT, save_checkpoint
from loihic.training.convert import convert

HERE = Path(__file__).resolve().parent
INPUT_SHAPE = (1, 8, 8)
TIMESTEPS = 16
# Every arch layer kind: conv with bias, batchnorm, relu, avgpool, flatten, linear, dropout.
ARCH = [
    {"type": "conv", "in": 1, "out": 4, "kernel": 3, "stride": 1, "padding": 1, "groups": 1, "bias": True},
    {"type": "batchnorm", "features": 4},
    {"type": "relu"},
    {"type": "avgpool", "kernel": 2, "stride": 2},
    {"type": "flatten"},
    {"type": "linear", "in": 64, "out": 16, "bias": False},
    {"type": "relu"},
    {"type": "dropout", "p": 0.1},
    {"type": "linear", "in": 16, "out": 10, "bias": True},
]
# (name, checkpoint, loihic.compile options) of each pinned netx file
COMPILES = (("snn_v1", "snn_v1.pt", {"l4": True}), ("snn_v1_plain", "snn_v1.pt", {}))


def calibration() -> np.ndarray:
    return np.random.default_rng(3).random((64, *INPUT_SHAPE)).astype(np.float32)


def ann_checkpoint() -> dict:
    """The format-1 ANN checkpoint: the modules 39890fc's ``build_model(ARCH)`` made, written out in torch so
    that the script runs with either version of loihic."""
    torch.manual_seed(7)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, (3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1, bias=True),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.AvgPool2d((2, 2), stride=(2, 2)),
        torch.nn.Flatten(),
        torch.nn.Linear(64, 16, bias=False),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.1),
        torch.nn.Linear(16, 10, bias=True),
    )
    with torch.no_grad():  # non-trivial batchnorm statistics
        bn = net[1]
        bn.running_mean.copy_(torch.linspace(-0.2, 0.3, 4))
        bn.running_var.copy_(torch.linspace(0.5, 2.0, 4))
        bn.weight.copy_(torch.linspace(0.8, 1.2, 4))
        bn.bias.copy_(torch.linspace(-0.1, 0.1, 4))
    return {
        "format": FORMAT,
        "format_version": 1,
        "kind": "ann",
        "model": "v1-golden",
        "dataset": "digits",
        "input_shape": list(INPUT_SHAPE),
        "num_classes": 10,
        "arch": ARCH,
        "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "seed": 7,
        "hyperparams": {},
        "metrics": {"test_accuracy": 0.5},
        "created_by": CREATED_BY,
    }


def _digest(items: list[tuple[str, np.ndarray]]) -> str:
    digest = hashlib.sha256()
    for name, value in items:
        digest.update(f"{name} {value.dtype.str} {value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def layers_sha256(path: Path) -> str:
    """sha256 over every dataset of the netx file's ``layer`` group (name, dtype, shape, bytes, in sorted order):
    the network netx builds and Lava runs."""
    with h5py.File(path, "r") as f:
        names: list[str] = []
        f["layer"].visit(names.append)
        return _digest(
            [(n, np.asarray(f["layer"][n][()])) for n in sorted(names) if isinstance(f["layer"][n], h5py.Dataset)]
        )


def meta_sha256(path: Path) -> str:
    """sha256 of loihic's metadata JSON without ``source_checkpoint`` (the path it was compiled from) and without
    the compile-report rows' ``index`` (the netx layer number) and ``max_delay`` when None (a layer without synaptic
    delays), both added to the rows after these pins were made."""
    with h5py.File(path, "r") as f:
        meta = json.loads(np.asarray(f["loihic/meta_json"][()], np.uint8).tobytes())  # schema.META_GROUP / META_JSON
    meta.pop("source_checkpoint")
    for row in meta.get("report") or []:
        row.pop("index", None)
        if row.get("max_delay", 0) is None:
            row.pop("max_delay")
    return _digest([("meta", np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8))])


def pins(ann_path: Path, snn_path: Path, work: Path) -> dict:
    """What the test compares: the converted thresholds, and for each compiled netx file the sha256 of its
    network (:func:`layers_sha256`) and of its metadata (:func:`meta_sha256`), compiled from the relative path
    ``snn_v1.pt`` in ``work``, so the recorded path is the same wherever it runs."""
    snn = convert(ann_path, calibration(), TIMESTEPS, encoding="poisson", calib_samples=32, progress=False)
    out = {"thresholds": snn["snn"]["thresholds"], "bias_scale": snn["snn"]["bias_scale"]}
    for name, ckpt, options in COMPILES:
        if (snn_path.parent / ckpt).resolve() != (work / ckpt).resolve():
            shutil.copyfile(snn_path.parent / ckpt, work / ckpt)
        with contextlib.chdir(work):  # a relative checkpoint path: the netx metadata records it as given
            path = work / loihic.compile(ckpt, f"{name}.net", force=True, **options)
        out[f"{name}.net layers"] = layers_sha256(path)
        out[f"{name}.net meta"] = meta_sha256(path)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the .pt files and expected.json")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ann_path = save_checkpoint(args.out / "ann_v1.pt", ann_checkpoint(), force=True)
    snn = convert(ann_path, calibration(), TIMESTEPS, encoding="poisson", calib_samples=32, progress=False)
    save_checkpoint(args.out / "snn_v1.pt", snn, force=True)
    expected = pins(ann_path, args.out / "snn_v1.pt", args.out)
    for name, *_ in COMPILES:
        (args.out / f"{name}.net").unlink()
    (args.out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
