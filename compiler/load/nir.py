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
  W_nir`` and ``bias = a_m v_leak``.  A synapse bias ``b_nir`` enters I like a constant input: u gains
  ``c = a_m R a_s w_in b_nir`` per step (and converges to ``c / a_s``).  It is deployed exactly, as one more
  weight column ``c`` fed by a source that spikes at every step: for the first layer an always-on input
  channel appended to the input (the netx file's input has one more channel, metadata ``always_on_inputs``;
  loihic's tools append it, a plain Lava user feeds a 1 there at every step), for a later layer one neuron
  appended to the spiking dense layer before it (no input, bias 1.5 thresholds: it fires at every step, in
  aligned and stream timing alike).  Where no such source fits (a conv layer, graded input, a layer after
  pooling) or ``bias="steady"`` is asked for, it is the steady bias ``bias += c / a_s`` (exact once u has
  settled: one step for ``tau_syn = dt``), and the compile notes say so and how many steps it takes;
- IF / I: ``current_decay = 1``, ``voltage_decay = 0``, ``W = diag(R) W_nir``, ``bias = R b_nir``;
- ``vThMant`` comes from ``v_threshold`` (the compiler's scale), ``iDecay = 4096 current_decay``,
  ``vDecay = 4096 voltage_decay``.

One netx layer holds one threshold and one pair of decays.  A threshold that differs across neurons is
folded exactly: neuron i's row of ``W`` (and of ``W_rec``) and its bias are multiplied by ``theta / theta_i``
(``v`` is linear in them and resets to 0, so ``v_i > theta_i`` iff the scaled ``v_i > theta``).  Decays that
differ across neurons cannot be folded and are refused, naming the node and parameter, as are ``v_reset != 0``
(Loihi resets to 0), ``tau < dt`` (the Euler step would overshoot), branches, merges and other cycles.

Recurrence: an ``Affine`` / ``Linear`` whose only input and only output is one spiking neuron node (snnTorch's
RLeaky / RSynaptic: ``lif1.lif`` + ``lif1.w_rec``, flattened or as a nested ``NIRGraph``, which is spliced in)
is that layer's ``weight_rec``, scaled per row like ``W``; its bias adds to the feed-forward bias.  In
discrete time the recurrent input of step t is the neuron's spike of step t - 1 (snnTorch computes
``recurrent(spk)`` with the previous step's spikes), which is Lava RecurrentDense's one-step latency
(compiler/ir.py, spec sec. 7).  Delays: a ``Delay`` node (seconds, per input) before an ``Affine`` / ``Linear``
is that synapse's ``delay``, ``delay / dt`` whole steps per input column, refused by name when not whole or
beyond ``ir.MAX_DELAY`` (62, Lava's DelayDense).  NIR
cannot say "subtractive reset"; its neurons reset to ``v_reset``, and loihic deploys exactly that, so a
model trained with snnTorch's default ``reset_mechanism="subtract"`` behaves differently here (train with
``"zero"`` for an exact match).

Norse (``convention="norse"``, ``loihic compile --from norse``; ``dt`` is then Norse's step, default 1e-3):
Norse's ``to_nir`` (norse 1.1.0) writes ``tau = dt / tau_inv``, i.e. ``dt * tau_true`` (1e-5 s for a 10 ms
neuron at dt = 1e-3), so ``a = dt * tau_inv = dt^2 / tau``; and its LIFCell (norse/torch/functional/lif.py,
``lif_feed_forward_step``) adds its input to the current as a jump, ``i += x``, then
``v += a_m (v_leak - v + i)`` and ``i -= a_s i``: the same as the CubaLIF above with the current's input
gain ``a_s w_in`` replaced by 1, i.e. ``W = diag(a_m R) W_nir``.  LIFBoxCell (LIF), LIBoxCell (LI) and
IAFCell (IF, ``r = 1``) follow NIR's equations with the same ``a``.

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


def _kind(node: Any) -> str:
    return type(node).__name__


def _flatten(graph: Any, source: str, prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The graph's nodes and edges with every nested ``NIRGraph`` (snnTorch's RLeaky / RSynaptic) spliced in:
    its nodes named ``<subgraph>.<node>``, its Input and Output dropped, and an outer edge that names the
    subgraph (or its ``<subgraph>.<input>`` / ``<subgraph>.<output>`` node) rewired to the nodes they touch."""
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    heads: dict[str, list[str]] = {}  # an outer name that stands for a subgraph's entry -> the nodes it feeds
    tails: dict[str, list[str]] = {}  # an outer name that stands for a subgraph's exit -> the nodes that feed it
    for k, node in dict(graph.nodes).items():
        name = prefix + str(k)
        if _kind(node) != "NIRGraph":
            nodes[name] = node
            continue
        sub_nodes, sub_edges = _flatten(node, source, name + ".")
        ins = [n for n, m in sub_nodes.items() if _kind(m) == "Input"]
        outs = [n for n, m in sub_nodes.items() if _kind(m) == "Output"]
        if len(ins) != 1 or len(outs) != 1:
            raise UnsupportedLayerError(
                f"{source}: node '{name}' (NIRGraph): {len(ins)} Input and {len(outs)} Output nodes; a nested "
                "subgraph needs one of each"
            )
        first = [b for a, b in sub_edges if a == ins[0]]
        last = [a for a, b in sub_edges if b == outs[0]]
        heads[name] = heads[ins[0]] = first
        tails[name] = tails[outs[0]] = last
        for n in (ins[0], outs[0]):
            del sub_nodes[n]
        nodes.update(sub_nodes)
        edges += [(a, b) for a, b in sub_edges if a not in (ins[0], outs[0]) and b not in (ins[0], outs[0])]
    for a, b in (tuple(e) for e in graph.edges):
        a, b = prefix + str(a), prefix + str(b)
        edges += [(x, y) for x in tails.get(a, [a]) for y in heads.get(b, [b])]
    return nodes, edges


def _prepare(graph: Any, source: str) -> tuple[list[tuple[str, Any]], dict[str, tuple[str, Any]]]:
    """The chain of nodes from Input to Output (:func:`_chain`) and the recurrent synapses: an Affine/Linear
    whose only input and only output is the same spiking neuron node (snnTorch's ``lif1.w_rec``), keyed by
    that neuron's name.  Nested subgraphs are flattened first (:func:`_flatten`)."""
    nodes, edges = _flatten(graph, source)
    for a, b in edges:
        if a not in nodes or b not in nodes:
            raise UnsupportedLayerError(f"{source}: edge ({a}, {b}) names a node the graph does not have")
    rec: dict[str, tuple[str, Any]] = {}
    for r, node in nodes.items():
        src = [a for a, b in edges if b == r]
        dst = [b for a, b in edges if a == r]
        if _kind(node) in ("Affine", "Linear") and len(src) == 1 and src == dst and src[0] != r:
            n = src[0]
            if _kind(nodes[n]) not in _SPIKING:
                continue  # not a recurrent neuron: _chain names the cycle
            if n in rec:
                raise UnsupportedLayerError(
                    f"{source}: node '{n}': two recurrent synapses ('{rec[n][0]}', '{r}'); one is deployable"
                )
            rec[n] = (r, node)
    drop = {r for r, _ in rec.values()}
    nodes = {k: v for k, v in nodes.items() if k not in drop}
    edges = [(a, b) for a, b in edges if a not in drop and b not in drop]
    return _chain(nodes, edges, source), rec


def _chain(nodes: dict[str, Any], edges: list[tuple[str, str]], source: str) -> list[tuple[str, Any]]:
    """The nodes from Input to Output in order; refuses cycles (other than a recurrent synapse, which
    :func:`_prepare` has taken out), branches and merges."""
    succ: dict[str, list[str]] = {k: [] for k in nodes}
    pred: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        succ[a].append(b)
        pred[b].append(a)
    inputs = [k for k, n in nodes.items() if _kind(n) == "Input"]
    if len(inputs) != 1:
        raise UnsupportedLayerError(f"{source}: {len(inputs)} Input nodes; loihic deploys graphs with one input")
    order, seen, k = [], set(), inputs[0]
    while True:
        if k in seen:
            raise UnsupportedLayerError(
                f"{source}: node '{k}': a cycle that is not a recurrent Affine/Linear from a spiking neuron onto "
                "itself (the recurrence loihic deploys, netx dense_rec)"
            )
        seen.add(k)
        order.append((k, nodes[k]))
        if len(pred[k]) > 1:
            raise UnsupportedLayerError(
                f"{source}: node '{k}': {len(pred[k])} inputs ({', '.join(map(repr, pred[k]))}), a merge loihic "
                "cannot deploy (a neuron's own recurrent Affine/Linear is the one extra input it takes)"
            )
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
    if _kind(order[-1][1]) != "Output":
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
    """Neuron i's rows (feed-forward and recurrent weights, bias) times ``g[i]``; the recurrent weights'
    columns are spikes and stay."""
    shape = (-1,) + (1,) * (layer.weight.ndim - 1)
    bias = np.zeros(layer.weight.shape[0]) if layer.bias is None else layer.bias
    new_bias = bias * g + (0.0 if bias_add is None else bias_add)
    keep_none = layer.bias is None and bias_add is None
    extra = {}
    if isinstance(layer, ir.Dense) and layer.weight_rec is not None:
        extra["weight_rec"] = layer.weight_rec * g[:, None]
    return dataclasses.replace(
        layer, weight=layer.weight * g.reshape(shape), bias=None if keep_none else new_bias, **extra
    )


@dataclasses.dataclass(frozen=True)
class _CurrentBias:
    """A synapse bias that enters a CubaLIF's current (module docstring): ``column`` is what it adds to u per
    step, in the layer's weight units (``a_m R a_s w_in b``, threshold-folded), ``a_s`` the current's decay."""

    column: np.ndarray
    a_s: float


def _neuron(
    layer: ir.Dense | ir.Conv,
    node: Any,
    name: str,
    dt: float,
    source: str,
    spiking_allowed: bool,
    convention: str = "nir",
) -> tuple[ir.Dense | ir.Conv, _CurrentBias | None]:
    """Fold a NIR neuron node into the synapse before it (module docstring).  A CubaLIF's synapse bias is
    returned apart (its caller deploys it); every other bias is the layer's ``bias`` (added to v).
    ``convention`` "norse": the graph was written by Norse's ``to_nir`` (module docstring, "Norse")."""
    kind = type(node).__name__
    norse = convention == "norse"
    dt_tau = dt * dt if norse else dt  # Norse writes tau = dt * tau_true: a = dt / tau_true = dt^2 / tau
    r = _per_row(_arr(node.r), layer, name, "r", source)

    def alpha(tau_attr: str) -> float:
        tau = _arr(getattr(node, tau_attr))
        if (tau <= 0).any() or not np.isfinite(tau).all():
            raise UnsupportedLayerError(f"{source}: node '{name}': {tau_attr} must be finite and > 0")
        a = dt_tau / _uniform(tau, name, tau_attr, source, "decay")
        if a > 1.0 + 1e-12:
            raise UnsupportedLayerError(
                f"{source}: node '{name}': {tau_attr} {dt_tau / a:.6g} s is shorter than dt {dt:g} s (the Euler "
                "step would overshoot); pass the exporter's --dt"
                + (
                    " (a graph from Norse's to_nir, which writes tau = dt * tau_true: compile it with --from norse)"
                    if dt_tau / a < 1e-4 and not norse
                    else ""
                )
            )
        return min(a, 1.0)

    b_nir = layer.bias
    current = None
    if kind in ("LIF", "LI"):
        a = alpha("tau")
        gain, i_decay, v_decay = a * r, 1.0, a
        bias = a * _per_row(_arr(node.v_leak), layer, name, "v_leak", source) + (0 if b_nir is None else gain * b_nir)
    elif kind in ("CubaLIF", "CubaLI"):
        a_s, a_m = alpha("tau_syn"), alpha("tau_mem")
        w_in = _per_row(_arr(node.w_in), layer, name, "w_in", source)
        # NIR: I += a_s (w_in x - I); Norse: i += x, then decays (its "current jump", no a_s factor)
        gain, i_decay, v_decay = (a_m * r * w_in if norse else a_m * r * a_s * w_in), a_s, a_m
        bias = a_m * _per_row(_arr(node.v_leak), layer, name, "v_leak", source)
        if b_nir is not None:
            current = _CurrentBias(np.broadcast_to(gain * b_nir, (layer.weight.shape[0],)).astype(np.float64), a_s)
    elif kind in ("IF", "I"):
        gain, i_decay, v_decay = r, 1.0, 0.0
        bias = 0 if b_nir is None else gain * b_nir
    else:  # pragma: no cover - callers dispatch on the same names
        raise UnsupportedLayerError(f"{source}: node '{name}': {kind} is not a neuron")
    bias = np.broadcast_to(np.asarray(bias, np.float64), (layer.weight.shape[0],))
    g = gain.reshape((-1,) + (1,) * (layer.weight.ndim - 1))
    extra = {}
    if isinstance(layer, ir.Dense) and layer.weight_rec is not None:
        extra["weight_rec"] = layer.weight_rec * gain[:, None]
    layer = dataclasses.replace(
        layer,
        weight=layer.weight * g,
        bias=bias.copy() if np.any(bias) or (b_nir is not None and current is None) else None,
        **extra,
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
            if current is not None:
                current = _CurrentBias(current.column * threshold / th, current.a_s)
    neuron = ir.Neuron(
        threshold=threshold, current_decay=float(i_decay), voltage_decay=float(v_decay), spiking=spiking, reset="hard"
    )
    return dataclasses.replace(layer, neuron=neuron), current


def _delay_steps(node: Any, name: str, dt: float, source: str) -> np.ndarray:
    """A NIR ``Delay`` node's delays (seconds) as whole steps of ``dt``; refuses fractions and > MAX_DELAY."""
    d = _arr(node.delay)
    if not np.isfinite(d).all() or (d < 0).any():
        raise UnsupportedLayerError(f"{source}: node '{name}' (Delay): delays must be finite and >= 0 seconds")
    steps = d / dt
    whole = np.rint(steps)
    bad = np.abs(steps - whole) > 1e-3
    if bad.any():
        raise UnsupportedLayerError(
            f"{source}: node '{name}' (Delay): delay {d[bad].ravel()[0]:.6g} s is {steps[bad].ravel()[0]:.4g} steps of "
            f"dt {dt:g} s; Loihi delays are whole steps"
        )
    if whole.size and whole.max() > ir.MAX_DELAY:
        raise UnsupportedLayerError(
            f"{source}: node '{name}' (Delay): delay {d.max():.6g} s is {int(whole.max())} steps of dt {dt:g} s; "
            f"Loihi (Lava's DelayDense) holds 0..{ir.MAX_DELAY}"
        )
    return whole.astype(np.int64)


def network_from_nir(
    graph: Any,
    timesteps: int,
    dt: float = DEFAULT_DT,
    source: str = "<NIR graph>",
    encoding: str = "poisson",
    bias: str = "exact",
    convention: str = "nir",
) -> ir.Network:
    """The IR of a NIR graph (module docstring); ``graph`` is a ``nir.NIRGraph``.  ``bias``: how a CubaLIF's
    synapse bias is deployed, "exact" (through an always-on source where the network allows one) or "steady"
    (its steady-state voltage bias everywhere); the notes in ``meta["nir_notes"]`` say what was done."""
    if not (math.isfinite(dt) and dt > 0):
        raise UnsupportedLayerError(f"--dt {dt}: expected a time step > 0 in seconds")
    if bias not in BIAS_MODES:
        raise UnsupportedLayerError(f"bias deployment {bias!r}: expected one of {BIAS_MODES}")
    if convention not in CONVENTIONS:
        raise UnsupportedLayerError(f"--from {convention!r}: expected one of {CONVENTIONS}")
    order, rec = _prepare(graph, source)
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
    pending_delay: np.ndarray | None = None  # whole-step delays per input of the next synapse (Delay nodes)
    currents: dict[int, _CurrentBias] = {}  # layer index -> its CubaLIF synapse bias, deployed below

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
                if pending_delay is not None:
                    raise UnsupportedLayerError(
                        f"{source}: node '{k}' (Conv2d) after a Delay node; loihic deploys delays on dense synapses"
                    )
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
                delay = None
                if pending_delay is not None:
                    if pending_delay.size != w.shape[1]:
                        raise UnsupportedLayerError(
                            f"{source}: node '{k}': {pending_delay.size} delays for {w.shape[1]} inputs"
                        )
                    delay = np.broadcast_to(pending_delay.reshape(1, -1), w.shape).copy()
                    pending_delay = None
                layer = ir.Dense(lname(k), w, b, ir.Neuron(1.0), delay=delay)
            layers.append(layer)
            open_syn = len(layers) - 1
            cur = ir.infer_shapes(ir.Network(ir.Input(shape), tuple(layers), 1, encoding))[-1]
        elif kind in _SPIKING + _READOUT:
            if open_syn is None:
                raise UnsupportedLayerError(
                    f"{source}: node '{k}' ({kind}) is not fed by a synapse (Affine/Linear/Conv2d); a neuron on the "
                    "input or two neurons in a row cannot be deployed"
                )
            if k in rec:
                layers[open_syn] = _with_recurrence(layers[open_syn], k, *rec[k], source)
            layers[open_syn], current = _neuron(layers[open_syn], node, k, dt, source, True, convention)
            if current is not None:
                currents[open_syn] = current
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
            if pending_delay is not None:
                raise UnsupportedLayerError(
                    f"{source}: node '{k}' ({kind}) after a Delay node; a Delay must feed an Affine/Linear"
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
        elif kind == "Delay":
            if open_syn is not None or len(cur) != 1:
                raise UnsupportedLayerError(
                    f"{source}: node '{k}' (Delay): a Delay must act on spikes (or the input) of one dimension and "
                    "feed an Affine/Linear (netx delays sit on dense synapses)"
                )
            steps = np.broadcast_to(_delay_steps(node, k, dt, source).reshape(-1), cur)
            pending_delay = steps if pending_delay is None else pending_delay + steps
            if pending_delay.max() > ir.MAX_DELAY:
                raise UnsupportedLayerError(
                    f"{source}: node '{k}' (Delay): delays in a row add up to {int(pending_delay.max())} steps; "
                    f"Loihi holds 0..{ir.MAX_DELAY}"
                )
        else:
            hint = {
                "Threshold": "a bare threshold (no membrane) is not a CUBA neuron",
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
    if pending_delay is not None:
        raise UnsupportedLayerError(f"{source}: a Delay after the last synapse has no synapse to delay")
    fixed = bool(graph_meta(graph).get(UNITS_KEY))  # written by loihic export-nir: scale 1, same integers
    layers, shape, notes, always_on, bias_columns = _deploy_current_biases(
        layers, shape, currents, "steady" if fixed else bias, encoding, dt
    )
    syn = [lay for lay in layers if isinstance(lay, ir.SYNAPTIC)]
    meta: dict[str, Any] = {"front_end": "nir", "source": source, "dt": dt, "nir_notes": notes}
    if bias_columns:  # compiler/passes/quantize.py puts each column's rounding residue into v
        meta["bias_columns"] = bias_columns
    if always_on:
        meta["always_on_inputs"] = always_on
        meta["graph_input_shape"] = [shape[0] - always_on]
    if fixed:
        meta["fixed_scales"] = {lay.name: 1.0 for lay in syn}
    net = ir.Network(ir.Input(shape), tuple(layers), timesteps=timesteps, encoding=encoding, meta=meta)
    ir.infer_shapes(net)
    return net


def _with_recurrence(layer: ir.Layer, neuron: str, r_name: str, r_node: Any, source: str) -> ir.Dense:
    """The synapse of neuron node ``neuron`` with its recurrent Affine/Linear ``r_node`` added: ``weight_rec``
    (the neuron's spikes of step t enter its current at t + 1, as snnTorch's RLeaky / RSynaptic compute and as
    Lava's RecurrentDense delivers them) and the recurrent bias added to the feed-forward one (both are
    constant inputs of the same current)."""
    if not isinstance(layer, ir.Dense):
        raise UnsupportedLayerError(
            f"{source}: node '{neuron}': a recurrent synapse ('{r_name}') on a conv layer; netx dense_rec is dense"
        )
    w = _arr(r_node.weight)
    n = layer.weight.shape[0]
    if w.shape != (n, n):
        raise UnsupportedLayerError(
            f"{source}: node '{r_name}': recurrent weight of shape {w.shape}; expected ({n}, {n}) for '{neuron}'"
        )
    b = _arr(r_node.bias) if _kind(r_node) == "Affine" and getattr(r_node, "bias", None) is not None else None
    bias = layer.bias
    if b is not None and b.any():
        bias = (np.zeros(n) if bias is None else bias) + np.broadcast_to(b.reshape(-1), (n,))
    return dataclasses.replace(layer, weight_rec=w, bias=bias)


BIAS_MODES = ("exact", "steady")
CONVENTIONS = ("nir", "norse")  # how the exporter discretised: NIR's equations, or Norse's to_nir (docstring)
NORSE_DT = 1e-3  # Norse's default step (its to_nir's dt)
ALWAYS_ON_BIAS = 1.5  # an always-on neuron's bias, in units of its layer's threshold: it fires at every step


def _settle_steps(a_s: float, tol: float = 0.01) -> int:
    """Steps until a constant input's share of the current is within ``tol`` of its steady state:
    ``u_b[t] = (1 - (1 - a_s)^(t+1)) b / a_s`` (the CubaLIF current of the module docstring)."""
    return 1 if a_s >= 1 - 1e-12 else max(1, math.ceil(math.log(tol) / math.log(1 - a_s)) - 1)


def _deploy_current_biases(
    layers: list[ir.Layer],
    shape: tuple[int, ...],
    currents: dict[int, _CurrentBias],
    mode: str,
    encoding: str,
    dt: float,
) -> tuple[list[ir.Layer], tuple[int, ...], list[str], int, dict[str, dict[str, Any]]]:
    """Deploy each CubaLIF synapse bias (module docstring, "Biases into the current").  Exact: a source that
    spikes at every step carries it through the synapse as one more weight column (``column``): for the first
    layer an always-on input channel appended to the input, for a later layer one always-on neuron appended
    to the spiking dense layer before it (zero weights in and out of its own layer, bias 1.5 thresholds, so
    that v = bias > threshold at every step, in aligned and stream timing alike).  Where no such source can
    be placed (a conv layer, graded input, a layer after pooling/flatten) or ``mode`` is "steady", the bias is
    deployed as its steady-state voltage bias ``column / a_s``, exact once the current has settled.  Returns
    the layers, the input shape, one note per bias, the number of always-on input channels and the always-on
    columns (their index and ``a_s``, for the quantizer's rounding residue)."""
    notes: list[str] = []
    always_on = 0
    layers = list(layers)
    bias_columns: dict[str, dict[str, Any]] = {}
    syn_idx = [i for i, lay in enumerate(layers) if isinstance(lay, ir.SYNAPTIC)]
    for idx in sorted(currents):
        cb, layer = currents[idx], layers[idx]
        p = syn_idx.index(idx)
        reason = None
        if mode == "steady":
            reason = "asked for (bias='steady')"
        elif not isinstance(layer, ir.Dense):
            reason = "a conv layer takes no always-on column"
        elif p == 0 and (len(shape) != 1 or encoding == "direct"):
            reason = "the input is not a 1-d spike input"
        elif p > 0 and (
            syn_idx[p - 1] != idx - 1 or not isinstance(layers[idx - 1], ir.Dense) or not layers[idx - 1].neuron.spiking
        ):
            reason = "the layer before it is not a spiking dense layer right before it"
        if reason is not None:
            steady, settle = cb.column / cb.a_s, _settle_steps(cb.a_s)
            base = np.zeros(layer.weight.shape[0]) if layer.bias is None else layer.bias
            layers[idx] = dataclasses.replace(layer, bias=base + steady)
            notes.append(
                f"layer '{layer.name}': its Affine bias (which enters the CubaLIF current) is deployed as the "
                f"steady-state voltage bias, {reason}: the bias part of the current starts at {cb.a_s:.3g} of its "
                f"steady value and is within 1% of it after {settle} steps ({settle * dt:.3g} s); until then the "
                "membrane gets more than the graph's equations give it"
            )
            continue
        bias_columns[layer.name] = {"column": int(layer.weight.shape[1]), "a_s": cb.a_s}
        delay = None if layer.delay is None else np.concatenate([layer.delay, np.zeros((layer.delay.shape[0], 1))], 1)
        layers[idx] = dataclasses.replace(
            layer, weight=np.concatenate([layer.weight, cb.column[:, None]], 1), delay=delay
        )
        if p == 0:
            shape = (shape[0] + 1,)
            always_on += 1
            notes.append(
                f"layer '{layer.name}': its Affine bias enters the CubaLIF current exactly, through an always-on "
                f"input channel: the file's input has {shape[0]} channels, the graph's {shape[0] - 1}; loihic's "
                f"tools append channel {shape[0] - 1} (a spike at every step) themselves, a plain Lava user feeds "
                "a 1 there at every step"
            )
        else:
            prev = layers[idx - 1]
            n = prev.weight.shape[0]
            pb = np.zeros(n) if prev.bias is None else prev.bias
            wr = None if prev.weight_rec is None else np.pad(prev.weight_rec, ((0, 1), (0, 1)))
            pd = None if prev.delay is None else np.pad(prev.delay, ((0, 1), (0, 0)))
            layers[idx - 1] = dataclasses.replace(
                prev,
                weight=np.pad(prev.weight, ((0, 1), (0, 0))),
                bias=np.append(pb, ALWAYS_ON_BIAS * prev.neuron.threshold),
                weight_rec=wr,
                delay=pd,
            )
            notes.append(
                f"layer '{layer.name}': its Affine bias enters the CubaLIF current exactly, through an always-on "
                f"neuron appended to layer '{prev.name}' (neuron {n}: no input, fires at every step)"
            )
    return layers, shape, notes, always_on, bias_columns


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
