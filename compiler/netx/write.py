"""Write a quantized :class:`~loihic.compiler.ir.Network` as lava-dl netx HDF5, atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from loihic.compiler import ir
from loihic.compiler.errors import LoihicError, OutputExistsError, QuantizationError
from loihic.compiler.fileio import publish
from loihic.compiler.netx import schema
from loihic.compiler.netx.model import NxSigmaDelta
from loihic.compiler.passes.quantize_sdnn import DELTA_META


def _exact_int(name: str, a: np.ndarray, lo: int | None = None, hi: int | None = None) -> np.ndarray:
    """netx truncates with astype(int): refuse anything that is not already an exact integer."""
    arr = np.asarray(a)
    if arr.dtype.kind == "f" and not np.array_equal(arr, np.rint(arr)):
        raise QuantizationError(f"{name}: non-integer values would be truncated by netx")
    arr = arr.astype(np.int64)
    if (lo is not None and arr.min() < lo) or (hi is not None and arr.max() > hi):
        raise QuantizationError(f"{name}: values in [{arr.min()}, {arr.max()}] exceed [{lo}, {hi}]")
    return arr


def _type(group: h5py.Group, name: str) -> None:
    """A fixed-length string, as slayer writes it (netx reads v[0]); fixed-length avoids h5py's
    variable-length string heap, which a corrupt file can make h5py hang on."""
    group.create_dataset("type", (1,), "S10", [name.encode("ascii")])


def _write_neuron(group: h5py.Group, q: ir.Quant) -> None:
    neuron = group.create_group("neuron")
    _type(neuron, "CUBA")
    neuron["vThMant"] = np.int64(q.v_th_mant)
    neuron["iDecay"] = np.int64(q.i_decay)
    neuron["vDecay"] = np.int64(q.v_decay)
    neuron["refDelay"] = np.int64(1)  # ignored by netx (spec 1 item 10); written for slayer readers


def _write_temporal(group: h5py.Group, layer: ir.Dense, weight: np.ndarray, where: str) -> None:
    """A recurrent layer's ``weight_rec`` (type 'dense_rec') and a delayed layer's per-synapse ``delay`` (out, in):
    what lava-dl's netx reads into RecurrentDense / DelayDense (hdf5.py create_dense; spec sec. 7)."""
    q = layer.quant
    if layer.weight_rec is not None and layer.delay is not None:
        raise LoihicError(f"{where}: {schema.REC_DELAY_REFUSED}")
    if layer.weight_rec is not None:
        if q.weight_rec is None:
            raise LoihicError(f"{where}: recurrent, but its weight_rec is not quantized")
        w_rec = _exact_int(f"{where}: weight_rec", q.weight_rec, schema.WEIGHT_MIN, schema.WEIGHT_MAX)
        if w_rec.shape != (weight.shape[0], weight.shape[0]):
            raise LoihicError(f"{where}: weight_rec has shape {w_rec.shape}, expected {(weight.shape[0],) * 2}")
        group[schema.WEIGHT_REC_KEY] = w_rec.astype(np.float32)
    if layer.delay is not None:
        group[schema.DELAY_KEY] = _exact_int(f"{where}: delay", layer.delay, 0, schema.MAX_DELAY)


def write_sdnn_neuron(group: h5py.Group, neuron: NxSigmaDelta) -> None:
    """``group/neuron`` for a sigma-delta neuron group, as slayer writes one (slayer/neuron/sigma_delta.py
    device_params, slayer/block/sigma_delta.py:258) and netx reads it back into the same kind (hdf5.py
    get_neuron_params lines 164-189): type 'SDNN', activation 'relu', vThMant, and 'sigma_output' for a
    Sigma.  A Delta is an 'input' layer's neuron; the layer's bias (SigmaDelta only) is the layer's 'bias'."""
    g = group.create_group("neuron")
    _type(g, schema.SDNN_TYPE)
    g.create_dataset(schema.ACTIVATION_KEY, (1,), "S10", [schema.SDNN_ACTIVATION.encode("ascii")])
    g["vThMant"] = np.int64(neuron.v_th_mant)
    if neuron.kind == "sigma":
        g[schema.SIGMA_OUTPUT_KEY] = np.bool_(True)


