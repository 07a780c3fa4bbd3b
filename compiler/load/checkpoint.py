"""loihic checkpoints <-> IR: the network structure a checkpoint stores, and the IR of a converted SNN.

A checkpoint (format 2, ``training/checkpoint.py``) stores its network as ``"layers"``: one plain dict per IR
layer (:func:`layer_data`), without arrays; the arrays are the ``state_dict`` tensors of the torch modules
training builds from the same layers (``training/models.py build_model``), keyed by module index
(:func:`module_indices`).  Exact keys of each layer type (sizes are ``[H, W]`` pairs)::

    {"type": "dense", "name": str, "in": int, "out": int, "bias": bool, "spiking": bool}
    {"type": "conv", "name": str, "in": int, "out": int, "kernel": [int, int], "stride": [int, int],
     "padding": [int, int], "dilation": [int, int], "groups": int, "bias": bool, "spiking": bool}
    {"type": "batchnorm", "name": str, "features": int, "eps": float}     # right after dense or conv
    {"type": "avgpool", "name": str, "kernel": [int, int], "stride": [int, int]}
    {"type": "dropout", "name": str, "p": float}
    {"type": "flatten", "name": str}

``spiking`` is the synaptic layer's neuron in the ANN's vocabulary (``compiler.ir.RELU`` or ``READOUT``): a
ReLU module follows the synapse (after its batchnorm) in torch.  The spiking parameters of a converted SNN
(thresholds, leak, reset, output, steps, encoding) are not repeated here: they live in the checkpoint's ``snn``
block, and :func:`network_from_checkpoint` puts them on the IR's neurons; a sigma-delta checkpoint
(``snn.neuron`` ``"sdnn"``, deploy/sdnn_convert.py) becomes SigmaDelta layers with a Sigma read-out
(:func:`sdnn_network`).  Format-1 checkpoints (an ``arch``
list) are migrated by ``checkpoint_v1.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from loihic.compiler import ir
from loihic.compiler.errors import CheckpointError, UnsupportedLayerError

_SIZE = "size"  # an [H, W] pair of ints
LAYER_KEYS: dict[str, dict[str, Any]] = {
    "dense": {"name": str, "in": int, "out": int, "bias": bool, "spiking": bool},
    "conv": {
        "name": str,
        "in": int,
        "out": int,
        "kernel": _SIZE,
        "stride": _SIZE,
        "padding": _SIZE,
        "dilation": _SIZE,
        "groups": int,
        "bias": bool,
        "spiking": bool,
    },
    "batchnorm": {"name": str, "features": int, "eps": float},
    "avgpool": {"name": str, "kernel": _SIZE, "stride": _SIZE},
    "dropout": {"name": str, "p": (float, int)},
    "flatten": {"name": str},
}
SYNAPTIC_TYPES = ("dense", "conv")
SDNN = "sdnn"  # snn.neuron of a sigma-delta checkpoint (deploy/sdnn_convert.py)
HINTS = {  # why a layer type that is not in LAYER_KEYS has no place on Loihi
    "maxpool": "max pooling has no exact spiking equivalent on Loihi; train with average pooling",
    "lstm": "recurrent cells are not supported by the netx CUBA path",
    "gru": "recurrent cells are not supported by the netx CUBA path",
    "sigmoid": "only ReLU maps onto spiking rate codes",
    "tanh": "only ReLU maps onto spiking rate codes",
}


def _pair(v: tuple[int, int]) -> list[int]:
    return [int(v[0]), int(v[1])]


def layer_data(layer: ir.Layer) -> dict[str, Any]:
    """The plain (JSON-able) dict of one IR layer, without its arrays (module docstring)."""
    if isinstance(layer, ir.Dense):
        return {
            "type": "dense",
            "name": layer.name,
            "in": int(layer.weight.shape[1]),
            "out": int(layer.weight.shape[0]),
            "bias": layer.bias is not None,
            "spiking": bool(layer.neuron.spiking),
        }
    if isinstance(layer, ir.Conv):
        return {
            "type": "conv",
            "name": layer.name,
            "in": int(layer.weight.shape[1] * layer.groups),
            "out": int(layer.weight.shape[0]),
            "kernel": _pair(layer.weight.shape[2:]),
            "stride": _pair(layer.stride),
            "padding": _pair(layer.padding),
            "dilation": _pair(layer.dilation),
            "groups": int(layer.groups),
            "bias": layer.bias is not None,
            "spiking": bool(layer.neuron.spiking),
        }
    if isinstance(layer, ir.BatchNorm):
        return {"type": "batchnorm", "name": layer.name, "features": int(layer.mean.shape[0]), "eps": float(layer.eps)}
    if isinstance(layer, ir.AvgPool):
        return {"type": "avgpool", "name": layer.name, "kernel": _pair(layer.kernel), "stride": _pair(layer.stride)}
    if isinstance(layer, ir.Dropout):
        return {"type": "dropout", "name": layer.name, "p": float(layer.p)}
    if isinstance(layer, ir.Flatten):
        return {"type": "flatten", "name": layer.name}
    raise UnsupportedLayerError(f"layer '{getattr(layer, 'name', '?')}': {type(layer).__name__} cannot be stored")


def network_data(layers: Sequence[ir.Layer]) -> list[dict[str, Any]]:
    """The checkpoint's ``"layers"`` of IR layers."""
    return [layer_data(layer) for layer in layers]


