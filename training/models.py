"""The torch modules of an IR network (``compiler/ir.py``), and the named architectures as IR networks.

Training speaks the compiler's vocabulary: an ANN is an ``ir.Network`` whose hidden synaptic layers carry
``ir.RELU`` (a ReLU is a spiking neuron of unit threshold) and whose last one carries ``ir.READOUT``, one step
of direct input (``ir.ANN_TIMESTEPS``, ``ir.ANN_ENCODING``).  :func:`build_model` makes the
``torch.nn.Sequential`` of such a network, module by module in format 1's order: synapse, [batchnorm], ReLU
if the neuron spikes, then pooling / dropout / flatten, so state_dict keys read ``"3.weight"`` as they always
did (``compiler.load.checkpoint.module_indices``).  Checkpoints store the network as
``compiler.load.checkpoint.network_data`` and rebuild it with ``ann_network``.

Conversion to a spiking network (:func:`check_convertible`) needs one fixed shape: every synaptic layer but
the last spikes (its ReLU becomes the spiking neuron); the last is the non-spiking integrator readout (Datta et
al. eqs. 4-5), followed by nothing but its batchnorm.  Datta et al. sec. V.C trains without bias and
BatchNorm, with average pooling; bias and batchnorm are accepted because the compiler folds batchnorm and
deploys bias, but :func:`make_network` uses neither by default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from loihic.compiler import ir
from loihic.compiler.errors import UnsupportedLayerError
from loihic.compiler.load.checkpoint import ann_network, module_indices, network_data

MODELS = ("mlp", "lenet5", "vgg5", "vgg9")

# VGG feature stacks (3x3 convs, padding 1; "A" = 2x2 average pooling), after the VGG5/VGG9 of
# Datta et al. Fig. 9 as configured in Rathi et al.'s hybrid-conversion code.
_VGG_CFG: dict[str, list[int | str]] = {
    "vgg5": [64, "A", 128, 128, "A"],
    "vgg9": [64, "A", 128, 256, "A", 256, 512, "A", 512, "A", 512],
}
# Layer names are "<module index>.<kind>", the names format 1 gave them, so reports read as before.
_NAME_KIND = {ir.Dense: "linear", ir.Conv: "conv", ir.BatchNorm: "batchnorm", ir.AvgPool: "avgpool"}
_NAME_KIND |= {ir.Dropout: "dropout", ir.Flatten: "flatten"}


def build_model(net: ir.Network) -> nn.Sequential:
    """The ``nn.Sequential`` of ``net``'s layers (module docstring), freshly initialised by torch (the IR's
    arrays are not copied: :func:`model_from_checkpoint` loads a checkpoint's)."""
    modules: list[nn.Module] = []
    layers = net.layers
    for k, layer in enumerate(layers):
        if isinstance(layer, ir.Dense) and (layer.weight_rec is not None or layer.delay is not None):
            what = "recurrent weights (weight_rec)" if layer.weight_rec is not None else "synaptic delays"
            raise UnsupportedLayerError(
                f"layer '{layer.name}': {what} are not supported by loihic's training; compile such a network "
                "from NIR or netx instead"
            )
        if isinstance(layer, ir.Dense):
            out_f, in_f = layer.weight.shape
            modules.append(nn.Linear(in_f, out_f, bias=layer.bias is not None))
        elif isinstance(layer, ir.Conv):
            out_c, in_c = layer.weight.shape[:2]
            conv = nn.Conv2d(
                in_c * layer.groups,
                out_c,
                tuple(layer.weight.shape[2:]),
                stride=layer.stride,
                padding=layer.padding,
                dilation=layer.dilation,
                groups=layer.groups,
                bias=layer.bias is not None,
            )
            modules.append(conv)
        elif isinstance(layer, ir.BatchNorm):
            prev = layers[k - 1] if k else None
            if not isinstance(prev, ir.SYNAPTIC):
                raise UnsupportedLayerError(f"layer '{layer.name}': batchnorm must directly follow a dense or conv")
            bn = nn.BatchNorm1d if isinstance(prev, ir.Dense) else nn.BatchNorm2d
            modules.append(bn(layer.mean.shape[0], eps=float(layer.eps)))
        elif isinstance(layer, ir.AvgPool):
            modules.append(nn.AvgPool2d(layer.kernel, stride=layer.stride))
        elif isinstance(layer, ir.Dropout):
            modules.append(nn.Dropout(layer.p))
        elif isinstance(layer, ir.Flatten):
            modules.append(nn.Flatten())
        else:
            raise UnsupportedLayerError(f"layer '{layer.name}': {type(layer).__name__} has no torch module")
        synapse = layers[k - 1] if isinstance(layer, ir.BatchNorm) else layer
        bn_next = k + 1 < len(layers) and isinstance(layers[k + 1], ir.BatchNorm)
        if isinstance(synapse, ir.SYNAPTIC) and synapse.neuron.spiking and not (layer is synapse and bn_next):
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)


