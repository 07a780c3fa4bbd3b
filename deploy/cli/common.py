"""What every verb of the CLI shares: output checks, one JSON object or text on stdout, notes and warnings as
stderr lines, option checks, and the user's data files read with one-line errors."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from loihic.compiler.errors import InputError
from loihic.compiler.fileio import write_atomically
from loihic.compiler.netx.read import NetxModel
from loihic.training.data import dataset_info, load_inputs, load_labels, read_npy, test_split


def emit(args: argparse.Namespace, result: dict[str, Any], text: str) -> None:
    """``--json``: one JSON object on stdout; otherwise the human-readable text."""
    if getattr(args, "json", False):
        print(json.dumps(result, default=jsonable, sort_keys=True))
    else:
        print(text)


def jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def note(lines: Iterable[str], kind: str = "") -> None:
    """Notes (``kind=""``) or warnings (``kind="warning"``) of the library, one ``loihic:`` line each."""
    prefix = f"loihic: {kind}: " if kind else "loihic: "
    for line in lines:
        print(prefix + line, file=sys.stderr)


def save_npy(path: Path, array: np.ndarray) -> None:
    write_atomically(path, lambda tmp: np.save(tmp, array), ".npy")


def is_netx(path: str) -> bool:
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected a checkpoint or netx file")
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    return h5py.is_hdf5(p)


def check_options(args: argparse.Namespace) -> None:
    """Refuse counts below 1 and a --device torch cannot use, before any work (0 would mean 'default')."""
    for dest in ("timesteps", "samples", "calib_samples", "workers"):
        value = getattr(args, dest, None)
        if value is not None and value < 1:
            raise InputError(f"--{dest.replace('_', '-')} must be >= 1, got {value}")
    memory = getattr(args, "emulator_memory", None)
    if memory is not None and not (memory > 0 and np.isfinite(memory)):
        raise InputError(f"--emulator-memory must be a number of MB > 0, got {memory}")
    name = getattr(args, "device", None)
    if name is None:
        return
    import torch

    try:
        dev = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name!r} is not a torch device (expected cpu or cuda[:N])") from None
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"--device {name!r}: only cpu and cuda[:N] are supported")
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise InputError(f"--device {name!r}: no such CUDA device on this machine (use --device cpu)")


def run_data(
    args: argparse.Namespace,
    where: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    dataset: str | None,
    need_labels: bool = True,
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """``(x, y, what)`` for evaluate / verify / report: ``--data X.npy [--labels Y.npy]`` or a named data set's
    test split (``--dataset``, else the one ``where`` records), first ``--samples`` only."""
    samples = getattr(args, "samples", None)
    data, labels = getattr(args, "data", None), getattr(args, "labels", None)
    if data is None:
        if labels is not None:
            raise InputError("--labels needs --data X.npy (the inputs they label)")
        if not dataset:
            raise InputError(f"{where}: records no data set; pass --dataset NAME or --data X.npy --labels Y.npy")
        x, y = test_split(dataset, samples)
        if tuple(x.shape[1:]) != tuple(input_shape):
            raise InputError(f"--dataset {dataset}: inputs of shape {x.shape[1:]}, {where} takes {input_shape}")
        return x, y, dataset
    if getattr(args, "dataset", None):
        raise InputError("--data and --dataset are alternatives; pass one")
    if need_labels and labels is None:
        raise InputError("--data needs --labels Y.npy (integer class labels, one per sample)")
    x = load_inputs(data, tuple(input_shape))
    y = None if labels is None else load_labels(labels, len(x), num_classes)
    if samples is not None:
        x, y = x[:samples], (None if y is None else y[:samples])
    return x, y, str(data)


def spike_input_shape(path: str) -> tuple[tuple[int, ...], str]:
    """Per-sample (C, H, W) of the spikes ``--input X.npy`` (N, C, H, W, T), from its header."""
    x = read_npy(path, "input spikes")
    if x.ndim != 5:
        raise InputError(f"{path}: shape {x.shape}; a conv-first network takes spikes (N, C, H, W, T)")
    return tuple(int(s) for s in x.shape[1:-1]), f"--input {path}"


def data_input_shape(args: argparse.Namespace) -> tuple[tuple[int, ...], str] | None:
    """Per-sample (C, H, W) of verify / evaluate's data: ``--data X.npy`` (N, C, H, W), or (N, H, W) for one
    channel, from its header; else ``--dataset NAME``'s; None without either."""
    if getattr(args, "data", None) is not None:
        x = read_npy(args.data, "inputs")
        if x.ndim not in (3, 4):
            raise InputError(f"{args.data}: shape {x.shape}; a conv-first network takes images (N, C, H, W)")
        return tuple(int(s) for s in (x.shape[1:] if x.ndim == 4 else (1, *x.shape[1:]))), f"--data {args.data}"
    if getattr(args, "dataset", None):
        return dataset_info(args.dataset).input_shape, f"--dataset {args.dataset}"
    return None


def load_spike_input(path: str, model: NetxModel, bits: int) -> np.ndarray:
    """``--input X.npy``: integer spikes (N, *input_shape, T) of the file's input, checked before reading."""
    x = read_npy(path, "input spikes")
    p = Path(path)
    if x.dtype.kind not in "iub":
        raise InputError(f"{p}: dtype {x.dtype}; expected an integer array of spikes")
    from loihic.deploy.netx_run import append_always_on, user_input_shape

    want = user_input_shape(model)
    if x.ndim != len(want) + 2 or tuple(x.shape[1:-1]) != want or x.shape[0] < 1 or x.shape[-1] < 1:
        raise InputError(f"{p}: shape {x.shape}; expected (N, {', '.join(map(str, want))}, T)")
    if model.input.neuron is not None and model.input.neuron.graded:  # a sigma-delta input layer (Delta)
        if x.min() < -(1 << 31) or x.max() >= (1 << 31):
            raise InputError(f"{p}: values outside int32, what Lava's source sends to a Delta input layer")
        return np.array(x)
    if bits == 0 and ((x != 0) & (x != 1)).any():
        raise InputError(f"{p}: values other than 0/1; binary spikes expected (or set --input-message-bits)")
    if bits > 0 and (x.min() < 0 or x.max() >= (1 << bits)):
        raise InputError(f"{p}: values outside [0, {(1 << bits) - 1}] for {bits}-bit graded input")
    return append_always_on(model, np.array(x))  # read now, from the memory map whose size was checked
