"""Read a ``torch.export.save`` archive (``.pt2``) without running anything from it.

``torch.export.load`` cannot promise that: it unpickles weights and constants marked ``use_pickle``
(``torch.load(weights_only=False)``), unpickles custom and opaque objects, falls back to
``weights_only=False`` for the sample inputs, and turns symbolic shape expressions into objects with
``sympy.sympify`` (which calls ``eval``).  This reader therefore never calls it.  It reads only:

- ``<root>/archive_format`` (must say ``pt2``) and ``<root>/byteorder`` (``little``);
- ``<root>/models/model.json``: the serialized graph, plain JSON (``torch._export.serde.schema``);
- ``<root>/data/weights/model_weights_config.json`` and ``.../constants/model_constants_config.json``:
  for every parameter, buffer and tensor constant its raw-bytes file, dtype, sizes, strides and offset.
  Entries stored as pickles, custom objects and opaque objects are refused, as are symbolic sizes;
- the raw little-endian tensor bytes those configs name, viewed with numpy (no pickle).

Nothing else in the archive (``sample_inputs/*.pt`` is a pickle) is opened.  Sizes are checked against
the zip directory before anything is read, so a file that declares a huge tensor is refused, not loaded.
Every failure is a :class:`~loihic.compiler.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loihic.compiler.errors import CheckpointError

MAX_TENSOR_BYTES = 1 << 31  # one parameter: 2 GiB
MAX_JSON_BYTES = 64 << 20  # the graph description
# torch._export.serde.schema.ScalarType -> numpy dtype (floating and integer types only)
_DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float16, 7: np.float32, 8: np.float64}
_DTYPES_BOOL = {12: np.bool_}


@dataclass(frozen=True)
class Program:
    """What loihic needs of an exported program: the graph (JSON dicts) and its tensors, by graph name."""

    source: str  # file name (or "<nn.Module>") for error messages
    nodes: list[dict[str, Any]]  # graph_module.graph.nodes
    tensor_meta: dict[str, dict[str, Any]]  # graph value name -> serialized tensor meta (sizes, dtype)
    tensors: dict[str, np.ndarray]  # graph input name (parameter / buffer / constant) -> array
    tensor_names: dict[str, str]  # graph input name -> the module's name for it ("fc.weight")
    user_input: str  # graph name of the one user input
    user_output: str  # graph name of the one user output

    def shape(self, name: str) -> tuple[int, ...]:
        return sizes(self.tensor_meta[name]["sizes"], f"{self.source}: value '{name}'")


def is_pt2(path: Path | str) -> bool:
    """A zip archive with ``<root>/archive_format`` and ``<root>/models/model.json``."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return any(n.endswith("/archive_format") for n in names) and any(n.endswith("/models/model.json") for n in names)


def sizes(values: list[Any], where: str) -> tuple[int, ...]:
    """Serialized SymInt list -> ints; symbolic (dynamic) sizes are refused."""
    out = []
    for v in values:
        if not isinstance(v, dict) or "as_int" not in v or not isinstance(v["as_int"], int):
            raise CheckpointError(f"{where}: has a symbolic or malformed size {v!r}; export with static shapes")
        out.append(v["as_int"])
    if any(s < 0 for s in out):
        raise CheckpointError(f"{where}: negative size in {out}")
    return tuple(out)


class _Reader:
    def __init__(self, z: zipfile.ZipFile, source: str) -> None:
        self.z, self.source = z, source
        self.infos = {i.filename: i for i in z.infolist()}
        roots = {n.split("/", 1)[0] for n in self.infos if n.endswith("/archive_format")}
        if len(roots) != 1:
            raise CheckpointError(f"{source}: not a torch.export archive (no single <root>/archive_format)")
        self.root = roots.pop()

    def read(self, rel: str, limit: int) -> bytes:
        name = f"{self.root}/{rel}"
        info = self.infos.get(name)
        if info is None:
            raise CheckpointError(f"{self.source}: archive lacks '{name}' (not written by torch.export.save?)")
        if info.file_size > limit:
            raise CheckpointError(f"{self.source}: '{name}' declares {info.file_size} bytes (more than {limit})")
        return self.z.read(name)

    def json(self, rel: str) -> Any:
        try:
            return json.loads(self.read(rel, MAX_JSON_BYTES))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{self.source}: '{rel}' is not valid JSON ({exc})") from None

    def tensors(self, rel_dir: str, config_name: str) -> dict[str, np.ndarray]:
        config = self.json(f"{rel_dir}/{config_name}")
        entries = config.get("config") if isinstance(config, dict) else None
        if not isinstance(entries, dict):
            raise CheckpointError(f"{self.source}: '{rel_dir}/{config_name}' has no 'config' mapping")
        out = {}
        for fqn, entry in entries.items():
            where = f"{self.source}: tensor '{fqn}'"
            if not isinstance(entry, dict) or not isinstance(entry.get("path_name"), str):
                raise CheckpointError(f"{where}: malformed entry")
            if entry.get("use_pickle") or not entry["path_name"].startswith(("weight_", "tensor_")):
                raise CheckpointError(
                    f"{where}: stored as a pickled or custom object, which loihic never unpickles "
                    "(only plain tensors can be read safely)"
                )
            out[fqn] = self._tensor(f"{rel_dir}/{entry['path_name']}", entry.get("tensor_meta"), where)
        return out

    def _tensor(self, rel: str, meta: Any, where: str) -> np.ndarray:
        if not isinstance(meta, dict):
            raise CheckpointError(f"{where}: no tensor_meta")
        dtype = _DTYPES.get(meta.get("dtype")) or _DTYPES_BOOL.get(meta.get("dtype"))
        if dtype is None:
            raise CheckpointError(f"{where}: dtype code {meta.get('dtype')!r} is not a real number type")
        if meta.get("layout", 7) != 7:
            raise CheckpointError(f"{where}: layout {meta.get('layout')} is not a dense (strided) tensor")
        shape = sizes(meta.get("sizes", []), where)
        strides = sizes(meta.get("strides", []), where)
        (offset,) = sizes([meta.get("storage_offset", {"as_int": 0})], where)
        if len(strides) != len(shape):
            raise CheckpointError(f"{where}: {len(shape)} sizes but {len(strides)} strides")
        item = np.dtype(dtype).itemsize
        last = offset + sum((s - 1) * st for s, st in zip(shape, strides, strict=True)) if all(shape) else offset - 1
        need = (last + 1) * item
        if need > MAX_TENSOR_BYTES or math.prod(shape) * item > MAX_TENSOR_BYTES:
            raise CheckpointError(f"{where}: shape {shape} needs more than {MAX_TENSOR_BYTES} bytes")
        raw = self.read(rel, MAX_TENSOR_BYTES)
        if len(raw) < need:
            raise CheckpointError(f"{where}: file has {len(raw)} bytes, shape {shape} needs {need} (truncated?)")
        if not all(shape):
            return np.zeros(shape, dtype)
        flat = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"), count=len(raw) // item)
        view = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=shape, strides=tuple(st * item for st in strides), writeable=False
        )
        return np.array(view, dtype=np.dtype(dtype).newbyteorder("="))