def _write_layer(group: h5py.Group, layer: ir.Layer, shape: tuple[int, ...]) -> None:
    where = f"layer '{layer.name}'"
    if isinstance(layer, ir.Flatten):
        _type(group, "flatten")
        group["shape"] = np.asarray(shape, dtype=np.int64)
        return
    if not isinstance(layer, ir.SYNAPTIC):
        raise LoihicError(f"{where}: {type(layer).__name__} must be lowered before writing netx")
    q = layer.quant
    if q is None:
        raise LoihicError(f"{where}: not quantized; run the compiler pipeline before writing")
    sigma_delta = isinstance(layer.neuron, ir.SigmaDelta)
    if sigma_delta != isinstance(q, ir.SigmaDeltaQuant):
        raise LoihicError(f"{where}: {type(q).__name__} does not quantize a {type(layer.neuron).__name__} neuron")
    weight = _exact_int(f"{where}: weight", q.weight, schema.WEIGHT_MIN, schema.WEIGHT_MAX)
    if not weight.any():
        raise QuantizationError(f"{where}: all weights quantize to zero (netx cannot load that)")
    rec = isinstance(layer, ir.Dense) and layer.weight_rec is not None
    _type(group, ("dense_rec" if rec else "dense") if isinstance(layer, ir.Dense) else "conv")
    group["shape"] = np.asarray(shape if len(shape) == 3 else shape, dtype=np.int64)
    group["weight"] = weight.astype(np.float32)  # slayer stores float32; exact for |w| < 2^24
    if isinstance(layer, ir.Dense):
        _write_temporal(group, layer, weight, where)
    if q.bias is not None:
        lo, hi = (schema.BIAS_MANT_MIN, schema.BIAS_MANT_MAX)
        if sigma_delta:
            lo, hi = -schema.SDNN_BIAS_MAX - 1, schema.SDNN_BIAS_MAX
        bias = _exact_int(f"{where}: bias", q.bias, lo, hi)
        group["bias"] = bias.astype(np.float32)
    if isinstance(layer, ir.Conv):
        group["stride"] = np.asarray(layer.stride, dtype=np.int64)
        group["padding"] = np.asarray(layer.padding, dtype=np.int64)
        group["dilation"] = np.asarray(layer.dilation, dtype=np.int64)
        group["groups"] = np.int64(layer.groups)
    if sigma_delta:
        kind = "sigma" if layer.neuron.output == "sigma" else "sigma_delta"
        write_sdnn_neuron(group, NxSigmaDelta(kind, q.v_th_mant if kind != "sigma" else 0, None))
    else:
        _write_neuron(group, q)


def write_netx(net: ir.Network, path: str | os.PathLike, meta: dict[str, Any], force: bool = False) -> Path:
    """Write ``net`` to ``path``.  The file appears whole or not at all (temp file + rename)."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path}: already exists (use --force to overwrite)")
    shapes = ir.infer_shapes(net)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            layers = f.create_group(schema.LAYER_GROUP)
            inp = layers.create_group("0")
            _type(inp, "input")
            inp["shape"] = np.asarray(net.input.shape, dtype=np.int64)
            if net.sigma_delta:  # the Delta input layer (compiler/passes/quantize_sdnn.py)
                delta = net.meta.get(DELTA_META)
                if delta is None:
                    raise LoihicError("the Delta input is not quantized; run the compiler pipeline before writing")
                write_sdnn_neuron(inp, NxSigmaDelta("delta", int(delta["v_th_mant"]), None))
            for i, (layer, shape) in enumerate(zip(net.layers, shapes, strict=True), start=1):
                _write_layer(layers.create_group(str(i)), layer, shape)
            meta_text = json.dumps(meta, sort_keys=True).encode("utf-8")
            f.create_group(schema.META_GROUP).create_dataset(schema.META_JSON, data=np.frombuffer(meta_text, np.uint8))
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
