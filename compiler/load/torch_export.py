"""A user's own PyTorch ANN -> float IR (:class:`~loihic.compiler.ir.Network`).

Input: a ``torch.export`` program, from a ``.pt2`` file (read without running code, :mod:`.pt2`) or from an
``nn.Module`` plus an example input (the Python API exports it and reads it back the same way).  The
graph is walked in order and must be a chain: every op consumes the previous op's output.  Module
structure does not matter (nested modules, custom classes, ``nn.Sequential``): the exported graph is flat.

Accepted ops and what they become:

- ``linear``, ``conv2d`` (stride, padding incl. ``"same"``/``"valid"``, dilation, groups, bias),
  ``convolution`` (not transposed) -> :class:`ir.Dense` / :class:`ir.Conv`;
- ``relu`` / ``relu_`` (``nn.ReLU``, ``F.relu``, ``torch.relu``, in place) and ``clamp_min(x, 0)`` -> the
  preceding synaptic layer's neuron spikes (Datta et al. eq. 2 replaces ReLU(A) by the spike rate);
- ``batch_norm`` (inference) -> :class:`ir.BatchNorm`, folded later by the ``fold_batchnorm`` pass;
- ``avg_pool2d`` (no padding, floor mode) and ``adaptive_avg_pool2d`` when the output divides the input
  (a fixed pooling), ``mean`` over (H, W) -> :class:`ir.AvgPool` (then a flatten, for ``mean`` without
  ``keepdim``);
- ``flatten`` / ``view`` / ``reshape`` to (batch, features) -> :class:`ir.Flatten`; ``dropout``, ``clone``,
  ``contiguous``, ``detach`` -> nothing (identity at inference; ``nn.Identity`` leaves no op);
- elementwise ``sub`` / ``div`` / ``mul`` / ``add`` of the *input* by constants (an input normalisation
  ``(x - mean) / std``, scalar or per channel) -> an affine map ``x' = a x + c`` folded exactly into the
  first synaptic layer: ``W' = W diag(a)``, ``b' = b + W c`` (for a padded first conv the border
  positions see ``c`` through the zero padding differently, so a warning says so);
- ``softmax`` / ``log_softmax`` as the very last op -> dropped (monotone, so argmax, which is all the
  integrator read-out reports, is unchanged).

The last synaptic layer becomes the non-spiking integrator read-out (Datta et al. eqs. 4-5), so it must not
be followed by a ReLU.  Anything else is refused with one line naming the module path and the op, e.g.
``layer2.0 (aten.add.Tensor): residual additions cannot be expressed in a netx CUBA network``.

Neurons of the returned network carry a placeholder threshold 1.0: conversion (threshold balancing) sets
the real ones.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loihic.compiler import ir
from loihic.compiler.errors import UnsupportedLayerError
from loihic.compiler.load.pt2 import Program

_IDENTITY = {
    "dropout.default",
    "dropout_.default",
    "feature_dropout.default",
    "alpha_dropout.default",
    "clone.default",
    "contiguous.default",
    "detach.default",
    "detach_.default",
    "alias.default",
    "lift_fresh_copy.default",
}
_RELU = {"relu.default", "relu_.default"}
_ELEMENTWISE = {
    "sub.Tensor",
    "sub.Scalar",
    "rsub.Scalar",
    "div.Tensor",
    "div.Scalar",
    "mul.Tensor",
    "mul.Scalar",
    "add.Tensor",
    "add.Scalar",
}
_RESHAPE = {"flatten.using_ints", "view.default", "reshape.default", "_unsafe_view.default"}
_HINTS = {
    "max_pool2d": "max pooling has no exact spiking equivalent on Loihi; train with average pooling (nn.AvgPool2d)",
    "max_pool2d_with_indices": "max pooling has no exact spiking equivalent on Loihi; train with average pooling",
    "adaptive_max_pool2d": "max pooling has no exact spiking equivalent on Loihi; train with average pooling",
    "sigmoid": "only ReLU maps onto spiking rate codes (sigmoid does not)",
    "tanh": "only ReLU maps onto spiking rate codes (tanh does not)",
    "gelu": "only ReLU maps onto spiking rate codes (GELU does not)",
    "silu": "only ReLU maps onto spiking rate codes (SiLU does not)",
    "elu": "only ReLU maps onto spiking rate codes (ELU does not)",
    "leaky_relu": "only ReLU maps onto spiking rate codes (negative slopes do not)",
    "hardtanh": "only ReLU maps onto spiking rate codes; ReLU6 / hardtanh clip the rate, train with plain ReLU",
    "cat": "concatenation (branches) cannot be expressed in a netx CUBA network, which is a chain of layers",
    "lstm": "recurrent cells are not supported by the netx CUBA path",
    "gru": "recurrent cells are not supported by the netx CUBA path",
    "layer_norm": "layer normalisation depends on the sample's statistics and cannot be folded into weights",
    "matmul": "write the layer as nn.Linear (a matmul with a parameter is not recognised)",
    "mm": "write the layer as nn.Linear (a matmul with a parameter is not recognised)",
    "addmm": "write the layer as nn.Linear (a matmul with a parameter is not recognised)",
}


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


def network_from_program(
    prog: Program,
    input_mean: Any = None,
    input_std: Any = None,
    timesteps: int = 1,
    encoding: str = "poisson",
) -> ir.Network:
    """The float IR of an exported ANN (module docstring).  ``input_mean`` / ``input_std`` (scalars or
    per channel) describe a normalisation applied *outside* the model, folded like one inside it."""
    in_shape = prog.shape(prog.user_input)
    if len(in_shape) not in (2, 4) or min(in_shape) < 1:
        raise UnsupportedLayerError(
            f"{prog.source}: input has shape {in_shape}; expected (batch, features) or (batch, C, H, W)"
        )
    b = _Builder(prog, head=prog.user_input, shape=tuple(in_shape[1:]))
    sample_shape = b.shape
    if input_mean is not None or input_std is not None:
        b.affine = _options_affine(prog.source, sample_shape, input_mean, input_std)
    _refuse_merges(prog)
    users: dict[str, int] = {}
    for node in prog.nodes:
        for v in _args(node).values.values():
            for t in v if isinstance(v, list) else [v]:
                if isinstance(t, tuple) and t[0] == "tensor":
                    users[t[1]] = users.get(t[1], 0) + 1
    for k, node in enumerate(prog.nodes):
        _step(b, node, users, last=k == len(prog.nodes) - 1)
    if b.head != prog.user_output:
        raise UnsupportedLayerError(f"{prog.source}: the model's output is not the end of its chain of layers")
    last = b.last_synaptic()
    if last is None:
        raise UnsupportedLayerError(f"{prog.source}: the model has no linear or conv layer")
    if last.neuron.spiking:
        raise UnsupportedLayerError(
            f"{prog.source}: layer '{last.name}' is the last synaptic layer, the non-spiking read-out, but a ReLU "
            "follows it; remove that ReLU (argmax of the logits is what the read-out reports)"
        )
    tail = b.layers[b.layers.index(last) + 1 :]
    if any(not isinstance(t, ir.BatchNorm) for t in tail):
        raise UnsupportedLayerError(
            f"{prog.source}: '{type(tail[-1]).__name__.lower()}' after the read-out layer '{last.name}'; "
            "nothing but BatchNorm may follow the last synaptic layer"
        )
    if len(b.shape) != 1:
        raise UnsupportedLayerError(f"{prog.source}: the model outputs shape {b.shape}, expected (batch, classes)")
    layers = b.layers
    if b.affine is not None:
        layers = _fold_input_affine(prog.source, layers, *b.affine)
    net = ir.Network(
        ir.Input(sample_shape),
        tuple(layers),
        timesteps=timesteps,
        encoding=encoding,
        meta={
            "front_end": "torch.export",
            "source": prog.source,
            "input_affine_folded": b.affine is not None,
            "dropped_final_ops": b.final_dropped,
        },
    )
    ir.infer_shapes(net)
    return net


def _refuse_merges(prog: Program) -> None:
    """Name the op that merges two computed values (a residual addition, a concatenation) before the walk
    trips over the branch that feeds it."""
    constant = set(prog.tensors)
    for node in prog.nodes:
        ins = [
            v[1]
            for v in _args(node).values.values()
            for v in (v if isinstance(v, list) else [v])
            if isinstance(v, tuple) and v[0] == "tensor"
        ]
        computed = [t for t in ins if t not in constant]
        if not computed:
            constant.update(_outputs(node))
        elif len(set(computed)) > 1:
            op = _op(node)
            b = _Builder(prog)
            if op.split(".")[0] in ("add", "sub", "add_", "sub_"):
                raise b.fail(node, "residual additions cannot be expressed in a netx CUBA network")
            raise b.fail(node, _HINTS.get(op.split(".")[0], "merges two branches, which a netx CUBA chain cannot hold"))


def _step(b: _Builder, node: dict[str, Any], users: dict[str, int], last: bool) -> None:
    op = _op(node)
    args = _args(node)
    outs = _outputs(node)
    inputs = [v for v in args.values.values() for v in (v if isinstance(v, list) else [v])]
    tensors_in = [t[1] for t in inputs if isinstance(t, tuple) and t[0] == "tensor"]
    if any(isinstance(t, tuple) and t[0] == "unsupported" for t in inputs):
        raise b.fail(node, "has an argument loihic cannot read (symbolic or custom value)")
    chain_in = [t for t in tensors_in if t not in b.prog.tensors and t not in b.consts]
    if not chain_in:  # constant folding of the few ops that prepare a normalisation constant
        if op in _IDENTITY and len(outs) == 1:
            b.consts[outs[0]] = b.const(inputs[0])
            return
        if op in ("view.default", "reshape.default", "unsqueeze.default") and len(outs) == 1:
            b.consts[outs[0]] = np.asarray(b.const(inputs[0])).reshape(b.prog.shape(outs[0]))
            return
        raise b.fail(node, "computes a constant loihic cannot evaluate; precompute it as a buffer")
    if chain_in != [b.head] or len(outs) < 1:
        if op.startswith(("add.", "sub.", "mul.")) and len(chain_in) > 1:
            raise b.fail(node, "residual additions cannot be expressed in a netx CUBA network")
        raise b.fail(node, "branches off the chain of layers; loihic deploys feed-forward chains only")
    if users.get(b.head, 0) > 1:
        raise b.fail(node, f"value '{b.head}' feeds several ops (a branch or skip connection), which netx cannot hold")
    out_shape = b.prog.shape(outs[0])[1:] if outs[0] in b.prog.tensor_meta else None
    name_of = op.split(".")[0]
    if op in _IDENTITY:
        pass
    elif op in _RELU or (op == "clamp_min.default" and args.get("min", 1) == 0):
        syn = b.last_synaptic()
        if not b.after_synapse_open():
            where = f"after '{b.layers[-1].name}'" if b.layers else "on the input"
            raise b.fail(node, f"a ReLU {where} does not follow a linear/conv layer (or its BatchNorm)")
        i = b.layers.index(syn)
        b.layers[i] = type(syn)(**{**_fields(syn), "neuron": _HIDDEN})
    elif op in ("linear.default",):
        b.check_synapse_may_start(node)
        w, wname = b.param(args.get("weight", 1), node, "the weight")
        bias = args.get("bias", 2)
        bvec = None if bias is None else b.param(bias, node, "the bias")[0]
        if len(b.shape) != 1:
            raise b.fail(node, f"linear layer on a {b.shape} input; flatten it first (torch.flatten(x, 1))")
        name = b.unique(wname.rsplit(".", 1)[0] if wname else _module_path(node))
        b.add(ir.Dense(name, w, bvec, _READOUT), node, (int(w.shape[0]),))
    elif op in ("conv2d.default", "conv2d.padding", "convolution.default"):
        b.check_synapse_may_start(node)
        _conv(b, node, args)
    elif op in ("batch_norm.default", "_native_batch_norm_legit_no_training.default", "native_batch_norm.default"):
        _batchnorm(b, node, args, op)
    elif op == "getitem" or op.endswith("getitem"):
        if args.get("idx", 1, 0) != 0:
            raise b.fail(node, "uses a secondary output of an op")
    elif op in ("avg_pool2d.default", "adaptive_avg_pool2d.default", "mean.dim"):
        _pool(b, node, args, op, out_shape)
    elif op in _RESHAPE:
        b.check_between(node, "a reshape")
        if out_shape is None or len(out_shape) != 1 or out_shape[0] != math.prod(b.shape):
            raise b.fail(node, f"reshapes {b.shape} to {out_shape}; only flattening to (batch, features) is supported")
        if len(b.shape) != 1:
            b.add(ir.Flatten(b.unique(_layer_name(node, "flatten"))), node, out_shape)
    elif op in _ELEMENTWISE:
        _elementwise(b, node, args, op)
    elif op in ("softmax.int", "_softmax.default", "log_softmax.int", "_log_softmax.default"):
        if not last:
            raise b.fail(
                node, "softmax inside the network cannot be deployed (only as the last op, where it is dropped)"
            )
        b.final_dropped.append(op)
    else:
        hint = _HINTS.get(name_of.rstrip("_"), "")
        supported = (
            "supported: linear, conv2d, relu, avg_pool2d, adaptive_avg_pool2d, batch_norm, flatten/view/reshape, "
            "dropout, an input normalisation, a final (log_)softmax"
        )
        raise b.fail(node, hint or f"not supported by loihic ({supported})")
    b.head = outs[0]
    if out_shape is not None and out_shape != b.shape and op not in ("getitem",) and not op.endswith("getitem"):
        if op not in _ELEMENTWISE and op not in _IDENTITY and not op.startswith("softmax"):
            raise b.fail(node, f"loihic computes shape {b.shape} here, the program records {out_shape}")


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


def _options_affine(source: str, shape: tuple[int, ...], mean: Any, std: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(x - mean) / std`` given as options: scalars or one value per channel (per feature for (n,))."""
    chans = shape[0]

    def expand(v: Any, name: str, default: float) -> np.ndarray:
        arr = np.atleast_1d(np.asarray(default if v is None else v, np.float64))
        if arr.size not in (1, chans) or not np.isfinite(arr).all():
            raise UnsupportedLayerError(f"{source}: input {name} {arr.tolist()}: expected 1 or {chans} finite values")
        return np.broadcast_to(arr.reshape(-1, *([1] * (len(shape) - 1))), shape).copy()

    m, s = expand(mean, "mean", 0.0), expand(std, "std", 1.0)
    if (s <= 0).any():
        raise UnsupportedLayerError(f"{source}: input std must be > 0")
    return 1.0 / s, -m / s