def read_pt2(path: Path | str) -> Program:
    """Read a ``.pt2`` archive safely (module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such file")
    try:
        with zipfile.ZipFile(p) as z:
            return program_from_zip(z, str(p))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{p}: cannot read torch.export archive ({type(exc).__name__}: {exc})") from None


def program_from_zip(z: zipfile.ZipFile, source: str) -> Program:
    r = _Reader(z, source)
    if r.read("archive_format", 64).strip() != b"pt2":
        raise CheckpointError(f"{source}: archive_format is not 'pt2'")
    order = r.infos.get(f"{r.root}/byteorder")
    if order is not None and r.read("byteorder", 64).strip() != b"little":
        raise CheckpointError(f"{source}: only little-endian archives are supported")
    model = r.json("models/model.json")
    try:
        gm = model["graph_module"]
        graph, signature = gm["graph"], gm["signature"]
        nodes, tensor_meta = graph["nodes"], graph["tensor_values"]
        specs_in, specs_out = signature["input_specs"], signature["output_specs"]
    except (KeyError, TypeError):
        raise CheckpointError(f"{source}: models/model.json is not a serialized ExportedProgram") from None
    if graph.get("custom_obj_values"):
        raise CheckpointError(f"{source}: the program holds custom script objects, which loihic never loads")
    if not isinstance(nodes, list) or not isinstance(tensor_meta, dict):
        raise CheckpointError(f"{source}: models/model.json: graph nodes or tensor values malformed")
    weights = r.tensors("data/weights", "model_weights_config.json")
    constants = r.tensors("data/constants", "model_constants_config.json")
    tensors, names, user_in, user_out = {}, {}, [], []
    for spec in specs_in:
        (kind, body), *rest = spec.items() if isinstance(spec, dict) and spec else [(None, None)]
        if kind == "user_input":
            arg = body.get("arg", {})
            if "as_tensor" not in arg:
                raise CheckpointError(f"{source}: a non-tensor user input ({arg!r}); the model must take one tensor")
            user_in.append(arg["as_tensor"]["name"])
            continue
        key = {"parameter": "parameter_name", "buffer": "buffer_name", "tensor_constant": "tensor_constant_name"}
        if kind not in key or rest:
            raise CheckpointError(f"{source}: graph input of kind {kind!r} is not supported")
        fqn, gname = body.get(key[kind]), body.get("arg", {}).get("name")
        store = weights if kind != "tensor_constant" else constants
        if fqn not in store:
            store = constants if store is weights else weights  # non-persistent buffers live with constants
        if fqn not in store:
            raise CheckpointError(f"{source}: {kind} '{fqn}' has no stored tensor")
        tensors[gname], names[gname] = store[fqn], str(fqn)
    for spec in specs_out:
        body = spec.get("user_output") if isinstance(spec, dict) else None
        if body is None or "as_tensor" not in body.get("arg", {}):
            raise CheckpointError(f"{source}: only programs whose one output is a tensor are supported")
        user_out.append(body["arg"]["as_tensor"]["name"])
    if len(user_in) != 1 or len(user_out) != 1:
        raise CheckpointError(
            f"{source}: the program has {len(user_in)} inputs and {len(user_out)} outputs; "
            "loihic deploys models with one input tensor and one output tensor"
        )
    return Program(source, nodes, tensor_meta, tensors, names, user_in[0], user_out[0])


def program_from_module(module: Any, example: Any) -> Program:
    """Export an ``nn.Module`` (eval mode) with ``torch.export`` and read it back through the same safe
    reader as a file, so the Python API and the CLI take one road."""
    import io

    import torch

    if not isinstance(module, torch.nn.Module):
        raise CheckpointError(f"model is a {type(module).__name__}, expected a torch.nn.Module or a file path")
    if module.training:
        raise CheckpointError("model is in training mode: call model.eval() first (BatchNorm and dropout differ)")
    x = torch.as_tensor(np.asarray(example, dtype=np.float32))
    try:
        ep = torch.export.export(module, (x,))
    except Exception as exc:  # torch.export raises many types; the user's model failed to trace
        text = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"<nn.Module {type(module).__name__}>: torch.export failed: {text}") from None
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    buf.seek(0)
    with zipfile.ZipFile(buf) as z:
        return program_from_zip(z, f"<nn.Module {type(module).__name__}>")
