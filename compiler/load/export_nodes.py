"""One node of a ``torch.export`` program and the layer it stands for (the walk is in :mod:`.torch_export`).

- reading a node: its aten op name, its arguments by schema name (decoded to Python values, tensors as
  ``('tensor', name)``), its outputs and the module path it came from (for the one-line refusals);
- :class:`_Builder`: the chain built so far (layers, the current value and its shape, a pending input
  normalisation) and the checks between layers;
- the constructors of the ops that take more than a line: convolution, BatchNorm, average pooling, and the
  elementwise arithmetic of an input normalisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loihic.compiler import ir
from loihic.compiler.errors import UnsupportedLayerError
from loihic.compiler.load.pt2 import Program


def _op(node: dict[str, Any]) -> str:
    """'torch.ops.aten.conv2d.default' -> 'conv2d.default'; other namespaces keep their prefix."""
    target = str(node.get("target", "?"))
    return target[len("torch.ops.aten.") :] if target.startswith("torch.ops.aten.") else target


def _module_path(node: dict[str, Any]) -> str:
    """Innermost module of the node (``nn_module_stack``: 'key,path,type;...'), or '<top-level forward>'."""
    stack = str(node.get("metadata", {}).get("nn_module_stack", ""))
    entries = [e.split(",") for e in stack.split(";") if e]
    path = entries[-1][1] if entries and len(entries[-1]) >= 2 else ""
    if path:
        return path
    cls = entries[-1][-1].rsplit(".", 1)[-1] if entries else "model"
    return f"<{cls}.forward>"


def _layer_name(node: dict[str, Any], default: str) -> str:
    """The module path when the op is a module's own (``nn.AvgPool2d``), else ``default`` (``F.avg_pool2d``
    called in a parent's forward)."""
    path = _module_path(node)
    return default if path.startswith("<") else path


@dataclass
class _Args:
    """A node's inputs by schema name, decoded to Python values; tensors as ('tensor', name)."""

    values: dict[str, Any]
    order: list[str]

    def get(self, name: str, index: int, default: Any = None) -> Any:
        if name in self.values:
            return self.values[name]
        return self.values[self.order[index]] if index < len(self.order) else default


def _decode(arg: dict[str, Any]) -> Any:
    (kind, value), *_ = arg.items() if arg else [("as_none", None)]
    if kind == "as_tensor":
        return ("tensor", value["name"])
    if kind == "as_tensors":
        return [("tensor", v["name"]) for v in value]
    if kind in ("as_int", "as_float", "as_bool", "as_string", "as_ints", "as_floats", "as_bools"):
        return value
    if kind == "as_none":
        return None
    if kind == "as_scalar_type" or kind == "as_memory_format" or kind == "as_layout" or kind == "as_device":
        return value
    return ("unsupported", kind)


def _args(node: dict[str, Any]) -> _Args:
    values, order = {}, []
    for item in node.get("inputs", []):
        name = str(item.get("name"))
        values[name] = _decode(item.get("arg", {}))
        order.append(name)
    return _Args(values, order)


def _outputs(node: dict[str, Any]) -> list[str]:
    names = []
    for out in node.get("outputs", []):
        if "as_tensor" in out:
            names.append(out["as_tensor"]["name"])
        elif "as_tensors" in out:
            names += [t["name"] for t in out["as_tensors"]]
    return names


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = list(v)
    return (int(v[0]), int(v[0])) if len(v) == 1 else (int(v[0]), int(v[1]))