def check_layer_data(data: Any, where: str) -> None:
    """Raise CheckpointError unless ``data`` is a non-empty list of layer dicts with exactly their keys."""
    if not isinstance(data, list) or not data:
        raise CheckpointError(f"{where}: layers must be a non-empty list of layer dicts")
    for k, d in enumerate(data):
        if not isinstance(d, Mapping) or d.get("type") not in LAYER_KEYS:
            kind = d.get("type") if isinstance(d, Mapping) else type(d).__name__
            hint = f" ({HINTS[kind.lower()]})" if isinstance(kind, str) and kind.lower() in HINTS else ""
            raise CheckpointError(f"{where}: layer {k}: type {kind!r} is not one of {', '.join(LAYER_KEYS)}{hint}")
        spec = LAYER_KEYS[d["type"]]
        if set(d) != {"type", *spec}:
            raise CheckpointError(f"{where}: layer {k} ({d['type']}): keys {sorted(d)}, expected {sorted(spec)}")
        for key, typ in spec.items():
            value = d[key]
            if typ == _SIZE:
                ok = isinstance(value, list) and len(value) == 2 and all(_is_int(v) for v in value)
            elif typ is int:
                ok = _is_int(value)
            else:
                ok = isinstance(value, typ) and (typ is bool or not isinstance(value, bool))
            if not ok:
                raise CheckpointError(f"{where}: layer {k} ({d['type']}): '{key}' = {value!r} has the wrong type")
        if d["type"] == "batchnorm" and (k == 0 or data[k - 1]["type"] not in SYNAPTIC_TYPES):
            raise CheckpointError(f"{where}: layer {k} (batchnorm) must directly follow a dense or conv layer")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def module_indices(data: Sequence[Mapping[str, Any]]) -> list[int]:
    """Torch module index of each layer in ``build_model``'s order: synapse, [batchnorm], ReLU if spiking,
    then pooling / dropout / flatten (format 1's order, so state_dict keys read ``"3.weight"`` as they did)."""
    indices, i = [], 0
    for k, d in enumerate(data):
        indices.append(i)
        i += 1
        nxt = data[k + 1]["type"] if k + 1 < len(data) else None
        if d["type"] in SYNAPTIC_TYPES and d["spiking"] and nxt != "batchnorm":
            i += 1  # its ReLU
        elif d["type"] == "batchnorm" and k and data[k - 1].get("spiking"):
            i += 1  # the ReLU of the synapse before it
    return indices


