"""A model that came in through another front end, as a loihic ANN checkpoint ready for conversion.

The front end (``compiler/load/torch_export.py``) builds the float IR; the checkpoint stores that IR as it is
(its layers, ``compiler.load.checkpoint.network_data``, and their arrays as the state_dict of
``training.models.build_model``), so threshold balancing, the L4 statistics, STDB, the float SNN and the
compiler all run on it unchanged.  Which reader takes a file is
decided here, once, from the file's content (:func:`load_ann`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from loihic.compiler import ir
from loihic.compiler.errors import CheckpointError
from loihic.compiler.fileio import file_sha256
from loihic.compiler.load.checkpoint import network_data
from loihic.compiler.load.pt2 import is_pt2, program_from_module, read_pt2
from loihic.compiler.load.torch_export import network_from_program
from loihic.training.checkpoint import (
    CREATED_BY,
    FORMAT,
    FORMAT_VERSION,
    load_checkpoint,
    validate_checkpoint,
)
from loihic.training.models import check_convertible, state_dict_from_network, with_module_names

TORCH_EXPORT_HOWTO = (
    "save the model as a torch.export program: "
    "torch.export.save(torch.export.export(model.eval(), (example_batch,)), 'model.pt2'), "
    "or pass the nn.Module to loihic.convert() in Python"
)


def ann_checkpoint(net: ir.Network, model: str, source: dict[str, Any]) -> dict[str, Any]:
    """The ANN checkpoint of a float IR network (no training metrics; ``dataset`` empty).  Its layers are
    stored under loihic's names (``models.with_module_names``); ``source["layers"]`` keeps the front end's."""
    net = with_module_names(net)
    check_convertible(net)
    out = ir.infer_shapes(net)[-1]
    ckpt = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": "ann",
        "model": model,
        "dataset": "",
        "input_shape": list(net.input.shape),
        "num_classes": int(out[0]),
        "layers": network_data(net.layers),
        "state_dict": state_dict_from_network(net),
        "seed": 0,
        "hyperparams": {},
        "metrics": {},
        "created_by": CREATED_BY,
        "imported": source,
    }
    return validate_checkpoint(ckpt, f"imported {model}", "ann")


def _jsonable(v: Any) -> Any:
    return None if v is None else np.asarray(v, np.float64).ravel().tolist()


def import_torch(model: Any, example: Any = None, input_mean: Any = None, input_std: Any = None) -> dict[str, Any]:
    """An ``nn.Module`` (with an ``example`` input batch) or a ``.pt2`` file -> ANN checkpoint."""
    if isinstance(model, (str, Path)):
        prog = read_pt2(model)
        name, sha = Path(model).stem, file_sha256(model)
    else:
        if example is None:
            raise CheckpointError("an nn.Module needs an example input batch (the calibration data serves)")
        prog = program_from_module(model, example)
        name, sha = type(model).__name__, None
    net = network_from_program(prog, input_mean=input_mean, input_std=input_std)
    source = {
        "front_end": "torch.export",
        "source": prog.source,
        "sha256": sha,
        "input_mean": _jsonable(input_mean),
        "input_std": _jsonable(input_std),
        "input_affine_folded": bool(net.meta["input_affine_folded"]),
        "dropped_final_ops": list(net.meta["dropped_final_ops"]),
        "layers": [layer.name for layer in net.layers],
    }
    return ann_checkpoint(net, name, source)


def load_ann(path: str | Path, input_mean: Any = None, input_std: Any = None) -> dict[str, Any]:
    """Any model file ``convert`` takes: a torch.export program (``.pt2``) or a loihic checkpoint."""
    p = Path(path)
    if p.is_dir():
        raise CheckpointError(f"{p}: is a directory, expected a model file")
    if not p.is_file():
        raise CheckpointError(f"{p}: no such file")
    if is_pt2(p):
        return import_torch(p, input_mean=input_mean, input_std=input_std)
    if input_mean is not None or input_std is not None:
        raise CheckpointError(f"{p}: --input-mean/--input-std apply to torch.export programs only")
    try:
        return load_checkpoint(p)
    except CheckpointError as exc:
        if "not a loihic checkpoint" in str(exc) and _is_plain_state_dict(p):
            raise CheckpointError(
                f"{p}: is a plain state_dict (weights without the network's structure); {TORCH_EXPORT_HOWTO}"
            ) from None
        if "not a loihic checkpoint" in str(exc) and _is_pickled_module(p):
            raise CheckpointError(
                f"{p}: is a whole nn.Module saved with torch.save(model), a pickle of its Python classes, which "
                "loihic never unpickles (loading it runs code from the file); in your own code, where the model's "
                "class is defined, torch.load it (or build the model and load_state_dict), then "
                f"{TORCH_EXPORT_HOWTO}"
            ) from None
        if zipfile.is_zipfile(p) and "cannot read" in str(exc):
            raise CheckpointError(
                f"{p}: neither a loihic checkpoint nor a torch.export program; {TORCH_EXPORT_HOWTO}"
            ) from None
        raise


def _is_pickled_module(p: Path) -> bool:
    """A torch.save'd ``nn.Module``: its pickle (read as opcodes, never run) sets a module's ``_modules``
    and ``_parameters``."""
    import pickletools

    try:
        with zipfile.ZipFile(p) as z:
            name = next(n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
            strings = {arg for _, arg, _ in pickletools.genops(z.read(name)) if isinstance(arg, str)}
    except Exception:  # not a zip, no pickle, a damaged pickle: it is not one
        return False
    return {"_modules", "_parameters"} <= strings


def _is_plain_state_dict(p: Path) -> bool:
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:  # any failure: it is not one
        return False
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())