def _fold_input_affine(source: str, layers: list[ir.Layer], a: np.ndarray, c: np.ndarray) -> list[ir.Layer]:
    """Fold ``x' = a x + c`` (arrays of the first synaptic layer's input shape) into that layer."""
    layers = list(layers)
    k = next(i for i, lay in enumerate(layers) if isinstance(lay, ir.SYNAPTIC))
    first = layers[k]
    bias = np.zeros(first.weight.shape[0]) if first.bias is None else first.bias
    if isinstance(first, ir.Dense):
        w = first.weight * a.reshape(1, -1)
        new_bias = bias + first.weight @ c.reshape(-1)
    else:
        if not (_per_channel(a) and _per_channel(c)):
            raise UnsupportedLayerError(
                f"{source}: layer '{first.name}': an input normalisation that varies within a channel cannot be "
                "folded into a convolution"
            )
        a_ch, c_ch = a[:, 0, 0], c[:, 0, 0]
        cin = first.weight.shape[1]
        group_of_out = np.arange(first.weight.shape[0]) // (first.weight.shape[0] // first.groups)
        chan = group_of_out[:, None] * cin + np.arange(cin)[None, :]  # (out, in/groups): input channel index
        w = first.weight * a_ch[chan][:, :, None, None]
        new_bias = bias + (first.weight.sum(axis=(2, 3)) * c_ch[chan]).sum(axis=1)
        if any(first.padding) and np.any(c_ch != 0):
            warnings.warn(
                f"{source}: layer '{first.name}': the input normalisation's offset is folded into the bias; with "
                f"padding {first.padding} the border outputs differ slightly from the model's (its zero padding "
                "pads the normalised input); compare accuracies with 'loihic evaluate'",
                stacklevel=2,
            )
    layers[k] = type(first)(**{**_fields(first), "weight": w, "bias": new_bias})
    return layers


def _per_channel(v: np.ndarray) -> bool:
    return bool((np.ptp(v.reshape(v.shape[0], -1), axis=1) == 0).all())
