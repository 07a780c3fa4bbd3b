"""Converted-SNN checkpoint (``loihic convert`` output) -> IR :class:`~loihic.compiler.ir.Network`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from loihic.compiler import ir
from loihic.compiler.errors import CheckpointError, UnsupportedLayerError

_HINTS = {
    "maxpool": "max pooling has no exact spiking equivalent on Loihi; train with average pooling",
    "lstm": "recurrent cells are not supported by the netx CUBA path",
    "gru": "recurrent cells are not supported by the netx CUBA path",
    "sigmoid": "only ReLU maps onto spiking rate codes",
    "tanh": "only ReLU maps onto spiking rate codes",
}


def _arr(sd: Mapping[str, Any], key: str, where: str, required: bool = True) -> np.ndarray | None:
    if key not in sd:
        if required:
            raise CheckpointError(f"{where}: state_dict lacks '{key}'")
        return None
    return np.asarray(sd[key].detach().cpu().numpy() if hasattr(sd[key], "detach") else sd[key], np.float64)


SYNAPTIC_KINDS = ("linear", "conv")


def layers_from_arch(
    arch: Sequence[Mapping[str, Any]], sd: Mapping[str, Any], neurons: Sequence[ir.Neuron], source: str
) -> list[tuple[int, ir.Layer]]:
    """``(arch index, IR layer)`` for each entry of a checkpoint's arch (``training/models.py``) that has an IR
    form, with weights from ``sd`` and ``neurons[k]`` on the k-th linear/conv layer.  relu has none (it is
    the synaptic layer's neuron), nor has dropout (the identity at inference).  The one reading of an arch:
    the compiler's (:func:`network_from_checkpoint`) and training's shape inference
    (``training.models.output_shapes``) both go through it.  ``source`` names the file in error messages.
    """
    layers: list[tuple[int, ir.Layer]] = []
    k = 0
    for i, spec in enumerate(arch):
        kind = str(spec.get("type"))
        name = f"{i}.{kind}"
        if kind in SYNAPTIC_KINDS:
            w, b = _arr(sd, f"{i}.weight", source), _arr(sd, f"{i}.bias", source, required=False)
            if kind == "linear":
                layers.append((i, ir.Dense(name, w, b, neurons[k])))
            else:
                conv = ir.Conv(
                    name,
                    w,
                    b,
                    neurons[k],
                    stride=spec.get("stride", 1),
                    padding=spec.get("padding", 0),
                    dilation=spec.get("dilation", 1),
                    groups=spec.get("groups", 1),
                )
                layers.append((i, conv))
            k += 1
        elif kind == "avgpool":
            layers.append((i, ir.AvgPool(name, spec["kernel"], spec.get("stride", spec["kernel"]))))
        elif kind == "flatten":
            layers.append((i, ir.Flatten(name)))
        elif kind == "batchnorm":
            bn = ir.BatchNorm(
                name,
                _arr(sd, f"{i}.running_mean", source),
                _arr(sd, f"{i}.running_var", source),
                _arr(sd, f"{i}.weight", source),
                _arr(sd, f"{i}.bias", source),
                float(spec.get("eps", 1e-5)),
            )
            layers.append((i, bn))
        elif kind in ("relu", "dropout"):
            continue  # ReLU becomes the spiking non-linearity; dropout is the identity at inference
        else:
            hint = _HINTS.get(kind.lower(), "supported: linear, conv, relu, avgpool, flatten, dropout, batchnorm")
            raise UnsupportedLayerError(f"{source}: layer {i} ({kind}) cannot be compiled for Loihi: {hint}")
    return layers


def network_from_checkpoint(ckpt: dict[str, Any], source: str = "<checkpoint>") -> ir.Network:
    """Build the IR of a converted SNN.  ``source`` names the file in error messages."""
    if ckpt.get("kind") != "snn" or "snn" not in ckpt:
        raise CheckpointError(
            f"{source}: is a '{ckpt.get('kind')}' checkpoint; compile needs a converted SNN "
            "(run 'loihic convert' first)"
        )
    snn, arch, sd = ckpt["snn"], ckpt["arch"], ckpt["state_dict"]
    if snn.get("l4") is not None:
        meta_l4 = snn["l4"]  # already applied to the weights (training.adjust.with_l4)
    else:
        meta_l4 = None
    thresholds = list(snn["thresholds"])
    leak = float(snn.get("leak", 1.0))
    output = str(snn.get("output", "integrator"))
    if output not in ("integrator", "spiking"):
        raise CheckpointError(f"{source}: snn output '{output}' is not 'integrator' or 'spiking'")
    synaptic_idx = [i for i, spec in enumerate(arch) if spec.get("type") in SYNAPTIC_KINDS]
    if len(thresholds) != len(synaptic_idx):
        raise CheckpointError(f"{source}: {len(thresholds)} thresholds for {len(synaptic_idx)} synaptic layers")
    neurons = [
        ir.Neuron(threshold=1.0, current_decay=1.0, voltage_decay=0.0, spiking=False)
        if k == len(synaptic_idx) - 1 and output == "integrator"
        else ir.Neuron(
            threshold=float(th),
            current_decay=1.0,
            voltage_decay=1.0 - leak,
            spiking=True,
            reset=str(snn.get("reset", "hard")),
        )
        for k, th in enumerate(thresholds)
    ]
    layers = tuple(layer for _, layer in layers_from_arch(arch, sd, neurons, source))
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
