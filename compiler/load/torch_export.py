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

This module walks the graph (op dispatch, the chain's checks, the input normalisation's fold); reading one
node and building the layer it stands for is :mod:`.export_nodes`.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from loihic.compiler import ir
from loihic.compiler.errors import UnsupportedLayerError
from loihic.compiler.load.export_nodes import (
    _HIDDEN,
    _READOUT,
    _args,
    _batchnorm,
    _Builder,
    _conv,
    _elementwise,
    _fields,
    _layer_name,
    _module_path,
    _op,
    _outputs,
    _per_channel,
    _pool,
)
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
    "layer_norm": "layer normalisation depends on the sample's statistics and cannot be folded into weights",
    "matmul": "write the layer as nn.Linear (a matmul with a parameter is not recognised)",
    "mm": "write the layer as nn.Linear (a matmul with a parameter is not recognised)",
    "addmm": "write the layer as nn.Linear (a matmul with a parameter is not recognised)",
}
# aten's recurrent ops and the torch module each comes from (refused before anything else: see _refuse_recurrent)
_RECURRENT = {
    "lstm": "nn.LSTM",
    "gru": "nn.GRU",
    "rnn_tanh": "nn.RNN",
    "rnn_relu": "nn.RNN",
    "lstm_cell": "nn.LSTMCell",
    "gru_cell": "nn.GRUCell",
    "rnn_tanh_cell": "nn.RNNCell",
    "rnn_relu_cell": "nn.RNNCell",
    "_thnn_fused_lstm_cell": "nn.LSTMCell",
    "_thnn_fused_gru_cell": "nn.GRUCell",
}


def network_from_program(
    prog: Program,
    input_mean: Any = None,
    input_std: Any = None,
    timesteps: int = 1,
    encoding: str = "poisson",
) -> ir.Network:
    """The float IR of an exported ANN (module docstring).  ``input_mean`` / ``input_std`` (scalars or
    per channel) describe a normalisation applied *outside* the model, folded like one inside it."""
    _refuse_recurrent(prog)  # first: a sequence model's input shape or reshapes would be refused less clearly
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


def _refuse_recurrent(prog: Program) -> None:
    """Name a recurrent layer (LSTM, GRU, RNN or their cells) and say what to deploy instead."""
    for node in prog.nodes:
        kind = _op(node).split(".")[0]
        if kind in _RECURRENT:
            raise _Builder(prog).fail(
                node,
                f"an {_RECURRENT[kind]}, a recurrent layer (its hidden state feeds back into it every time step); "
                "a netx CUBA network is a feed-forward chain of spiking layers with no such loop: replace it by "
                "feed-forward layers (nn.Linear or nn.Conv2d with ReLU, the sequence flattened into the input) and "
                "export that model: "
                "torch.export.save(torch.export.export(model.eval(), (example_batch,)), 'model.pt2')",
            )


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