@dataclass
class _Builder:
    prog: Program
    layers: list[ir.Layer] = field(default_factory=list)
    head: str = ""  # the chain's current value
    shape: tuple[int, ...] = ()  # its shape without batch
    affine: tuple[np.ndarray, np.ndarray] | None = None  # input normalisation x' = a x + c, before any layer
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)
    final_dropped: list[str] = field(default_factory=list)

    def fail(self, node: dict[str, Any], why: str) -> UnsupportedLayerError:
        return UnsupportedLayerError(f"{self.prog.source}: {_module_path(node)} (aten.{_op(node)}): {why}")

    def unique(self, name: str) -> str:
        base, k = name or "layer", 1
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def const(self, value: Any) -> np.ndarray | None:
        """A constant operand as an array, or None when it is a graph value that is not constant."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return np.asarray(float(value))
        if isinstance(value, tuple) and value[0] == "tensor":
            name = value[1]
            if name in self.prog.tensors:
                return np.asarray(self.prog.tensors[name], np.float64)
            return self.consts.get(name)
        return None

    def param(self, value: Any, node: dict[str, Any], what: str) -> tuple[np.ndarray, str]:
        arr = self.const(value)
        if arr is None:
            raise self.fail(node, f"{what} is computed in the graph, expected a parameter or constant")
        name = self.prog.tensor_names.get(value[1], "") if isinstance(value, tuple) else ""
        return arr, name

    # --- the chain -------------------------------------------------------------------------------------
    def last_synaptic(self) -> ir.Dense | ir.Conv | None:
        syn = [lay for lay in self.layers if isinstance(lay, ir.SYNAPTIC)]
        return syn[-1] if syn else None

    def add(self, layer: ir.Layer, node: dict[str, Any], shape: tuple[int, ...]) -> None:
        """Append ``layer`` (output ``shape``); an input normalisation still pending follows the reshaping or
        pooling that comes before the first synaptic layer, so that it is always in the current shape."""
        if self.affine is not None and self.last_synaptic() is None:
            a, c = self.affine
            if isinstance(layer, ir.Flatten):
                self.affine = (a.reshape(-1), c.reshape(-1))
            elif isinstance(layer, ir.AvgPool):
                if not (_per_channel(a) and _per_channel(c)):
                    raise self.fail(node, "an input normalisation that varies within a channel cannot pass pooling")
                self.affine = tuple(np.broadcast_to(v[:, :1, :1], shape).copy() for v in (a, c))
        self.layers.append(layer)
        self.shape = shape

    def after_synapse_open(self) -> bool:
        """True while the last layer is a synaptic one (or its BatchNorm) that has no ReLU yet."""
        tail = self.layers[-1] if self.layers else None
        if isinstance(tail, ir.BatchNorm):
            tail = self.layers[-2]
        return isinstance(tail, ir.SYNAPTIC) and not tail.neuron.spiking

    def check_synapse_may_start(self, node: dict[str, Any]) -> None:
        if self.after_synapse_open():
            raise self.fail(
                node,
                f"two synaptic layers follow each other without a ReLU between them ('{self.last_synaptic().name}' "
                "and this one); each hidden layer must end in a ReLU, which becomes its spiking neuron",
            )

    def check_between(self, node: dict[str, Any], what: str) -> None:
        """Pooling / reshaping acts on spikes: not between a synaptic layer and its ReLU."""
        if self.after_synapse_open():
            raise self.fail(
                node,
                f"{what} between '{self.last_synaptic().name}' and its ReLU cannot be deployed (it would act on "
                f"currents, not spikes); apply the ReLU first",
            )


_READOUT = ir.Neuron(threshold=1.0, current_decay=1.0, voltage_decay=0.0, spiking=False)
_HIDDEN = ir.Neuron(threshold=1.0, current_decay=1.0, voltage_decay=1.0 - 1.0, spiking=True)


def _fields(layer: Any) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(layer, f.name) for f in dataclasses.fields(layer)}


def _conv(b: _Builder, node: dict[str, Any], args: _Args) -> None:
    op = _op(node)
    w, wname = b.param(args.get("weight", 1), node, "the weight")
    bias = args.get("bias", 2)
    bvec = None if bias is None else b.param(bias, node, "the bias")[0]
    if op == "convolution.default":
        if args.get("transposed", 6, False):
            raise b.fail(node, "transposed convolution is not supported")
        if any(args.get("output_padding", 7, [0, 0])):
            raise b.fail(node, "output_padding is not supported")
        stride, padding, dilation = args.get("stride", 3), args.get("padding", 4), args.get("dilation", 5)
        groups = args.get("groups", 8, 1)
    else:
        stride = args.get("stride", 3, [1, 1])
        padding = args.get("padding", 4, [0, 0])
        dilation = args.get("dilation", 5, [1, 1])
        groups = args.get("groups", 6, 1)
    if w.ndim != 4 or len(b.shape) != 3:
        raise b.fail(node, f"only 2-d convolutions on (C, H, W) inputs are supported (input {b.shape})")
    dil = _pair(dilation)
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        else:  # "same" with stride 1: total padding d * (k - 1) per axis, split evenly when even
            total = [dil[i] * (w.shape[2 + i] - 1) for i in range(2)]
            if any(t % 2 for t in total):
                raise b.fail(node, "padding='same' with an even kernel pads asymmetrically, which netx cannot express")
            padding = (total[0] // 2, total[1] // 2)
    name = b.unique(wname.rsplit(".", 1)[0] if wname else _module_path(node))
    layer = ir.Conv(
        name, w, bvec, _READOUT, stride=_pair(stride), padding=_pair(padding), dilation=dil, groups=int(groups)
    )
    shape = (int(w.shape[0]), *ir.conv_out_hw(b.shape[1:], w.shape[2:], layer.stride, layer.padding, dil))
    if b.shape[0] != w.shape[1] * layer.groups:
        raise b.fail(node, f"expects {w.shape[1] * layer.groups} input channels, gets {b.shape[0]}")
    b.add(layer, node, shape)


def _batchnorm(b: _Builder, node: dict[str, Any], args: _Args, op: str) -> None:
    tail = b.layers[-1] if b.layers else None
    if not isinstance(tail, ir.SYNAPTIC) or tail.neuron.spiking:
        raise b.fail(node, "BatchNorm must directly follow a linear or conv layer (before its ReLU) to be folded")
    if op == "batch_norm.default" and args.get("training", 5, False):
        raise b.fail(node, "BatchNorm in training mode: export the model after model.eval()")
    idx = {"batch_norm.default": (1, 2, 3, 4, 7), "native_batch_norm.default": (1, 2, 3, 4, 7)}.get(op, (1, 2, 3, 4, 6))
    n = tail.weight.shape[0]
    gamma, beta = args.get("weight", idx[0]), args.get("bias", idx[1])
    mean = b.param(args.get("running_mean", idx[2]), node, "running_mean")
    var = b.param(args.get("running_var", idx[3]), node, "running_var")
    eps = float(args.get("eps", idx[4], 1e-5))
    g = np.ones(n) if gamma is None else b.param(gamma, node, "the weight")[0]
    bt = np.zeros(n) if beta is None else b.param(beta, node, "the bias")[0]
    name = b.unique(mean[1].rsplit(".", 1)[0] if mean[1] else _module_path(node))
    b.add(ir.BatchNorm(name, mean[0], var[0], g, bt, eps), node, b.shape)


def _pool(b: _Builder, node: dict[str, Any], args: _Args, op: str, out_shape: tuple[int, ...] | None) -> None:
    b.check_between(node, "average pooling")
    if len(b.shape) != 3:
        raise b.fail(node, f"pooling needs a (C, H, W) input, gets {b.shape}")
    h, w = b.shape[1:]
    flatten = False
    if op == "avg_pool2d.default":
        kernel = _pair(args.get("kernel_size", 1))
        stride = _pair(args.get("stride", 2) or kernel)
        if any(_pair(args.get("padding", 3, 0))):
            raise b.fail(node, "average pooling with padding is not supported (pad nothing, or pool after cropping)")
        if args.get("ceil_mode", 4, False) and any(
            (s - k) % st for s, k, st in zip((h, w), kernel, stride, strict=True)
        ):
            raise b.fail(node, "ceil_mode pooling with a partial last window is not supported")
        if args.get("divisor_override", 6) is not None:
            raise b.fail(node, "divisor_override is not supported")
    elif op == "adaptive_avg_pool2d.default":
        oh, ow = _pair(args.get("output_size", 1))
        if h % oh or w % ow:
            raise b.fail(
                node, f"adaptive pooling {h}x{w} -> {oh}x{ow} is not a fixed pooling (the output must divide the input)"
            )
        kernel = stride = (h // oh, w // ow)
    else:  # mean over the spatial axes = global average pooling
        dims = sorted(d % 4 for d in args.get("dim", 1))
        if dims != [2, 3]:
            raise b.fail(node, f"a mean over dims {dims} is not a pooling (only over (H, W), dims 2 and 3)")
        kernel = stride = (h, w)
        flatten = not args.get("keepdim", 2, False)
    shape = (b.shape[0], *ir.conv_out_hw((h, w), kernel, stride, (0, 0)))
    b.add(ir.AvgPool(b.unique(_layer_name(node, "avgpool")), kernel, stride), node, shape)
    if flatten:
        b.add(ir.Flatten(b.unique("flatten")), node, (math.prod(shape),))


def _elementwise(b: _Builder, node: dict[str, Any], args: _Args, op: str) -> None:
    """An input normalisation: before the first synaptic layer, with a constant other operand.  The chain
    value so far is ``a x + c`` (``b.affine``); ``add``/``sub`` compute ``self +- alpha * other``, ``rsub``
    ``other - alpha * self``."""
    if b.last_synaptic() is not None:
        raise b.fail(
            node, "arithmetic on activations cannot be deployed (only an input normalisation before the first layer)"
        )
    self_v, other_v = args.get("self", 0), args.get("other", 1)
    head_is_self = isinstance(self_v, tuple) and self_v[1] == b.head
    k = b.const(other_v if head_is_self else self_v)
    if k is None:
        raise b.fail(node, "needs a constant operand")
    try:
        k = np.broadcast_to(k, (1, *b.shape)).reshape(b.shape)
    except ValueError:
        raise b.fail(node, f"constant of shape {np.shape(k)} does not broadcast to the input {b.shape}") from None
    alpha = float(args.get("alpha", 2, 1.0) or 1.0)
    a0, c0 = b.affine if b.affine is not None else (np.ones(b.shape), np.zeros(b.shape))
    kind = op.split(".")[0]
    if kind == "add":
        b.affine = (a0, c0 + alpha * k) if head_is_self else (alpha * a0, k + alpha * c0)
    elif kind == "sub":
        b.affine = (a0, c0 - alpha * k) if head_is_self else (-alpha * a0, k - alpha * c0)
    elif kind == "rsub":
        b.affine = (-alpha * a0, k - alpha * c0)
    elif kind == "mul":
        b.affine = (a0 * k, c0 * k)
    else:  # div
        if not head_is_self:
            raise b.fail(node, "dividing a constant by the input is not an affine map")
        if (k == 0).any():
            raise b.fail(node, "divides the input by zero")
        b.affine = (a0 / k, c0 / k)


def _per_channel(v: np.ndarray) -> bool:
    return bool((np.ptp(v.reshape(v.shape[0], -1), axis=1) == 0).all())
