"""Format-1 checkpoints: the network as an ``arch`` list of layer dicts, migrated to format 2 (the IR's layers).

A format-1 arch has one dict per module of a ``torch.nn.Sequential`` (module ``i`` is ``arch[i]``)::

    {"type": "flatten"}
    {"type": "linear", "in": int, "out": int, "bias": bool}
    {"type": "conv", "in": int, "out": int, "kernel": int, "stride": int, "padding": int,
     "groups": int, "bias": bool, "dilation": int}         # dilation optional (default 1)
    {"type": "relu"}
    {"type": "avgpool", "kernel": int, "stride": int}
    {"type": "dropout", "p": float}
    {"type": "batchnorm", "features": int}   # eps optional; BatchNorm1d after linear, BatchNorm2d after conv

Sizes are an int or an ``[H, W]`` pair.  :func:`upgrade_v1` is the one migration: a relu becomes the spiking
neuron of the linear/conv before it (after its batchnorm), every other entry one IR layer named ``"<i>.<type>"``
(the names format 1's compiler gave them), and the state_dict is kept as it is: format 2's module order is
format 1's, which the migration checks.  Every format-1 checkpoint loihic wrote migrates; an arch whose relu
is not right after a linear, conv or batchnorm has no IR form and is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loihic.compiler.errors import CheckpointError, UnsupportedLayerError
from loihic.compiler.load.checkpoint import HINTS as _HINTS
from loihic.compiler.load.checkpoint import module_indices

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
                + (f" ({_HINTS[str(kind).lower()]})" if str(kind).lower() in _HINTS else "")
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


def _is_size(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    return isinstance(value, int) and not isinstance(value, bool)


def _hw(value: int | Sequence[int]) -> tuple[int, int]:
    """An arch size (int or [H, W]) as an (H, W) pair."""
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _layer(i: int, spec: Mapping[str, Any]) -> dict[str, Any]:
    kind = spec["type"]
    name = f"{i}.{kind}"
    if kind == "linear":
        return {
            "type": "dense",
            "name": name,
            "in": spec["in"],
            "out": spec["out"],
            "bias": spec["bias"],
            "spiking": False,
        }
    if kind == "conv":
        return {
            "type": "conv",
            "name": name,
            "in": spec["in"],
            "out": spec["out"],
            **{key: list(_hw(spec.get(key, 1))) for key in ("kernel", "stride", "padding", "dilation")},
            "groups": spec["groups"],
            "bias": spec["bias"],
            "spiking": False,
        }
    if kind == "batchnorm":
        return {"type": "batchnorm", "name": name, "features": spec["features"], "eps": float(spec.get("eps", 1e-5))}
    if kind == "avgpool":
        return {
            "type": "avgpool",
            "name": name,
            "kernel": list(_hw(spec["kernel"])),
            "stride": list(_hw(spec["stride"])),
        }
    if kind == "dropout":
        return {"type": "dropout", "name": name, "p": float(spec["p"])}
    return {"type": "flatten", "name": name}


def layers_from_arch(arch: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Format 2's ``"layers"`` of a format-1 arch (module docstring); raises UnsupportedLayerError."""
    validate_arch(arch)
    layers: list[dict[str, Any]] = []
    arch_index: list[int] = []
    for i, spec in enumerate(arch):
        if spec["type"] != "relu":
            layers.append(_layer(i, spec))
            arch_index.append(i)
            continue
        before = [arch[j]["type"] for j in (i - 2, i - 1) if j >= 0]
        if before[-1:] and before[-1] in ("linear", "conv"):
            prev = layers[-1]
        elif before[-2:] and before[-1] == "batchnorm" and before[0] in ("linear", "conv"):
            prev = layers[-2]
        else:
            raise UnsupportedLayerError(f"arch layer {i} (relu): must directly follow linear, conv or batchnorm")
        prev["spiking"] = True
    if module_indices(layers) != arch_index:
        raise UnsupportedLayerError(f"arch modules {arch_index} do not keep their order as IR layers")
    return layers


def upgrade_v1(ckpt: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The format-2 dict of a format-1 checkpoint: ``arch`` becomes ``layers``, all else is kept."""
    arch = ckpt.get("arch")
    if not isinstance(arch, list):
        raise CheckpointError(f"{where}: missing key 'arch' (a list), or it is {type(arch).__name__}")
    try:
        layers = layers_from_arch(arch)
    except UnsupportedLayerError as exc:
        raise CheckpointError(f"{where}: invalid arch: {exc}") from None
    out = {key: value for key, value in ckpt.items() if key != "arch"}
    out.update(format_version=2, layers=layers)
    return out