def model_from_checkpoint(ckpt: Mapping[str, Any]) -> nn.Sequential:
    """The ANN of a (validated, format-2) checkpoint, weights loaded, in eval mode, on the CPU."""
    model = build_model(ann_network(ckpt, weights=False))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def state_dict_from_network(net: ir.Network) -> dict[str, torch.Tensor]:
    """The state_dict ``build_model(net)`` loads to hold ``net``'s arrays (float32, copied exactly)."""
    state: dict[str, torch.Tensor] = {}
    for i, layer in zip(module_indices(network_data(net.layers)), net.layers, strict=True):
        arrays: dict[str, Any] = {}
        if isinstance(layer, ir.SYNAPTIC):
            arrays = {"weight": layer.weight, "bias": layer.bias}
        elif isinstance(layer, ir.BatchNorm):
            arrays = {"weight": layer.gamma, "bias": layer.beta, "running_mean": layer.mean, "running_var": layer.var}
        for key, value in arrays.items():
            if value is not None:
                state[f"{i}.{key}"] = torch.as_tensor(np.asarray(value, dtype=np.float32))
        if isinstance(layer, ir.BatchNorm):
            state[f"{i}.num_batches_tracked"] = torch.tensor(0)
    return state


def check_convertible(net: ir.Network) -> None:
    """Check the shape a converted SNN needs (module docstring); raises UnsupportedLayerError."""
    layers = net.layers
    synaptic = [k for k, layer in enumerate(layers) if isinstance(layer, ir.SYNAPTIC)]
    for k in synaptic[:-1]:
        if not layers[k].neuron.spiking:
            raise UnsupportedLayerError(
                f"layer '{layers[k].name}': a hidden synaptic layer must spike (be followed by relu, optionally "
                "after batchnorm); it becomes the spiking neuron"
            )
    last = layers[synaptic[-1]]
    if last.neuron.spiking:
        raise UnsupportedLayerError(
            f"layer '{last.name}': the last synaptic layer is the non-spiking readout and must not be followed by relu"
        )
    tail = layers[synaptic[-1] + 1 :]
    if [type(layer) for layer in tail] not in ([], [ir.BatchNorm]):
        raise UnsupportedLayerError(
            f"layer '{tail[0].name}': nothing but batchnorm may follow the last synaptic layer (the readout)"
        )


def sequential(input_shape: Sequence[int], specs: Sequence[Any], bias: bool = False) -> ir.Network:
    """An ANN (weights zero: a template for :func:`build_model`) from a compact layer list, in order:
    ``("linear", out)``, ``("conv", out, kernel, padding)`` (stride 1), ``"relu"`` (the neuron of the synaptic
    layer before), ``("avgpool", k)`` (stride k), ``("dropout", p)``, ``"flatten"``.  Input sizes follow from
    the shapes; names are ``"<module index>.<kind>"``."""
    inp = ir.Input(tuple(int(s) for s in input_shape))
    shape, layers = inp.shape, []
    for n, spec in enumerate(specs):
        kind, *args = (spec,) if isinstance(spec, str) else spec
        if kind == "relu":
            layers[-1] = dataclasses.replace(layers[-1], neuron=ir.RELU)
            continue
        if kind == "linear":
            b = np.zeros(args[0], np.float32) if bias else None
            layer = ir.Dense(f"l{n}", np.zeros((args[0], shape[0]), np.float32), b, ir.READOUT)
        elif kind == "conv":
            (out, kernel, pad), b = args, (np.zeros(args[0], np.float32) if bias else None)
            layer = ir.Conv(f"l{n}", np.zeros((out, shape[0], kernel, kernel), np.float32), b, ir.READOUT, padding=pad)
        elif kind == "avgpool":
            layer = ir.AvgPool(f"l{n}", args[0], args[0])
        elif kind == "dropout":
            layer = ir.Dropout(f"l{n}", args[0])
        else:
            layer = ir.Flatten(f"l{n}")
        shape = ir.layer_shapes(ir.Input(shape), [layer])[-1]
        layers.append(layer)
    return with_module_names(ir.Network(inp, layers, timesteps=ir.ANN_TIMESTEPS, encoding=ir.ANN_ENCODING, meta={}))


def with_module_names(net: ir.Network) -> ir.Network:
    """``net`` with its layers named ``"<torch module index>.<kind>"`` (``"3.linear"``): the names format 1 gave
    every network, which the compiled netx metadata records."""
    pairs = zip(module_indices(network_data(net.layers)), net.layers, strict=True)
    return net.replace(layers=[dataclasses.replace(lay, name=f"{i}.{_NAME_KIND[type(lay)]}") for i, lay in pairs])


def make_network(
    model: str, input_shape: Sequence[int], num_classes: int, bias: bool = False, hidden: int = 128
) -> ir.Network:
    """Named architectures as ANN IR networks (weights zero; no bias by default: Datta et al. sec. V.C).

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
    specs: list[Any]
    if model == "mlp":
        specs = ["flatten", ("linear", hidden), "relu", ("dropout", 0.1), ("linear", num_classes)]
    elif model == "lenet5":
        k2, p2 = (5, 0) if shape[1] // 2 >= 6 else (3, 1)
        specs = [("conv", 6, 5, 2), "relu", ("avgpool", 2), ("conv", 16, k2, p2), "relu", ("avgpool", 2)]
        specs += ["flatten", ("linear", 120), "relu", ("linear", 84), "relu", ("linear", num_classes)]
    elif model in _VGG_CFG:
        specs = []
        for item in _VGG_CFG[model]:
            specs += [("avgpool", 2)] if item == "A" else [("conv", int(item), 3, 1), "relu"]
        specs += ["flatten", ("linear", hidden), "relu", ("dropout", 0.2)]
        specs += [("linear", hidden), "relu", ("dropout", 0.2), ("linear", num_classes)]
    else:
        raise UnsupportedLayerError(f"unknown model '{model}'; expected one of {', '.join(MODELS)}")
    net = sequential(shape, specs, bias)
    check_convertible(net)
    return net
