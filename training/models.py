"""Architectures as JSON-able lists of layer dicts ("arch"), their validation, and the torch builder.

An arch is a list of dicts, one per module of a ``torch.nn.Sequential`` (module ``i`` is ``arch[i]``, so
state_dict keys read ``"3.weight"``).  The exact keys of each layer type are in :data:`LAYER_KEYS`::

    {"type": "flatten"}
    {"type": "linear", "in": int, "out": int, "bias": bool}
    {"type": "conv", "in": int, "out": int, "kernel": int, "stride": int, "padding": int,
     "groups": int, "bias": bool, "dilation": int}         # dilation optional (default 1)
    {"type": "relu"}
    {"type": "avgpool", "kernel": int, "stride": int}
    {"type": "dropout", "p": float}
    {"type": "batchnorm", "features": int}   # BatchNorm1d after linear, BatchNorm2d after conv

Sizes (kernel, stride, padding, dilation) are an int or an ``[H, W]`` pair of ints.  Networks imported from
other front ends (``compiler/load/torch_export.py``) are stored in this same format by
:func:`arch_from_network`, so the float SNN, conversion, STDB and the compiler read one description.

Conversion to a spiking network (``check_convertible``) needs one fixed shape: every synaptic layer
(linear/conv) but the last is followed, optionally after a batchnorm, by a ReLU that becomes the spiking
neuron; the last synaptic layer is the non-spiking integrator readout (Datta et al. eqs. 4-5), so it has no
ReLU.  Datta et al. sec. V.C trains without bias and BatchNorm, with average pooling; bias and batchnorm are
accepted here because the compiler folds batchnorm and deploys bias, but ``make_arch`` uses neither by
default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from loihic.compiler import ir
from loihic.compiler.errors import UnsupportedLayerError
from loihic.compiler.load.checkpoint import layers_from_arch

LAYER_KEYS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "flatten": {},
    "linear": {"in": int, "out": int, "bias": bool},
    "conv": {"in": int, "out": int, "kernel": int, "stride": int, "padding": int, "groups": int, "bias": bool},
    "relu": {},
    "avgpool": {"kernel": int, "stride": int},
    "dropout": {"p": (float, int)},
    "batchnorm": {"features": int},
}
OPTIONAL_KEYS: dict[str, dict[str, type | tuple[type, ...]]] = {"conv": {"dilation": int}, "batchnorm": {"eps": float}}
_SIZE_KEYS = ("kernel", "stride", "padding", "dilation")  # int or [H, W]
SYNAPTIC_TYPES = ("linear", "conv")
PASSTHROUGH_TYPES = ("avgpool", "dropout", "flatten")  # act on spikes between neuron and next synapse
MODELS = ("mlp", "lenet5", "vgg5", "vgg9")

# VGG feature stacks (3x3 convs, padding 1; "A" = 2x2 average pooling), after the VGG5/VGG9 of
# Datta et al. Fig. 9 as configured in Rathi et al.'s hybrid-conversion code.
_VGG_CFG: dict[str, list[int | str]] = {
    "vgg5": [64, "A", 128, 128, "A"],
    "vgg9": [64, "A", 128, 256, "A", 256, 512, "A", 512, "A", 512],
}


def _where(i: int, layer: Mapping[str, Any]) -> str:
    return f"arch layer {i} ({layer.get('type', '?') if isinstance(layer, Mapping) else '?'})"


def validate_arch(arch: Sequence[Mapping[str, Any]]) -> None:
    """Check that every layer dict has a known type, exactly its keys and values of the right type/range."""
    if not isinstance(arch, Sequence) or isinstance(arch, str) or not arch:
        raise UnsupportedLayerError(f"arch must be a non-empty list of layer dicts, got {type(arch).__name__}")
    for i, layer in enumerate(arch):
        if not isinstance(layer, Mapping):
            raise UnsupportedLayerError(f"arch layer {i}: expected a dict, got {type(layer).__name__}")
        kind = layer.get("type")
        if kind not in LAYER_KEYS:
            raise UnsupportedLayerError(
                f"arch layer {i}: unsupported type {kind!r}; expected one of {', '.join(LAYER_KEYS)}"
            )
        spec = LAYER_KEYS[kind]
        optional = OPTIONAL_KEYS.get(kind, {})
        keys = set(layer) - {"type"}
        if not set(spec) <= keys <= set(spec) | set(optional):
            raise UnsupportedLayerError(f"{_where(i, layer)}: keys {sorted(keys)}, expected {sorted(spec)}")
        for key, typ in {**spec, **optional}.items():
            if key not in layer:
                continue
            value = layer[key]
            if key in _SIZE_KEYS:
                ok = _is_size(value)
            else:
                ok = isinstance(value, typ) and (typ is bool or not isinstance(value, bool))
            if not ok:
                raise UnsupportedLayerError(
                    f"{_where(i, layer)}: '{key}' = {value!r} is not {getattr(typ, '__name__', 'a number')}"
                    + (" or an [H, W] pair" if key in _SIZE_KEYS else "")
                )
            if key in ("in", "out", "kernel", "stride", "groups", "features", "dilation") and min(_hw(value)) < 1:
                raise UnsupportedLayerError(f"{_where(i, layer)}: '{key}' = {value} must be >= 1")
        if kind == "conv":
            if min(_hw(layer["padding"])) < 0:
                raise UnsupportedLayerError(f"{_where(i, layer)}: padding {layer['padding']} must be >= 0")
            if layer["in"] % layer["groups"] or layer["out"] % layer["groups"]:
                raise UnsupportedLayerError(
                    f"{_where(i, layer)}: groups {layer['groups']} must divide in {layer['in']} and out {layer['out']}"
                )
        if kind == "dropout" and not 0.0 <= layer["p"] < 1.0:
            raise UnsupportedLayerError(f"{_where(i, layer)}: p = {layer['p']} must be in [0, 1)")
        if kind == "batchnorm" and (i == 0 or arch[i - 1].get("type") not in SYNAPTIC_TYPES):
            raise UnsupportedLayerError(f"{_where(i, layer)}: batchnorm must directly follow a linear or conv layer")


def check_convertible(arch: Sequence[Mapping[str, Any]]) -> None:
    """Check the shape a converted SNN needs (see the module docstring); raises UnsupportedLayerError.

    Rules: each linear/conv except the last is followed (optionally after batchnorm) by a relu; the last
    is not; relu only right after linear/conv/batchnorm; avgpool/dropout/flatten only after a relu, after
    another of them, or before the first synaptic layer (acting on the input); batchnorm only directly
    after linear/conv.
    """
    validate_arch(arch)
    types = [layer["type"] for layer in arch]
    synaptic = [i for i, t in enumerate(types) if t in SYNAPTIC_TYPES]
    if not synaptic:
        raise UnsupportedLayerError("arch has no linear or conv layer")
    last = synaptic[-1]
    for i, t in enumerate(types):
        prev = types[i - 1] if i else "input"
        where = f"arch layer {i} ({t})"
        if t in SYNAPTIC_TYPES:
            nxt = i + 1 + (i + 1 < len(types) and types[i + 1] == "batchnorm")
            follows_relu = nxt < len(types) and types[nxt] == "relu"
            if i != last and not follows_relu:
                raise UnsupportedLayerError(
                    f"{where}: a hidden {t} layer must be followed by relu "
                    f"(optionally after batchnorm); it becomes the spiking neuron"
                )
            if i == last and follows_relu:
                raise UnsupportedLayerError(
                    f"{where}: the last synaptic layer is the non-spiking readout and must not be followed by relu"
                )
        elif t == "relu" and prev not in (*SYNAPTIC_TYPES, "batchnorm"):
            raise UnsupportedLayerError(f"{where}: relu must directly follow linear, conv or batchnorm, not {prev}")
        elif t in PASSTHROUGH_TYPES and i > synaptic[0] and prev not in ("relu", *PASSTHROUGH_TYPES):
            raise UnsupportedLayerError(f"{where}: {t} must follow a relu (spikes), not {prev}")
    if types[last + 1 :] not in ([], ["batchnorm"]):
        raise UnsupportedLayerError(
            f"arch layer {last + 1} ({types[last + 1]}): nothing but batchnorm may "
            f"follow the last synaptic layer (the readout)"
        )


def _is_size(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    return isinstance(value, int) and not isinstance(value, bool)


def _hw(value: int | Sequence[int]) -> tuple[int, int]:
    """An arch size (int or [H, W]) as an (H, W) pair."""
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


_SHAPE_NEURON = ir.Neuron(threshold=1.0, spiking=False)  # any neuron: shapes do not depend on it


def output_shapes(arch: Sequence[Mapping[str, Any]], input_shape: Sequence[int]) -> list[tuple[int, ...]]:
    """Output shape (without batch) of every layer; raises UnsupportedLayerError on mismatches.

    Inferred by the compiler's one shape inference (``compiler.ir.layer_shapes``) over the arch's IR
    layers (``compiler.load.checkpoint.layers_from_arch``, zero weights of the arch's shapes); relu and
    dropout, which have no IR form, keep their input's shape.
    """
    validate_arch(arch)
    zeros = {key: np.broadcast_to(0.0, shape) for key, shape in expected_state_shapes(arch).items()}
    n_synaptic = sum(layer["type"] in SYNAPTIC_TYPES for layer in arch)
    indexed = layers_from_arch(arch, zeros, [_SHAPE_NEURON] * n_synaptic, "arch")
    inp = ir.Input(tuple(int(s) for s in input_shape))
    inferred = dict(zip((i for i, _ in indexed), ir.layer_shapes(inp, [layer for _, layer in indexed]), strict=True))
    shape, shapes = inp.shape, []
    for i in range(len(arch)):
        shape = inferred.get(i, shape)
        shapes.append(shape)
    return shapes


def build_model(arch: Sequence[Mapping[str, Any]]) -> nn.Sequential:
    """``nn.Sequential`` whose module ``i`` implements ``arch[i]`` (validated first)."""
    validate_arch(arch)
    modules: list[nn.Module] = []
    for i, layer in enumerate(arch):
        kind = layer["type"]
        if kind == "flatten":
            modules.append(nn.Flatten())
        elif kind == "linear":
            modules.append(nn.Linear(layer["in"], layer["out"], bias=layer["bias"]))
        elif kind == "conv":
            modules.append(
                nn.Conv2d(
                    layer["in"],
                    layer["out"],
                    _hw(layer["kernel"]),
                    stride=_hw(layer["stride"]),
                    padding=_hw(layer["padding"]),
                    dilation=_hw(layer.get("dilation", 1)),
                    groups=layer["groups"],
                    bias=layer["bias"],
                )
            )
        elif kind == "relu":
            modules.append(nn.ReLU())
        elif kind == "avgpool":
            modules.append(nn.AvgPool2d(_hw(layer["kernel"]), stride=_hw(layer["stride"])))
        elif kind == "dropout":
            modules.append(nn.Dropout(float(layer["p"])))
        elif kind == "batchnorm":
            bn = nn.BatchNorm1d if arch[i - 1]["type"] == "linear" else nn.BatchNorm2d
            modules.append(bn(layer["features"], eps=float(layer.get("eps", 1e-5))))
    return nn.Sequential(*modules)


def expected_state_shapes(arch: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int, ...]]:
    """state_dict key -> shape that ``build_model(arch)`` has (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = build_model(arch)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def model_from_checkpoint(ckpt: Mapping[str, Any]) -> nn.Sequential:
    """The ANN of a (validated) checkpoint, weights loaded, in eval mode, on the CPU."""
    model = build_model(ckpt["arch"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def _lin(n_in: int, n_out: int, bias: bool) -> dict[str, Any]:
    return {"type": "linear", "in": n_in, "out": n_out, "bias": bias}


def _conv(c_in: int, c_out: int, kernel: int, padding: int, bias: bool) -> dict[str, Any]:
    return {
        "type": "conv",
        "in": c_in,
        "out": c_out,
        "kernel": kernel,
        "stride": 1,
        "padding": padding,
        "groups": 1,
        "bias": bias,
    }


_RELU: dict[str, Any] = {"type": "relu"}
_POOL2: dict[str, Any] = {"type": "avgpool", "kernel": 2, "stride": 2}
_FLAT: dict[str, Any] = {"type": "flatten"}


def make_arch(
    model: str, input_shape: Sequence[int], num_classes: int, bias: bool = False, hidden: int = 128
) -> list[dict[str, Any]]:
    """Named architectures (no bias by default: Datta et al. sec. V.C).

    - ``mlp``: flatten, linear -> ``hidden``, relu, dropout 0.1, linear -> classes.
    - ``lenet5`` (Datta et al. Fig. 6 with ReLU and average pooling): conv 6 k5 pad 2, relu, avgpool 2,
      conv 16 k5 pad 0, relu, avgpool 2, flatten, linear 120, relu, linear 84, relu, linear classes.  The
      second conv is k5 pad 0 only when the map entering it is at least 6x6 (28x28 input: 14x14 -> 10x10
      -> 5x5); on smaller inputs (8x8 digits: 4x4) it is k3 pad 1 so that shapes stay valid (4x4 -> 4x4
      -> 2x2).
    - ``vgg5`` / ``vgg9``: 3x3 conv stacks (pad 1) with 2x2 average pooling, then flatten, linear ->
      ``hidden``, relu, dropout 0.2, linear -> ``hidden``, relu, dropout 0.2, linear -> classes.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 and model != "mlp":
        raise UnsupportedLayerError(f"model '{model}' needs a (C, H, W) input shape, got {shape}")
    if model == "mlp":
        arch = [
            _FLAT,
            _lin(math.prod(shape), hidden, bias),
            _RELU,
            {"type": "dropout", "p": 0.1},
            _lin(hidden, num_classes, bias),
        ]
    elif model == "lenet5":
        c, h, _ = shape
        k2, p2 = (5, 0) if h // 2 >= 6 else (3, 1)
        arch = [_conv(c, 6, 5, 2, bias), _RELU, _POOL2, _conv(6, 16, k2, p2, bias), _RELU, _POOL2, _FLAT]
        flat = output_shapes(arch, shape)[-1][0]
        arch += [_lin(flat, 120, bias), _RELU, _lin(120, 84, bias), _RELU, _lin(84, num_classes, bias)]
    elif model in _VGG_CFG:
        arch, channels = [], shape[0]
        for item in _VGG_CFG[model]:
            if item == "A":
                arch.append(_POOL2)
            else:
                arch += [_conv(channels, int(item), 3, 1, bias), _RELU]
                channels = int(item)
        arch.append(_FLAT)
        flat = output_shapes(arch, shape)[-1][0]
        drop = {"type": "dropout", "p": 0.2}
        arch += [
            _lin(flat, hidden, bias),
            _RELU,
            drop,
            _lin(hidden, hidden, bias),
            _RELU,
            drop,
            _lin(hidden, num_classes, bias),
        ]
    else:
        raise UnsupportedLayerError(f"unknown model '{model}'; expected one of {', '.join(MODELS)}")
    arch = [dict(layer) for layer in arch]  # independent dicts: callers may edit one layer
    output_shapes(arch, shape)
    check_convertible(arch)
    return arch


def _size(pair: Sequence[int]) -> int | list[int]:
    return int(pair[0]) if pair[0] == pair[1] else [int(pair[0]), int(pair[1])]


def arch_from_network(net: Any) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    """``(arch, state_dict)`` of a float IR network (``compiler.ir.Network``) from any front end.

    A synaptic layer whose neuron spikes is followed by a ReLU (the ANN view of the spiking neuron); the
    last synaptic layer is the read-out.  Weights are copied exactly as float32.
    """
    arch: list[dict[str, Any]] = []
    state: dict[str, torch.Tensor] = {}

    def put(key: str, value: Any) -> None:
        state[f"{len(arch)}.{key}"] = torch.as_tensor(np.asarray(value, dtype=np.float32))

    layers = list(net.layers)
    for i, layer in enumerate(layers):
        if isinstance(layer, ir.Dense):
            put("weight", layer.weight)
            if layer.bias is not None:
                put("bias", layer.bias)
            arch.append(_lin(layer.weight.shape[1], layer.weight.shape[0], layer.bias is not None))
        elif isinstance(layer, ir.Conv):
            put("weight", layer.weight)
            if layer.bias is not None:
                put("bias", layer.bias)
            spec = {
                "type": "conv",
                "in": int(layer.weight.shape[1] * layer.groups),
                "out": int(layer.weight.shape[0]),
                "kernel": _size(layer.weight.shape[2:]),
                "stride": _size(layer.stride),
                "padding": _size(layer.padding),
                "groups": int(layer.groups),
                "bias": layer.bias is not None,
            }
            if layer.dilation != (1, 1):
                spec["dilation"] = _size(layer.dilation)
            arch.append(spec)
        elif isinstance(layer, ir.BatchNorm):
            put("weight", layer.gamma)
            put("bias", layer.beta)
            put("running_mean", layer.mean)
            put("running_var", layer.var)
            state[f"{len(arch)}.num_batches_tracked"] = torch.tensor(0)
            spec = {"type": "batchnorm", "features": int(layer.mean.shape[0])}
            if layer.eps != 1e-5:
                spec["eps"] = float(layer.eps)
            arch.append(spec)
        elif isinstance(layer, ir.AvgPool):
            arch.append({"type": "avgpool", "kernel": _size(layer.kernel), "stride": _size(layer.stride)})
        elif isinstance(layer, ir.Flatten):
            arch.append(dict(_FLAT))
        else:
            raise UnsupportedLayerError(f"layer '{layer.name}': {type(layer).__name__} has no arch form")
        synapse = layers[i - 1] if isinstance(layer, ir.BatchNorm) and i else layer
        bn_next = i + 1 < len(layers) and isinstance(layers[i + 1], ir.BatchNorm)
        if isinstance(synapse, ir.SYNAPTIC) and synapse.neuron.spiking and not (layer is synapse and bn_next):
            arch.append(dict(_RELU))
    return arch, state
