r"""A NIR graph (the ``nir`` package, 1.0.x) -> float IR, discretised at ``dt``.

NIR describes neurons in continuous time.  loihic takes one Euler step of ``dt`` per Loihi time step, the
discretisation the exporters use: snnTorch (``export_to_nir`` writes ``dt = 1e-4``, ``tau = dt / (1 - beta)``,
``r = tau / dt``) and Norse (``dt = 1e-3``) both step Euler; the default ``dt`` is snnTorch's 1e-4 s.  An
input spike is 1 for one step.  With ``a = dt / tau`` (``a_s = dt / tau_syn``, ``a_m = dt / tau_mem``):

- ``LIF``: ``tau dv/dt = (v_leak - v) + R I``  ->  ``v[t] = (1 - a) v[t-1] + a R I[t] + a v_leak``;
- ``CubaLIF``: ``tau_syn dI/dt = -I + w_in S``, ``tau_mem dv/dt = (v_leak - v) + R I``  ->
  ``I[t] = (1 - a_s) I[t-1] + a_s w_in S[t]``, ``v[t] = (1 - a_m) v[t-1] + a_m (R I[t] + v_leak)``;
- ``IF``: ``dv/dt = R I``  ->  ``v[t] = v[t-1] + R I[t]``;  ``I`` the same, non-spiking (read-out);
- ``LI`` / ``CubaLI``: as LIF / CubaLIF without firing (non-spiking read-out).

``IF`` and ``I`` have no time constant, so no ``dt`` enters them: each step's input is integrated once, as
sinabs (whose ``IAF`` exports as ``IF`` with ``r = 1``) computes it.  Spiking: ``z = v > v_threshold``, then
``v <- v_reset``.

Mapping onto the IR's CUBA neuron (``compiler/ir.py``: ``u[t] = (1 - current_decay) u[t-1] + W s[t]``,
``v[t] = (1 - voltage_decay) v[t-1] + u[t] + bias``), per neuron i of the layer after synapse ``W_nir``:

- LIF: ``current_decay = 1``, ``voltage_decay = a``, ``W = diag(a R) W_nir``, ``bias = a (R b_nir + v_leak)``;
- CubaLIF: ``current_decay = a_s``, ``voltage_decay = a_m``, ``u = a_m R I``, so ``W = diag(a_m R a_s w_in)
  W_nir``; a synapse bias ``b_nir`` enters I like a constant input, i.e. u gains ``a_m R a_s w_in b_nir`` per
  step and converges to ``a_m R w_in b_nir``: it is deployed as that steady bias (exact once u has settled,
  one step for ``tau_syn = dt``), and ``bias = a_m (R w_in b_nir + v_leak)``;
- IF / I: ``current_decay = 1``, ``voltage_decay = 0``, ``W = diag(R) W_nir``, ``bias = R b_nir``;
- ``vThMant`` comes from ``v_threshold`` (the compiler's scale), ``iDecay = 4096 current_decay``,
  ``vDecay = 4096 voltage_decay``.

One netx layer holds one threshold and one pair of decays.  A threshold that differs across neurons is
folded exactly: neuron i's row of ``W`` and its bias are multiplied by ``theta / theta_i`` (``v`` is linear
in them and resets to 0, so ``v_i > theta_i`` iff the scaled ``v_i > theta``).  Decays that differ across
neurons cannot be folded and are refused, naming the node and parameter, as are ``v_reset != 0`` (Loihi
resets to 0), ``tau < dt`` (the Euler step would overshoot), recurrent edges, branches and delays.  NIR
cannot say "subtractive reset"; its neurons reset to ``v_reset``, and loihic deploys exactly that, so a
model trained with snnTorch's default ``reset_mechanism="subtract"`` behaves differently here (train with
``"zero"`` for an exact match).

A synapse that feeds ``Output`` directly (sinabs' converted networks end that way) becomes a non-spiking
integrator read-out, ``v[t] = v[t-1] + W s[t] + b``: the sum over time of its output, which is what a rate
read-out of such a network computes.

Other nodes: ``Input``, ``Output``; ``Affine`` / ``Linear`` -> Dense; ``Conv2d`` -> Conv; ``Flatten`` ->
Flatten; ``AvgPool2d`` -> AvgPool; ``SumPool2d`` -> AvgPool with the next synapse's weights times the window
size; ``Scale`` on spikes -> folded into the next synapse's input columns, on currents -> into the previous
synapse's rows.  A graph written by ``loihic export-nir`` (metadata ``loihic_integer_units``) is already in
Loihi's integer units and is compiled at scale 1, so its integers come back unchanged.
Reading uses ``nir.read`` (HDF5 through h5py: no code from the file runs).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from loihic.compiler import ir
from loihic.compiler.errors import UnsupportedLayerError
from loihic.compiler.netx.nir_export import UNITS_KEY

DEFAULT_DT = 1e-4  # snnTorch's export_to_nir
_SPIKING = ("LIF", "CubaLIF", "IF")
_READOUT = ("LI", "CubaLI", "I")


MAX_DATASET_BYTES = 1 << 28  # one dataset of a NIR file: 256 MiB (checked before nir.read allocates it)


def is_nir(path: Path | str) -> bool:
    """HDF5 with a top-level ``node`` group that has a ``type`` (NIR's file layout).  An HDF5 file whose
    structure cannot be read counts as one too, so that :func:`read_nir` names what is wrong with it."""
    import h5py

    try:
        if not h5py.is_hdf5(path):
            return False
    except OSError:
        return False
    try:
        with h5py.File(path, "r") as f:
            return "node" in f and isinstance(f["node"], h5py.Group) and "type" in f["node"]
    except Exception:  # noqa: BLE001 - h5py raises OSError, RuntimeError, KeyError ... on a corrupt file
        return True


def _check_sizes(path: Path | str) -> None:
    """Refuse a dataset whose declared size is beyond :data:`MAX_DATASET_BYTES` before anything is read
    (HDF5 can declare a huge dataset in a few bytes of file)."""
    import h5py

    with h5py.File(path, "r") as f:
        found: list[tuple[str, tuple[int, ...], int]] = []

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset) and not found:
                nbytes = int(np.prod(obj.shape, dtype=object) or 0) * max(obj.dtype.itemsize, 1)
                if nbytes > MAX_DATASET_BYTES:
                    found.append((name, tuple(obj.shape), nbytes))

        f.visititems(visit)
    if found:
        name, shape, nbytes = found[0]
        raise UnsupportedLayerError(
            f"{path}: dataset '{name}' declares shape {shape} ({nbytes} bytes, more than {MAX_DATASET_BYTES}); "
            "not a NIR graph loihic can load"
        )


def read_nir(path: Path | str) -> Any:
    import nir

    try:
        _check_sizes(path)
        with warnings.catch_warnings():  # numpy's deprecation notes on a malformed file's arrays, inside nir
            warnings.simplefilter("ignore", DeprecationWarning)
            return nir.read(path, type_check=False)
    except UnsupportedLayerError:
        raise
    except Exception as exc:  # nir raises KeyError/ValueError/TypeError/AssertionError on malformed files
        text = " ".join(str(exc).split())[:200] or "malformed"
        raise UnsupportedLayerError(f"{path}: not a readable NIR graph ({type(exc).__name__}: {text})") from None


def _arr(v: Any) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v, dtype=np.float64)


def _chain(graph: Any, source: str) -> list[tuple[str, Any]]:
    """The nodes from Input to Output in order; refuses cycles, branches and nested graphs."""
    nodes, edges = dict(graph.nodes), [tuple(e) for e in graph.edges]
    succ: dict[str, list[str]] = {k: [] for k in nodes}
    pred: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        if a not in nodes or b not in nodes:
            raise UnsupportedLayerError(f"{source}: edge ({a}, {b}) names a node the graph does not have")
        succ[a].append(b)
        pred[b].append(a)
    inputs = [k for k, n in nodes.items() if type(n).__name__ == "Input"]
    if len(inputs) != 1:
        raise UnsupportedLayerError(f"{source}: {len(inputs)} Input nodes; loihic deploys graphs with one input")
    order, seen, k = [], set(), inputs[0]
    while True:
        if k in seen:
            raise UnsupportedLayerError(
                f"{source}: node '{k}': recurrent edge (a cycle); netx CUBA layers are feed-forward"
            )
        seen.add(k)
        order.append((k, nodes[k]))
        if len(pred[k]) > 1:
            raise UnsupportedLayerError(f"{source}: node '{k}': {len(pred[k])} inputs (a merge); netx holds a chain")
        if not succ[k]:
            break
        if len(succ[k]) > 1:
            if k in succ[k]:
                raise UnsupportedLayerError(f"{source}: node '{k}': recurrent edge onto itself")
            raise UnsupportedLayerError(
                f"{source}: node '{k}': feeds {len(succ[k])} nodes (a branch); netx holds a chain"
            )
        k = succ[k][0]
    if len(seen) != len(nodes):
        extra = sorted(set(nodes) - seen)[:4]
        raise UnsupportedLayerError(
            f"{source}: nodes {extra} are not on the chain from the input (recurrent or dangling)"
        )
    if type(order[-1][1]).__name__ != "Output":
        raise UnsupportedLayerError(f"{source}: the chain ends at '{order[-1][0]}', not at an Output node")
    return order


def _uniform(values: np.ndarray, node: str, param: str, source: str, what: str) -> float:
    flat = np.unique(values.ravel())
    if flat.size != 1:
        raise UnsupportedLayerError(
            f"{source}: node '{node}': {param} varies across neurons ({flat.min():.6g} .. {flat.max():.6g}); "
            f"one netx layer holds one {what}"
        )
    return float(flat[0])


def _per_row(v: np.ndarray, layer: ir.Dense | ir.Conv, node: str, param: str, source: str) -> np.ndarray:
    """Per-neuron values as one value per output row of the synapse (conv: per channel)."""
    n_out = layer.weight.shape[0]
    v = np.broadcast_to(v, v.shape if v.ndim else (n_out,))
    if isinstance(layer, ir.Dense):
        return np.broadcast_to(v.reshape(-1), (n_out,)) if v.size in (1, n_out) else _bad(node, param, source, v)
    per_chan = v.reshape(n_out, -1) if v.size % n_out == 0 else _bad(node, param, source, v)
    if not (np.ptp(per_chan, axis=1) == 0).all():
        raise UnsupportedLayerError(
            f"{source}: node '{node}': {param} differs within a channel of conv '{layer.name}'; a conv layer's "
            "weights are shared across positions, so it cannot be folded"
        )
    return per_chan[:, 0]


def _bad(node: str, param: str, source: str, v: np.ndarray) -> np.ndarray:
    raise UnsupportedLayerError(f"{source}: node '{node}': {param} has {v.size} values for the layer before it")


def _scale_rows(layer: ir.Dense | ir.Conv, g: np.ndarray, bias_add: np.ndarray | None = None) -> ir.Dense | ir.Conv:
    shape = (-1,) + (1,) * (layer.weight.ndim - 1)
    bias = np.zeros(layer.weight.shape[0]) if layer.bias is None else layer.bias
    new_bias = bias * g + (0.0 if bias_add is None else bias_add)
    keep_none = layer.bias is None and bias_add is None
    return dataclasses.replace(layer, weight=layer.weight * g.reshape(shape), bias=None if keep_none else new_bias)


def _neuron(
    layer: ir.Dense | ir.Conv, node: Any, name: str, dt: float, source: str, spiking_allowed: bool
) -> ir.Dense | ir.Conv:
    """Fold a NIR neuron node into the synapse before it (module docstring)."""
    kind = type(node).__name__
    r = _per_row(_arr(node.r), layer, name, "r", source)

    def alpha(tau_attr: str) -> float:
        tau = _arr(getattr(node, tau_attr))
        if (tau <= 0).any() or not np.isfinite(tau).all():
            raise UnsupportedLayerError(f"{source}: node '{name}': {tau_attr} must be finite and > 0")
        a = dt / _uniform(tau, name, tau_attr, source, "decay")
        if a > 1.0 + 1e-12:
            raise UnsupportedLayerError(
                f"{source}: node '{name}': {tau_attr} {dt / a:.6g} s is shorter than dt {dt:g} s (the Euler step "
                "would overshoot); pass the exporter's --dt"
            )
        return min(a, 1.0)

    b_nir = layer.bias
    if kind in ("LIF", "LI"):
        a = alpha("tau")
        gain, i_decay, v_decay = a * r, 1.0, a
        bias = a * _per_row(_arr(node.v_leak), layer, name, "v_leak", source) + (0 if b_nir is None else gain * b_nir)
    elif kind in ("CubaLIF", "CubaLI"):
        a_s, a_m = alpha("tau_syn"), alpha("tau_mem")
        w_in = _per_row(_arr(node.w_in), layer, name, "w_in", source)
        gain, i_decay, v_decay = a_m * r * a_s * w_in, a_s, a_m
        steady = a_m * r * w_in  # what a constant synapse input b settles to in u, per unit of b
        bias = a_m * _per_row(_arr(node.v_leak), layer, name, "v_leak", source) + (
            0 if b_nir is None else steady * b_nir
        )
    elif kind in ("IF", "I"):
        gain, i_decay, v_decay = r, 1.0, 0.0
        bias = 0 if b_nir is None else gain * b_nir
    else:  # pragma: no cover - callers dispatch on the same names
        raise UnsupportedLayerError(f"{source}: node '{name}': {kind} is not a neuron")
    bias = np.broadcast_to(np.asarray(bias, np.float64), (layer.weight.shape[0],))
    layer = dataclasses.replace(
        layer,
        weight=layer.weight * gain.reshape((-1,) + (1,) * (layer.weight.ndim - 1)),
        bias=bias.copy() if (b_nir is not None or np.any(bias)) else None,
    )
    spiking = kind in _SPIKING
    threshold = 1.0
    if spiking:
        if not spiking_allowed:
            raise UnsupportedLayerError(f"{source}: node '{name}': internal error, spiking read-out")
        v_reset = _arr(node.v_reset) if getattr(node, "v_reset", None) is not None else np.zeros(1)
        if np.any(v_reset != 0):
            raise UnsupportedLayerError(
                f"{source}: node '{name}': v_reset {np.unique(v_reset)[:3].tolist()}: Loihi resets v to 0, so only "
                "v_reset = 0 can be deployed"
            )
        th = _per_row(_arr(node.v_threshold), layer, name, "v_threshold", source)
        if (th <= 0).any() or not np.isfinite(th).all():
            raise UnsupportedLayerError(f"{source}: node '{name}': v_threshold must be finite and > 0")
        threshold = float(th.max())
        if np.ptp(th) > 0:  # fold per-neuron thresholds into the rows: exact (module docstring)
            layer = _scale_rows(layer, threshold / th)
    neuron = ir.Neuron(
        threshold=threshold, current_decay=float(i_decay), voltage_decay=float(v_decay), spiking=spiking, reset="hard"
    )
    return dataclasses.replace(layer, neuron=neuron)


def network_from_nir(
    graph: Any, timesteps: int, dt: float = DEFAULT_DT, source: str = "<NIR graph>", encoding: str = "poisson"
) -> ir.Network:
    """The IR of a NIR graph (module docstring); ``graph`` is a ``nir.NIRGraph``."""
    if not (math.isfinite(dt) and dt > 0):
        raise UnsupportedLayerError(f"--dt {dt}: expected a time step > 0 in seconds")
    order = _chain(graph, source)
    in_node = order[0][1]
    shape = tuple(int(s) for s in np.asarray(in_node.input_type["input"]).ravel())
    if len(shape) == 2:  # (H, W) single-channel images
        shape = (1, *shape)
    if len(shape) not in (1, 3):
        raise UnsupportedLayerError(f"{source}: Input shape {shape}; expected (n,) or (C, H, W)")
    layers: list[ir.Layer] = []
    pending_in: np.ndarray | None = None  # input-side scale for the next synapse (SumPool, Scale on spikes)
    cur = shape
    names: set[str] = set()
    open_syn: int | None = None  # index of a synaptic layer still waiting for its neuron

    def lname(k: str) -> str:
        base, n = f"nir_{k}", 1
        while base in names:
            n += 1
            base = f"nir_{k}_{n}"
        names.add(base)
        return base

    for k, node in order[1:-1]:
        kind = type(node).__name__
        if kind in ("Affine", "Linear", "Conv2d"):
            if open_syn is not None:
                raise UnsupportedLayerError(
                    f"{source}: node '{k}' ({kind}) follows synapse '{order_name(layers[open_syn])}' without a neuron "
                    "between them; each synapse must feed a neuron node"
                )
            w = _arr(node.weight)
            b = _arr(node.bias) if kind != "Linear" and getattr(node, "bias", None) is not None else None
            b = None if b is not None and not b.any() else b  # an all-zero bias (NIR's Conv2d always has one)
            if kind == "Conv2d":
                if w.ndim != 4 or len(cur) != 3:
                    raise UnsupportedLayerError(f"{source}: node '{k}': Conv2d on input {cur}; expected (C, H, W)")
                pad = node.padding
                if isinstance(pad, str):
                    if pad != "valid" and pad != "same":
                        raise UnsupportedLayerError(f"{source}: node '{k}': padding {pad!r}")
                    dil = _pair(node.dilation)
                    tot = [dil[i] * (w.shape[2 + i] - 1) for i in range(2)]
                    if pad == "same" and any(t % 2 for t in tot):
                        raise UnsupportedLayerError(f"{source}: node '{k}': asymmetric 'same' padding")
                    pad = (0, 0) if pad == "valid" else (tot[0] // 2, tot[1] // 2)
                if pending_in is not None:
                    w = w * _per_channel_in(pending_in, w.shape[1], int(node.groups), k, source)[None, :, None, None]
                    pending_in = None
                layer: ir.Layer = ir.Conv(
                    lname(k),
                    w,
                    b,
                    ir.Neuron(1.0),
                    stride=_pair(node.stride),
                    padding=_pair(pad),
                    dilation=_pair(node.dilation),
                    groups=int(node.groups),
                )
            else:
                if w.ndim != 2:
                    raise UnsupportedLayerError(f"{source}: node '{k}': weight of shape {w.shape}; expected (out, in)")
                if len(cur) != 1:
                    raise UnsupportedLayerError(f"{source}: node '{k}': {kind} on input {cur}; flatten it first")
                if pending_in is not None:
                    w = w * np.broadcast_to(pending_in.reshape(-1), (w.shape[1],))[None, :]
                    pending_in = None
                layer = ir.Dense(lname(k), w, b, ir.Neuron(1.0))
            layers.append(layer)
            open_syn = len(layers) - 1
            cur = ir.infer_shapes(ir.Network(ir.Input(shape), tuple(layers), 1, encoding))[-1]
        elif kind in _SPIKING + _READOUT:
            if open_syn is None:
                raise UnsupportedLayerError(
                    f"{source}: node '{k}' ({kind}) is not fed by a synapse (Affine/Linear/Conv2d); a neuron on the "
                    "input or two neurons in a row cannot be deployed"
                )
            layers[open_syn] = _neuron(layers[open_syn], node, k, dt, source, True)
            open_syn = None
        elif kind == "Scale":
            s = _arr(node.scale)
            if open_syn is not None:  # on currents: the synapse's rows
                syn = layers[open_syn]
                layers[open_syn] = _scale_rows(syn, _per_row(s, syn, k, "scale", source))
            else:  # on spikes or the input: the next synapse's columns
                pending_in = (pending_in if pending_in is not None else 1.0) * np.broadcast_to(s, cur)
        elif kind in ("Flatten", "AvgPool2d", "SumPool2d"):
            if open_syn is not None:
                raise UnsupportedLayerError(
                    f"{source}: node '{k}' ({kind}) sits between a synapse and its neuron; it must act on spikes"
                )
            if kind == "Flatten":
                layers.append(ir.Flatten(lname(k)))
                if pending_in is not None:
                    pending_in = np.broadcast_to(pending_in, cur).reshape(-1)
            else:
                if any(_pair(getattr(node, "padding", 0))):
                    raise UnsupportedLayerError(f"{source}: node '{k}': {kind} with padding is not supported")
                kernel, stride = _pair(node.kernel_size), _pair(node.stride)
                if pending_in is not None:
                    raise UnsupportedLayerError(f"{source}: node '{k}': a Scale before pooling is not supported")
                layers.append(ir.AvgPool(lname(k), kernel, stride))
                if kind == "SumPool2d":
                    pending_in = np.full(ir.conv_out_hw(cur[1:], kernel, stride, (0, 0)), kernel[0] * kernel[1])
                    pending_in = np.broadcast_to(pending_in, (cur[0], *pending_in.shape)).copy()
            cur = (
                ir.infer_shapes(ir.Network(ir.Input(shape), tuple(layers), 1, encoding))[-1]
                if any(isinstance(lay, ir.SYNAPTIC) for lay in layers)
                else _prefix_shape(shape, layers)
            )
        else:
            hint = {
                "Delay": "synaptic delays cannot be expressed in a netx CUBA network",
                "Threshold": "a bare threshold (no membrane) is not a CUBA neuron",
                "NIRGraph": "nested subgraphs (e.g. snnTorch's recurrent RLeaky) are not supported",
                "Conv1d": "only 2-d convolutions are supported",
            }.get(kind, "not supported by loihic")
            raise UnsupportedLayerError(f"{source}: node '{k}' ({kind}): {hint}")
    if open_syn is not None:  # a synapse straight into Output: its output summed over time, an integrator read-out
        layers[open_syn] = dataclasses.replace(layers[open_syn], neuron=ir.Neuron(1.0, 1.0, 0.0, spiking=False))
    syn = [lay for lay in layers if isinstance(lay, ir.SYNAPTIC)]
    if not syn:
        raise UnsupportedLayerError(f"{source}: the graph has no Affine, Linear or Conv2d node")
    if any(not lay.neuron.spiking for lay in syn[:-1]):
        raise UnsupportedLayerError(
            f"{source}: layer '{next(lay.name for lay in syn[:-1] if not lay.neuron.spiking)}': a non-spiking neuron "
            "(LI/CubaLI/I) is only deployable as the last layer, the read-out"
        )
    if pending_in is not None:
        raise UnsupportedLayerError(f"{source}: a Scale or SumPool2d after the last synapse has nothing to fold into")
    meta: dict[str, Any] = {"front_end": "nir", "source": source, "dt": dt}
    if graph_meta(graph).get(UNITS_KEY):  # written by loihic export-nir: compile at scale 1, same integers
        meta["fixed_scales"] = {lay.name: 1.0 for lay in syn}
    net = ir.Network(ir.Input(shape), tuple(layers), timesteps=timesteps, encoding=encoding, meta=meta)
    ir.infer_shapes(net)
    return net


def graph_meta(graph: Any) -> dict[str, Any]:
    """The graph's metadata with bytes decoded and numpy scalars as Python values."""
    out = {}
    for k, v in dict(getattr(graph, "metadata", None) or {}).items():
        v = v.decode("utf-8") if isinstance(v, bytes) else v
        out[str(k)] = v.item() if isinstance(v, np.generic) else v
    return out


def order_name(layer: ir.Layer) -> str:
    return layer.name


def _prefix_shape(shape: tuple[int, ...], layers: list[ir.Layer]) -> tuple[int, ...]:
    cur = shape
    for lay in layers:
        if isinstance(lay, ir.Flatten):
            cur = (math.prod(cur),)
        elif isinstance(lay, ir.AvgPool):
            cur = (cur[0], *ir.conv_out_hw(cur[1:], lay.kernel, lay.stride, (0, 0)))
    return cur


def _pair(v: Any) -> tuple[int, int]:
    a = np.asarray(v).ravel()
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


def _per_channel_in(s: np.ndarray, cin_per_group: int, groups: int, node: str, source: str) -> np.ndarray:
    s = np.asarray(s)
    chans = s.reshape(s.shape[0], -1)
    if not (np.ptp(chans, axis=1) == 0).all():
        raise UnsupportedLayerError(f"{source}: node '{node}': an input scale that varies within a channel cannot fold")
    per = chans[:, 0]
    if groups != 1:
        if np.ptp(per) > 0:
            raise UnsupportedLayerError(f"{source}: node '{node}': per-channel input scale into a grouped conv")
        return np.full(cin_per_group, per[0])
    return per
