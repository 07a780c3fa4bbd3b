"""Seeded mutations of valid files: one function per file type, each ``(seed_path, out_path, rng) -> description``.

Every type gets the byte-level mutations (truncation, garbage bytes, an empty file, a file of another type)
plus structural ones done through the format's own library, so that the result is still a readable file whose
*content* is wrong: missing / renamed / re-typed fields and datasets, NaN / inf, out-of-range and huge values,
and huge declared shapes (HDF5 datasets whose declared size is 10^9+ elements but whose storage is a few bytes:
chunked with a fill value, so a reader that does not check sizes before reading allocates gigabytes).
"""

from __future__ import annotations

import copy
import io
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

HUGE_INTS = (10**9, 2**31, 2**40, 2**62, -(2**63), -1, 0)
HUGE_FLOATS = (np.nan, np.inf, -np.inf, 1e300, -1e30, 0.5, 1e9)


def pick(rng: np.random.Generator, options: Any) -> Any:
    """One of ``options`` as it is (``rng.choice`` would turn a mixed tuple into one numpy dtype)."""
    return options[int(rng.integers(0, len(options)))]


# --- bytes ------------------------------------------------------------------------------------------------
def mutate_bytes(src: Path, out: Path, rng: np.random.Generator) -> str:
    data = bytearray(src.read_bytes())
    op = str(rng.choice(("truncate", "flip", "garbage", "zero", "append", "empty", "swap-type")))
    if op == "truncate":
        cut = int(rng.integers(0, len(data)))
        data = data[:cut]
        what = f"truncated to {cut} of {len(data)} bytes"
    elif op == "flip":
        k = int(rng.integers(1, 64))
        for i in rng.integers(0, len(data), k):
            data[i] ^= 1 << int(rng.integers(0, 8))
        what = f"{k} bit flips"
    elif op == "garbage":
        start = int(rng.integers(0, len(data)))
        n = int(rng.integers(1, 4096))
        data[start : start + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        what = f"{n} garbage bytes at {start}"
    elif op == "zero":
        start = int(rng.integers(0, len(data)))
        n = int(rng.integers(1, 4096))
        data[start : start + n] = bytes(min(n, len(data) - start))
        what = f"{n} zero bytes at {start}"
    elif op == "append":
        data += rng.integers(0, 256, int(rng.integers(1, 2048)), dtype=np.uint8).tobytes()
        what = "garbage appended"
    elif op == "empty":
        data = bytearray()
        what = "empty file"
    else:
        data = bytearray(_other_type(rng))
        what = "a file of another type"
    out.write_bytes(bytes(data))
    return f"bytes: {what}"


def _other_type(rng: np.random.Generator) -> bytes:
    choice = int(rng.integers(0, 5))
    if choice == 0:
        return b"just some text\n" * 10
    if choice == 1:
        buf = io.BytesIO()
        np.save(buf, np.arange(10))
        return buf.getvalue()
    if choice == 2:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("a/b.txt", "hello")
        return buf.getvalue()
    if choice == 3:
        buf = io.BytesIO()
        torch.save({"a": torch.zeros(3)}, buf)
        return buf.getvalue()
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f["x"] = np.arange(4)
    return buf.getvalue()


# --- HDF5 (netx, NIR) -------------------------------------------------------------------------------------
def _h5_items(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visit(names.append)
    return names


def _replace(f: h5py.File, name: str, **kwargs: Any) -> None:
    del f[name]
    f.create_dataset(name, **kwargs)


def _huge_dataset(f: h5py.File, name: str, rng: np.random.Generator, like: h5py.Dataset | None) -> str:
    """``name`` becomes a dataset that declares 10^9+ elements and stores almost nothing (fill value)."""
    dtype = like.dtype if like is not None and like.dtype.kind in "iuf" else np.dtype(np.float32)
    ndim = like.ndim if like is not None and like.ndim > 0 else 1
    shape = [int(rng.choice((10**9, 2**31, 10**5)))] + [int(rng.choice((1, 10**4, 64)))] * (ndim - 1)
    if int(np.prod(shape, dtype=object)) < 10**9:
        shape[0] = 10**9
    if name in f:
        del f[name]
    f.create_dataset(name, shape=tuple(shape), dtype=dtype, chunks=(1,) * len(shape), fillvalue=2)
    return f"{name}: declared shape {tuple(shape)} (stored empty)"


def _h5_op(f: h5py.File, rng: np.random.Generator) -> str:
    items = _h5_items(f)
    name = str(rng.choice(items))
    obj = f[name]
    ds = obj if isinstance(obj, h5py.Dataset) else None
    ops = ["delete", "rename", "retype", "group-for-dataset"]
    if ds is not None:
        ops += ["nan", "huge", "huge", "reshape", "empty", "huge-shape", "huge-shape"]
        if ds.dtype.kind in "SOU" or name.endswith("type"):
            ops += ["string", "string", "string"]
        if name.endswith("shape") or name.endswith("input_type/input") or name.endswith("output_type/output"):
            ops += ["neurons-1e9", "neurons-1e9", "neurons-1e9"]
        if name.endswith("meta_json"):
            ops += ["json", "json", "json"]
    op = str(rng.choice(ops))
    if op == "delete":
        del f[name]
    elif op == "rename":
        parent = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
        new = name + str(rng.choice(("_", "s", "X"))) if rng.random() < 0.7 else parent + "99"
        if new in f:
            del f[new]
        f.move(name, new)
        return f"rename {name} -> {new}"
    elif op == "group-for-dataset":
        del f[name]
        f.create_group(name)
    elif op == "retype":
        value = rng.choice(4)
        kinds = {
            0: np.bytes_(b"abc"),
            1: np.asarray([1.5, -2.5]),
            2: np.asarray([True, False]),
            3: np.complex64(1 + 2j),
        }
        del f[name]
        f[name] = kinds[int(value)]
        return f"retype {name} -> {kinds[int(value)]!r}"
    elif op == "nan":
        raw = np.atleast_1d(np.asarray(ds[()]))
        arr = raw.astype(np.float64) if raw.dtype.kind in "iufb" and raw.size else np.zeros(1)
        arr.flat[rng.integers(0, arr.size)] = rng.choice((np.nan, np.inf, -np.inf))
        _replace(f, name, data=arr.reshape(ds.shape) if ds.shape and arr.size == ds.size else arr[0])
    elif op == "huge":
        value = pick(rng, HUGE_INTS + HUGE_FLOATS)
        arr = np.atleast_1d(np.asarray(ds[()]))
        arr = arr.copy() if arr.dtype.kind in "iufb" and arr.size else np.zeros(1)
        big_int = isinstance(value, int) and -(2**63) <= value < 2**63 and arr.dtype.kind in "iub"
        arr = arr.astype(np.int64 if big_int else np.float64)
        arr.flat[rng.integers(0, arr.size)] = value
        _replace(f, name, data=arr.reshape(ds.shape) if ds.shape and arr.size == ds.size else arr)
        return f"{name}: an entry set to {value}"
    elif op == "reshape":
        arr = np.asarray(ds[()])
        new = arr.T if arr.ndim > 1 else (arr.reshape(-1, 1) if arr.size else np.zeros((2, 2)))
        if rng.random() < 0.4:
            new = np.concatenate([np.ravel(arr), np.ravel(arr)]) if arr.size else np.zeros(3)
        _replace(f, name, data=new)
    elif op == "empty":
        _replace(f, name, data=np.zeros((0,), ds.dtype if ds.dtype.kind in "iuf" else np.float32))
    elif op == "huge-shape":
        return _huge_dataset(f, name, rng, ds)
    elif op == "string":
        value = str(rng.choice(("pool", "dense_rec", "SDNN", "ALIF", "", "xyz", "Conv2d", "Affine", "CUBA ", "Input")))
        _replace(f, name, data=np.bytes_(value.encode()))
        return f"{name} = {value!r}"
    elif op == "neurons-1e9":
        arr = np.atleast_1d(np.asarray(ds[()])).astype(np.int64).copy()
        arr[0] = int(rng.choice((10**9, 2**40, -5, 0)))
        _replace(f, name, data=arr)
        return f"{name} = {arr.tolist()} (a huge or impossible layer)"
    elif op == "json":
        return _mutate_meta_json(f, name, rng)
    return f"{op} {name}"


def _mutate_meta_json(f: h5py.File, name: str, rng: np.random.Generator) -> str:
    raw = f[name][()]
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, AttributeError):
        meta = {}
    key = str(rng.choice(("timesteps", "encoding", "dataset", "input_message_bits", "input_shape", "readout")))
    value = pick(rng, (10**9, -3, 0, "direct99", "no-such-set", None, [1, 2], 1.5, "8", 2**70, "digits"))
    if rng.random() < 0.2:
        text = b"{not json" if rng.random() < 0.5 else b"\xff\xfe garbage"
    else:
        meta[key] = value
        text = json.dumps(meta).encode()
    del f[name]
    f[name] = np.frombuffer(text, np.uint8)
    return f"{name}: {key} = {value!r}"


def mutate_h5(src: Path, out: Path, rng: np.random.Generator) -> str:
    if rng.random() < 0.25:
        return mutate_bytes(src, out, rng)
    shutil.copyfile(src, out)
    whats = []
    with h5py.File(out, "r+") as f:
        for _ in range(int(rng.choice((1, 1, 1, 2, 3)))):
            if not _h5_items(f):
                break
            try:
                whats.append(_h5_op(f, rng))
            except (ValueError, KeyError, TypeError, OSError, RuntimeError) as exc:  # h5py refused this edit
                whats.append(f"(edit refused by h5py: {type(exc).__name__})")
    return "h5: " + "; ".join(whats)


# --- sigma-delta netx files: the 'SDNN' neuron group's own keys ------------------------------------------
SDNN_VALUES = (-1, 0, 1, (1 << 19) - 1, 1 << 19, 2**31, 2**40, 1.5, np.nan, np.inf, -np.inf, 1e300)


def _sdnn_op(f: h5py.File, rng: np.random.Generator) -> str:
    """One edit of what netx reads from an SDNN file: vThMant, 'sigma_output' (its presence selects a Sigma),
    'activation', 'messageBits', a bias where a Sigma takes none, a CUBA group among SDNN ones, a lost group."""
    layers = sorted(f["layer"].keys(), key=lambda k: int(k) if k.isdigit() else -1)
    name = f"layer/{pick(rng, layers)}"
    g = f[name]
    ng = g.get("neuron")
    op = str(rng.choice(("vth", "vth", "sigma_output", "activation", "message_bits", "bias", "cuba", "no-neuron")))
    if not isinstance(ng, h5py.Group):
        op = "no-neuron"
    if op == "vth":
        value = pick(rng, SDNN_VALUES)
        if "vThMant" in ng:
            del ng["vThMant"]
        ng["vThMant"] = np.asarray([value], np.float64 if isinstance(value, float) else np.int64)
        return f"{name}/neuron/vThMant = {value}"
    if op == "sigma_output":
        if "sigma_output" in ng:
            del ng["sigma_output"]
            return f"{name}/neuron/sigma_output removed"
        value = pick(rng, (True, False, 0, 1, 2.5, np.nan))
        ng["sigma_output"] = np.asarray([value])
        return f"{name}/neuron/sigma_output = {value!r}"
    if op == "activation":
        value = str(rng.choice(("relu", "ReLU", "tanh", "", "identity", "x" * 40)))
        if "activation" in ng:
            del ng["activation"]
        ng["activation"] = np.bytes_(value.encode())
        return f"{name}/neuron/activation = {value!r}"
    if op == "message_bits":
        value = int(rng.choice((0, 8, 16, 24, -1)))
        ng["messageBits"] = np.int64(value)
        return f"{name}/neuron/messageBits = {value}"
    if op == "bias":
        n = int(np.prod(np.asarray(g["shape"][()]))) if "shape" in g else 3
        value = pick(rng, (1.0, 40000.0, -(2.0**15) - 1, np.nan, 2.0**70))
        if "bias" in g:
            del g["bias"]
        g["bias"] = np.full(max(1, min(n, 1 << 16)), value, np.float64)
        return f"{name}/bias = {value} (x{n})"
    if op == "cuba":
        del g["neuron"]
        ng = g.create_group("neuron")
        ng["type"] = np.bytes_(b"CUBA")
        ng["vThMant"], ng["iDecay"], ng["vDecay"] = np.int64(10), np.int64(0), np.int64(4096)
        return f"{name}/neuron: a CUBA group among SDNN ones"
    if isinstance(ng, h5py.Group):
        del g["neuron"]
    return f"{name}/neuron removed"


def _specific_edits(src: Path, out: Path, rng: np.random.Generator, op: Any, p_generic: float, label: str) -> str:
    """With probability ``p_generic`` :func:`mutate_h5`'s edit, else ``op(file, rng)`` once or twice on a copy."""
    if rng.random() < p_generic:
        return mutate_h5(src, out, rng)
    shutil.copyfile(src, out)
    whats = []
    with h5py.File(out, "r+") as f:
        for _ in range(int(rng.choice((1, 1, 2)))):
            try:
                whats.append(op(f, rng))
            except (ValueError, KeyError, TypeError, OSError, RuntimeError) as exc:
                whats.append(f"(edit refused by h5py: {type(exc).__name__})")
    return f"{label}: " + "; ".join(whats)


def mutate_sdnn(src: Path, out: Path, rng: np.random.Generator) -> str:
    """Half the time an SDNN-specific edit (:func:`_sdnn_op`, once or twice), else :func:`mutate_h5`'s."""
    return _specific_edits(src, out, rng, _sdnn_op, 0.5, "sdnn")


TEMPORAL_DELAYS = (63, 62, -1, 1.5, np.nan, np.inf, 2.0**62, 1e30, 0)


def _temporal_op(f: h5py.File, rng: np.random.Generator) -> str:  # noqa: PLR0911
    """One edit of what netx reads into RecurrentDense / DelayDense: 'delay' values, forms and shapes,
    'weight_rec' shape, values and presence, the layer type switched between 'dense' and 'dense_rec'."""
    layers = [k for k in f["layer"] if isinstance(f["layer"][k], h5py.Group) and "weight" in f["layer"][k]]
    name = f"layer/{pick(rng, sorted(layers))}"
    g = f[name]
    n_out, n_in = np.asarray(g["weight"]).reshape(int(np.prod(g["shape"][()])), -1).shape
    op = str(rng.choice(("delay-value", "delay-shape", "delay-form", "rec-shape", "rec-value", "rec-drop", "type")))
    if op in ("delay-value", "delay-shape", "delay-form"):
        if "delay" in g:
            del g["delay"]
        if op == "delay-value":
            d = rng.integers(0, 63, (n_out, n_in)).astype(np.float64)
            value = pick(rng, TEMPORAL_DELAYS)
            d.flat[int(rng.integers(0, d.size))] = value
            g["delay"] = d
            return f"{name}/delay: one entry = {value}"
        if op == "delay-shape":
            shape = pick(rng, ((n_out + 1,), (n_in, n_out + 1), (1,), (2, n_out, n_in), (0,)))
            g["delay"] = np.ones(shape)
            return f"{name}/delay of shape {shape}"
        form = pick(rng, ((), (n_out,), (n_in,)))
        g["delay"] = rng.integers(0, 63, form).astype(np.int64)
        return f"{name}/delay of form {form}"
    if op in ("rec-shape", "rec-value"):
        if "weight_rec" in g:
            del g["weight_rec"]
        shape = (n_out, n_out) if op == "rec-value" else pick(rng, ((n_out, n_in + 1), (n_out + 1, n_out), (n_out,)))
        w = rng.integers(-128, 128, shape).astype(np.float64) * 2
        value = pick(rng, HUGE_FLOATS) if op == "rec-value" else None
        if value is not None:
            w.flat[0] = value
        g["weight_rec"] = w
        return f"{name}/weight_rec {shape}" + ("" if value is None else f" with {value}")
    if op == "rec-drop":
        if "weight_rec" in g:
            del g["weight_rec"]
            return f"{name}/weight_rec removed"
        return f"{name}: nothing to remove"
    new = "dense" if g["type"][0] == b"dense_rec" else "dense_rec"
    del g["type"]
    g.create_dataset("type", (1,), "S10", [new.encode()])
    return f"{name}/type = {new}"


def mutate_temporal(src: Path, out: Path, rng: np.random.Generator) -> str:
    """60% of the time recurrence / delay edits (:func:`_temporal_op`, once or twice), else :func:`mutate_h5`'s."""
    return _specific_edits(src, out, rng, _temporal_op, 0.4, "temporal")


# --- checkpoints (torch.save of a dict, read weights_only) ------------------------------------------------
class Payload:
    """An object whose unpickling would run code (weights_only must refuse it)."""

    def __reduce__(self):  # noqa: ANN204
        return (os.system, ("touch PWNED",))


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _get(obj: Any, path: tuple) -> Any:
    for k in path:
        obj = obj[k]
    return obj


def _new_value(old: Any, rng: np.random.Generator) -> Any:
    if isinstance(old, torch.Tensor):
        choice = int(rng.integers(0, 7))
        t = old.clone()
        if choice == 0 and t.numel() and t.is_floating_point():
            t.view(-1)[int(rng.integers(0, t.numel()))] = float(rng.choice((np.nan, np.inf, -np.inf)))
            return t
        if choice == 1:
            return t.reshape(-1) if t.ndim > 1 else torch.zeros(2, 2)
        if choice == 2:
            return t.to(torch.int64)
        if choice == 3:
            return t * 1e30
        if choice == 4:
            return t.tolist()
        if choice == 5:
            return torch.zeros((0,))
        return t.to(torch.complex64) if t.is_floating_point() else t.to(torch.bool)
    if isinstance(old, bool):
        return int(rng.integers(0, 3))
    if isinstance(old, int):
        return pick(rng, HUGE_INTS) if rng.random() < 0.7 else str(old)
    if isinstance(old, float):
        return pick(rng, HUGE_FLOATS) if rng.random() < 0.8 else int(old)
    if isinstance(old, str):
        return (
            str(rng.choice(("", "xyz", "conv", "linear", "snn", "ann", "direct0", "maxpool", "lstm")))
            if rng.random() < 0.8
            else 3
        )
    if isinstance(old, list):
        choice = int(rng.integers(0, 4))
        if choice == 0:
            return []
        if choice == 1:
            return [10**9] * max(1, len(old))
        if choice == 2:
            return old + old[-1:] if old else [None]
        return {"a": 1}
    if isinstance(old, dict):
        return [] if rng.random() < 0.5 else {}
    return pick(rng, (1, "x", 1.5, None, [1]))


def mutate_checkpoint(src: Path, out: Path, rng: np.random.Generator) -> str:
    r = rng.random()
    if r < 0.2:
        return mutate_bytes(src, out, rng)
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    if r < 0.25:
        choice = int(rng.integers(0, 4))
        obj = [Payload(), {"format": "loihic-checkpoint", "x": Payload()}, [1, 2, 3], ckpt["state_dict"]][choice]
        torch.save(obj, out)
        return (
            f"checkpoint: whole object replaced ({['payload', 'payload in dict', 'list', 'plain state_dict'][choice]})"
        )
    ckpt = copy.deepcopy(ckpt)
    whats = []
    for _ in range(int(rng.choice((1, 1, 2, 3)))):
        special = rng.random()
        if special < 0.15:
            ckpt["input_shape"] = [int(rng.choice((10**9, 2**31))), 8, 8] if rng.random() < 0.5 else [1, 10**5, 10**5]
            whats.append(f"input_shape = {ckpt['input_shape']}")
            continue
        layers_key = "layers" if ckpt.get("layers") else "arch"
        if special < 0.25 and ckpt.get(layers_key):
            spec = ckpt[layers_key][int(rng.integers(0, len(ckpt[layers_key])))]
            key = str(rng.choice(("in", "out", "kernel", "stride", "padding", "type", "spiking", "name")))
            spec[key] = pick(rng, (10**9, -1, 0, "maxpool", 2**31, [3, 3, 3]))
            whats.append(f"{layers_key} entry {key} = {spec[key]!r}")
            continue
        paths = _paths(ckpt)
        path = paths[int(rng.integers(0, len(paths)))]
        parent = _get(ckpt, path[:-1])
        op = str(rng.choice(("delete", "rename", "value", "value", "value")))
        if op == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif op == "rename" and isinstance(parent, dict):
            parent[str(path[-1]) + "_"] = parent.pop(path[-1])
        elif op == "delete" and isinstance(parent, list):
            parent.pop(path[-1])
        else:
            op = "value"
            parent[path[-1]] = _new_value(parent[path[-1]], rng)
        whats.append(f"{op} {'.'.join(map(str, path))}")
    torch.save(ckpt, out)
    return "checkpoint: " + "; ".join(whats)


# --- torch.export archives (.pt2 zip) ---------------------------------------------------------------------
def _mutate_json_tree(obj: Any, rng: np.random.Generator) -> str:
    paths = _paths(obj)
    if not paths:
        return "nothing to mutate"
    # prefer sizes / dtypes / names: where a reader must check
    hot = [
        p
        for p in paths
        if p
        and str(p[-1])
        in (
            "as_int",
            "dtype",
            "sizes",
            "strides",
            "storage_offset",
            "path_name",
            "use_pickle",
            "name",
            "target",
            "layout",
        )
    ]
    path = (
        hot[int(rng.integers(0, len(hot)))] if hot and rng.random() < 0.7 else paths[int(rng.integers(0, len(paths)))]
    )
    parent = _get(obj, path[:-1])
    old = parent[path[-1]]
    if str(path[-1]) == "as_int":
        new: Any = int(rng.choice((10**9, 2**40, 2**62, -1)))
    elif str(path[-1]) == "use_pickle":
        new = True
    elif str(path[-1]) == "path_name":
        new = str(rng.choice(("../../etc/passwd", "weight_999", "tensor_x", "")))
    elif str(path[-1]) == "sizes" and isinstance(old, list):
        new = [{"as_int": 10**5}] * 3 if rng.random() < 0.5 else [{"as_expr": {"expr_str": "s0"}}]
    elif rng.random() < 0.3 and isinstance(parent, dict):
        del parent[path[-1]]
        return f"delete {'/'.join(map(str, path))}"
    else:
        new = _new_value(old, rng) if not isinstance(old, torch.Tensor) else 0
    parent[path[-1]] = new
    return f"{'/'.join(map(str, path))} = {str(new)[:60]}"


def mutate_pt2(src: Path, out: Path, rng: np.random.Generator) -> str:
    if rng.random() < 0.2:
        return mutate_bytes(src, out, rng)
    with zipfile.ZipFile(src) as z:
        entries = {i.filename: z.read(i.filename) for i in z.infolist()}
    names = list(entries)
    jsons = [n for n in names if n.endswith(".json")]
    weights = [n for n in names if "/data/weights/weight_" in n or "/data/constants/tensor_" in n]
    op = str(rng.choice(("json", "json", "json", "json", "truncate-weight", "delete-entry", "format", "huge-entry")))
    what = op
    if op == "json" and jsons:
        name = str(rng.choice(jsons))
        try:
            tree = json.loads(entries[name])
            what = f"{name}: {_mutate_json_tree(tree, rng)}"
            entries[name] = json.dumps(tree).encode()
        except ValueError:
            entries[name] = b"{"
    elif op == "truncate-weight" and weights:
        name = str(rng.choice(weights))
        entries[name] = entries[name][: int(rng.integers(0, max(1, len(entries[name]))))]
        what = f"truncated {name}"
    elif op == "delete-entry":
        name = str(rng.choice(names))
        del entries[name]
        what = f"deleted {name}"
    elif op == "format":
        name = next((n for n in names if n.endswith("archive_format") or n.endswith("byteorder")), names[0])
        entries[name] = str(rng.choice(("pt3", "big", "", "\xff"))).encode()
        what = f"{name} rewritten"
    else:  # a weight entry whose declared (uncompressed) size is huge
        name = str(rng.choice(weights or names))
        entries[name] = b"\0" * (1 << 20)
        what = f"{name}: 1 MiB of zeros"
    with zipfile.ZipFile(out, "w") as z:
        for n, data in entries.items():
            z.writestr(n, data, compress_type=zipfile.ZIP_DEFLATED if op == "huge-entry" else zipfile.ZIP_STORED)
    return "pt2: " + what


# --- .npy arrays ------------------------------------------------------------------------------------------
def _npy_header_lie(src: Path, out: Path, rng: np.random.Generator) -> str:
    """Keep the data, rewrite the header's shape (huge), dtype or order."""
    arr = np.load(src)
    shape = list(arr.shape)
    choice = int(rng.integers(0, 4))
    if choice == 0:
        shape[0] = int(rng.choice((10**9, 2**40, 10**6)))
        header = {"descr": arr.dtype.str, "fortran_order": False, "shape": tuple(shape)}
    elif choice == 1:
        header = {"descr": "|O", "fortran_order": False, "shape": tuple(shape)}
    elif choice == 2:
        header = {"descr": arr.dtype.str, "fortran_order": True, "shape": tuple(reversed(shape))}
    else:
        header = {"descr": ">f8" if arr.dtype.kind == "f" else "<U3", "fortran_order": False, "shape": tuple(shape)}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    out.write_bytes(buf.getvalue() + arr.tobytes())
    return f"npy header: {header}"


def _npy_value(arr: np.ndarray, rng: np.random.Generator, kind: str) -> tuple[np.ndarray, str]:
    a = arr.copy()
    choice = int(rng.integers(0, 12))
    if choice == 0:
        a = a.astype(np.float64)
        a.flat[rng.integers(0, a.size)] = rng.choice((np.nan, np.inf, -np.inf))
        return a, "NaN / inf entry"
    if choice == 1:
        a = a.astype(np.float64) if kind != "labels" else a.astype(np.int64)
        values = (10, -1, 2**40, 255, -(2**62)) if kind == "labels" else (2.0, -1.0, 1e30, 255.0, 10.0, -(2.0**62))
        a.flat[rng.integers(0, a.size)] = pick(rng, values)
        return a, "out-of-range entry"
    if choice == 2:
        dtype = pick(rng, (np.float16, np.float64, np.int8, np.uint8, np.int64, np.bool_, np.complex64, "U3"))
        return a.astype(dtype), f"dtype {np.dtype(dtype)}"
    if choice == 3:
        return a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(-1, 1), "flattened / extra axis"
    if choice == 4:
        return a[:0], "zero samples"
    if choice == 5:
        return a[..., : max(1, a.shape[-1] // 2)], "last axis cut"
    if choice == 6:
        return np.moveaxis(a, 0, -1) if a.ndim > 1 else a[:, None], "axes moved"
    if choice == 7:
        return np.asarray(a.tolist() + [None] * 0, dtype=object) if a.size < 5000 else a, "object array (pickle)"
    if choice == 8:
        return a[:1], "one sample"
    if choice == 9:
        return np.asarray(a.ravel()[0]), "0-d scalar"
    if choice == 10:
        return np.zeros((2,) + a.shape[1:], dtype=[("a", "<f4"), ("b", "<i4")]), "structured dtype"
    a = a.astype(np.float64) + 0.5 if kind == "labels" else (a > 0).astype(np.float64) * 7
    return a, "non-integral labels / values scaled"


def mutate_npy(src: Path, out: Path, rng: np.random.Generator, kind: str = "data") -> str:
    r = rng.random()
    if r < 0.2:
        return mutate_bytes(src, out, rng)
    if r < 0.35:
        return _npy_header_lie(src, out, rng)
    arr = np.load(src)
    new, what = _npy_value(arr, rng, kind)
    with open(out, "wb") as fh:
        np.lib.format.write_array(fh, new, allow_pickle=True)
    return f"npy: {what}"


MUTATORS: dict[str, Callable[[Path, Path, np.random.Generator], str]] = {
    "netx": mutate_h5,
    "nir": mutate_h5,
    "checkpoint": mutate_checkpoint,
    "pt2": mutate_pt2,
    "npy": mutate_npy,
    "labels": lambda s, o, r: mutate_npy(s, o, r, "labels"),
    "sdnn": mutate_sdnn,
    "temporal": mutate_temporal,
}