def _arr(sd: Mapping[str, Any] | None, key: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    if sd is None:
        return np.zeros(shape, np.float32)
    if key not in sd:
        raise CheckpointError(f"{where}: state_dict lacks '{key}'")
    v = sd[key]
    return np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v, np.float64)


def layers_from_data(
    data: Sequence[Mapping[str, Any]],
    sd: Mapping[str, Any] | None,
    neurons: Sequence[ir.Neuron] | None = None,
    source: str = "<checkpoint>",
) -> list[ir.Layer]:
    """IR layers of a checkpoint's ``"layers"``, arrays from ``sd`` (None: zeros of the right shapes, for
    structure only).  ``neurons[k]`` goes on the k-th dense/conv layer; None: the ANN's (``ir.RELU`` where
    ``spiking``, else ``ir.READOUT``)."""
    check_layer_data(list(data), source)
    layers: list[ir.Layer] = []
    k = 0
    for i, d in zip(module_indices(data), data, strict=True):
        kind, name = d["type"], d["name"]
        if kind in SYNAPTIC_TYPES:
            neuron = neurons[k] if neurons is not None else (ir.RELU if d["spiking"] else ir.READOUT)
            k += 1
            b = _arr(sd, f"{i}.bias", (d["out"],), source) if d["bias"] else None
            if kind == "dense":
                layers.append(ir.Dense(name, _arr(sd, f"{i}.weight", (d["out"], d["in"]), source), b, neuron))
            else:
                if d["in"] % d["groups"]:
                    raise CheckpointError(f"{source}: layer '{name}': groups {d['groups']} do not divide in {d['in']}")
                shape = (d["out"], d["in"] // d["groups"], *d["kernel"])
                w = _arr(sd, f"{i}.weight", shape, source)
                layers.append(ir.Conv(name, w, b, neuron, d["stride"], d["padding"], d["dilation"], groups=d["groups"]))
        elif kind == "batchnorm":
            n = (d["features"],)
            layers.append(
                ir.BatchNorm(
                    name,
                    _arr(sd, f"{i}.running_mean", n, source),
                    np.ones(n) if sd is None else _arr(sd, f"{i}.running_var", n, source),
                    _arr(sd, f"{i}.weight", n, source),
                    _arr(sd, f"{i}.bias", n, source),
                    float(d["eps"]),
                )
            )
        elif kind == "avgpool":
            layers.append(ir.AvgPool(name, d["kernel"], d["stride"]))
        elif kind == "dropout":
            layers.append(ir.Dropout(name, d["p"]))
        else:
            layers.append(ir.Flatten(name))
    return layers


def ann_network(ckpt: Mapping[str, Any], weights: bool = True, source: str = "<checkpoint>") -> ir.Network:
    """A checkpoint's network in the ANN's vocabulary (``ir.RELU`` / ``ir.READOUT`` neurons, one step of direct
    input): what training builds its torch modules from.  ``weights=False``: zero arrays (structure only)."""
    layers = layers_from_data(ckpt["layers"], ckpt["state_dict"] if weights else None, None, source)
    return ir.Network(
        ir.Input(tuple(ckpt["input_shape"])), layers, timesteps=ir.ANN_TIMESTEPS, encoding=ir.ANN_ENCODING
    )


def is_sdnn(ckpt: Mapping[str, Any]) -> bool:
    """An SDNN checkpoint (``loihic convert --neuron sdnn``)."""
    return ckpt.get("kind") == "snn" and isinstance(ckpt.get("snn"), Mapping) and ckpt["snn"].get("neuron") == SDNN


def sdnn_network(
    ann: ir.Network,
    thresholds: Sequence[float | None],
    input_delta: float,
    act_max: Sequence[float] | None,
    timesteps: int,
) -> ir.Network:
    """A lowered ANN (ANN neurons) as the sigma-delta IR: hidden layers SigmaDelta, the last a Sigma read-out."""
    syn = [lay for lay in ann.layers if isinstance(lay, ir.SYNAPTIC)]
    act = list(act_max) if act_max is not None else [None] * len(syn)
    neurons = {}
    for k, lay in enumerate(syn):
        last = k == len(syn) - 1
        th = 0.0 if last else float(thresholds[k])
        neurons[lay.name] = ir.SigmaDelta(th, "sigma" if last else "sigma_delta", act[k])
    layers = [dataclasses.replace(lay, neuron=neurons[lay.name]) if lay.name in neurons else lay for lay in ann.layers]
    return ir.Network(
        ir.Input(ann.input.shape, delta=float(input_delta)), layers, timesteps=timesteps, encoding="direct", meta={}
    )


def network_from_checkpoint(ckpt: Mapping[str, Any], source: str = "<checkpoint>") -> ir.Network:
    """Build the IR of a converted SNN from a format-2 checkpoint (``training.checkpoint.load_checkpoint`` and
    ``validate_checkpoint`` migrate format 1).  ``source`` names the file in error messages."""
    if "layers" not in ckpt:
        raise CheckpointError(f"{source}: has no 'layers' (a format-1 dict: validate_checkpoint migrates it)")
    if ckpt.get("kind") != "snn" or "snn" not in ckpt:
        raise CheckpointError(
            f"{source}: is a '{ckpt.get('kind')}' checkpoint; compile needs a converted SNN "
            "(run 'loihic convert' first)"
        )
    snn, data, sd = ckpt["snn"], ckpt["layers"], ckpt["state_dict"]
    if is_sdnn(ckpt):
        net = sdnn_network(
            ann_network(ckpt, True, source), snn["thresholds"], snn["input_delta"], snn["act_max"], snn["timesteps"]
        )
        meta = {
            "source_sha256": snn.get("source_sha256"),
            "model": ckpt.get("model"),
            "dataset": ckpt.get("dataset"),
            "seed": ckpt.get("seed"),
            "conversion": {k: snn.get(k) for k in ("budget", "input_delta", "bias_unit", "seed", "calib_samples")},
        }
        return net.replace(meta=meta)
    meta_l4 = snn.get("l4")  # already applied to the weights (training.adjust.with_l4), or None
    thresholds = list(snn["thresholds"])
    leak = float(snn.get("leak", 1.0))
    output = str(snn.get("output", "integrator"))
    if output not in ("integrator", "spiking"):
        raise CheckpointError(f"{source}: snn output '{output}' is not 'integrator' or 'spiking'")
    n_syn = sum(d.get("type") in SYNAPTIC_TYPES for d in data)
    if len(thresholds) != n_syn:
        raise CheckpointError(f"{source}: {len(thresholds)} thresholds for {n_syn} synaptic layers")
    neurons = [
        ir.Neuron(threshold=1.0, current_decay=1.0, voltage_decay=0.0, spiking=False)
        if k == n_syn - 1 and output == "integrator"
        else ir.Neuron(
            threshold=float(th),
            current_decay=1.0,
            voltage_decay=1.0 - leak,
            spiking=True,
            reset=str(snn.get("reset", "hard")),
        )
        for k, th in enumerate(thresholds)
    ]
    layers = tuple(layers_from_data(data, sd, neurons, source))
    meta = {
        "source_sha256": ckpt.get("sha256") or snn.get("source_sha256"),
        "model": ckpt.get("model"),
        "dataset": ckpt.get("dataset"),
        "seed": ckpt.get("seed"),
        "conversion": {key: snn.get(key) for key in ("norm", "reset", "leak", "seed", "calib_samples")},
        "first_layer_mean_potential": snn.get("first_layer_mean_potential"),
        "l4_in_checkpoint": meta_l4,
        "threshold_scale": snn.get("threshold_scale", 1.0),
    }
    return ir.Network(
        ir.Input(tuple(ckpt["input_shape"])),
        layers,
        timesteps=int(snn["timesteps"]),
        encoding=str(snn.get("encoding", "poisson")),
        meta=meta,
    )
