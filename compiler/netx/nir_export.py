"""A netx file (its exact Loihi integers, :class:`~loihic.compiler.netx.read.NetxModel`) -> a NIR graph.

Units: the graph is written in *integer units*.  Lava computes ``u <- u (4096 - iDecay) / 4096 + (W s) << 6``,
``v <- v (4096 - vDecay) / 4096 + u + (bias << 6)``, spike iff ``v > vThMant << 6``; every term carries the
same ``<< 6``, so dropping it leaves weights ``W``, biases ``bias`` and thresholds ``vThMant`` as plain
numbers.  With ``a_s = iDecay / 4096`` and ``a_m = vDecay / 4096`` and NIR's Euler step at ``dt``
(``compiler/load/nir.py``), each neuron layer becomes:

- ``iDecay = 4096`` (no current memory), ``vDecay = 0``: ``Affine(W, bias)`` -> ``IF(r = 1, v_threshold =
  vThMant)``, i.e. ``v[t] = v[t-1] + W s[t] + bias``;
- ``iDecay = 4096``, ``vDecay > 0``: ``Affine(W, bias)`` -> ``LIF(tau = dt / a_m, r = 1 / a_m, v_leak = 0)``,
  i.e. ``v[t] = (1 - a_m) v[t-1] + W s[t] + bias``;
- ``iDecay < 4096``, ``vDecay > 0``: ``Linear(W)`` -> ``CubaLIF(tau_syn = dt / a_s, w_in = 1 / a_s, tau_mem =
  dt / a_m, r = 1 / a_m, v_leak = bias / a_m)``, i.e. ``u[t] = (1 - a_s) u[t-1] + W s[t]``, ``v[t] = (1 - a_m)
  v[t-1] + u[t] + bias``;
- a layer that never fires (``vThMant`` beyond reach, the read-out) becomes ``I`` / ``LI`` / ``CubaLI``; netx's
  default neuron-less dense layer (``iDecay = 0``, ``vDecay = 4096``: ``v = sum of W s``) becomes ``I(r = 1)``.

Conv layers use ``Conv2d`` (bias per channel), flatten ``Flatten``.  This reproduces Lava exactly except for
what NIR cannot say: Lava rounds the decayed u and v toward zero each step (exact when ``iDecay = 4096`` and
``vDecay = 0``, as in converted networks) and keeps u and v within 24 bits (loihic's compiler guarantees that
no state reaches the limit).  The graph's metadata records ``loihic_integer_units``, T and the encoding, and
loihic's NIR reader then compiles at scale 1, so netx -> NIR -> netx gives the same integers.  Not
expressible, and refused: an input layer with a neuron, ``iDecay < 4096`` with ``vDecay = 0`` (CubaLIF needs a
finite ``tau_mem``), a conv bias that differs within a channel, and sigma-delta ('SDNN') files: NIR 1.0 has no
sigma-delta neuron and no ReLU, so no mapping of a Delta / SigmaDelta / Sigma layer would be honest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from loihic.compiler.errors import InputError, NetxFormatError, UnsupportedLayerError
from loihic.compiler.fileio import check_output, write_atomically
from loihic.compiler.netx import schema
from loihic.compiler.netx.read import NetxModel, NxConv, NxDense, NxFlatten, read_netx

UNITS_KEY = "loihic_integer_units"


def _neuron_node(nir: Any, lay: NxDense | NxConv, n: tuple[int, ...], dt: float, where: str) -> tuple[Any, bool]:
    """(NIR neuron node, whether the synapse carries the bias)."""
    ne = lay.neuron
    never = ne.v_th_mant >= schema.VTH_MANT_NEVER
    full = np.ones(n)
    th = np.full(n, float(ne.v_th_mant))
    if ne.i_decay == 0 and ne.v_decay == schema.DECAY_UNITY and never:  # netx's neuron-less dense layer
        if ne.bias is not None and np.any(ne.bias):
            raise NetxFormatError(f"{where}: a neuron-less layer with bias has no NIR equivalent")
        return nir.I(r=full), False
    if ne.i_decay == schema.DECAY_UNITY:
        if ne.v_decay == 0:
            return (nir.I(r=full) if never else nir.IF(r=full, v_threshold=th)), True
        a_m = ne.v_decay / schema.DECAY_UNITY
        kw = {"tau": np.full(n, dt / a_m), "r": np.full(n, 1 / a_m), "v_leak": np.zeros(n)}
        return (nir.LI(**kw) if never else nir.LIF(**kw, v_threshold=th)), True
    if ne.i_decay == 0 or ne.v_decay == 0:
        raise NetxFormatError(
            f"{where}: iDecay {ne.i_decay} with vDecay {ne.v_decay} has no NIR equivalent (CubaLIF needs finite "
            "tau_syn and tau_mem)"
        )
    a_s, a_m = ne.i_decay / schema.DECAY_UNITY, ne.v_decay / schema.DECAY_UNITY
    bias = np.zeros(n) if ne.bias is None else ne.bias.reshape(n).astype(np.float64)
    kw = {
        "tau_syn": np.full(n, dt / a_s),
        "tau_mem": np.full(n, dt / a_m),
        "r": np.full(n, 1 / a_m),
        "v_leak": bias / a_m,
        "w_in": np.full(n, 1 / a_s),
    }
    return (nir.CubaLI(**kw) if never else nir.CubaLIF(**kw, v_threshold=th)), False


def netx_to_nir(model: NetxModel, dt: float = 1e-4) -> Any:
    """The NIR graph of a netx model (module docstring)."""
    import nir

    if model.has_input_neuron:
        raise NetxFormatError(f"{model.path}: an input layer with a neuron has no NIR equivalent")
    if model.meta.get("always_on_inputs"):
        raise NetxFormatError(
            f"{model.path}: its input has {model.meta['always_on_inputs']} always-on channel(s) carrying a NIR "
            "graph's CubaLIF biases (compiler/load/nir.py); a NIR graph of it would need them fed. Export a file "
            "compiled with --nir-bias steady"
        )
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(model.input.shape)})}
    edges, prev, shape = [], "input", tuple(model.input.shape)
    for i, lay in enumerate(model.layers):
        where = f"{model.path}: layer {i}"
        if isinstance(lay, NxFlatten):
            nodes[f"{i}_flatten"] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
            edges.append((prev, f"{i}_flatten"))
            prev, shape = f"{i}_flatten", lay.shape
            continue
        if isinstance(lay, NxDense) and lay.temporal:
            what = "recurrent ('dense_rec')" if lay.weight_rec is not None else "delayed ('delay')"
            raise NetxFormatError(
                f"{where}: a {what} layer is not supported by export-nir yet (no recurrent Affine edge or Delay "
                "node is written)"
            )
        n = tuple(lay.shape)
        neuron, synapse_bias = _neuron_node(nir, lay, n, dt, where)
        bias = lay.neuron.bias
        w = lay.weight.astype(np.float64)
        if isinstance(lay, NxDense):
            b = None if bias is None or not synapse_bias else bias.astype(np.float64)
            syn = nir.Affine(weight=w, bias=b) if b is not None else nir.Linear(weight=w)
        else:
            b = np.zeros(n[0])
            if bias is not None and synapse_bias:
                per = bias.reshape(n[0], -1)
                if np.ptp(per, axis=1).any():
                    raise NetxFormatError(
                        f"{where}: conv bias differs within a channel; NIR's Conv2d bias is per channel"
                    )
                b = per[:, 0].astype(np.float64)
            syn = nir.Conv2d(
                input_shape=np.array(shape[1:]),
                weight=w,
                stride=np.array(lay.stride),
                padding=np.array(lay.padding),
                dilation=np.array(lay.dilation),
                groups=lay.groups,
                bias=b,
            )
        nodes[f"{i}_synapse"], nodes[f"{i}_neuron"] = syn, neuron
        edges += [(prev, f"{i}_synapse"), (f"{i}_synapse", f"{i}_neuron")]
        prev, shape = f"{i}_neuron", n
    nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    edges.append((prev, "output"))
    meta = {
        UNITS_KEY: 1,
        "dt": float(dt),
        "loihic_timesteps": int(model.meta.get("timesteps") or 0),
        "loihic_encoding": str(model.meta.get("encoding", "poisson")),
        "source": "loihic export-nir",
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)


def export_nir(net: str | os.PathLike, output: str | os.PathLike, dt: float = 1e-4, force: bool = False) -> Path:
    """netx file -> NIR graph file in integer units (:func:`netx_to_nir`), written atomically."""
    import nir

    out = check_output(output, force)
    if not (np.isfinite(dt) and dt > 0):
        raise InputError(f"--dt {dt}: expected a time step > 0 in seconds")
    model = read_netx(net, sigma_delta=True)
    if model.is_sigma_delta:
        raise UnsupportedLayerError(
            f"{net}: layer {model.neuron_layer_index[0]}: neuron type '{schema.SDNN_TYPE}' (sigma-delta) has no NIR "
            "equivalent: NIR 1.0's neurons (IF, LIF, CubaLIF, I, LI, CubaLI, Threshold) integrate or send binary "
            "spikes, and it has neither a ReLU nor a node that sends a graded change once it passes a threshold, "
            "so no NIR graph computes a Delta / SigmaDelta / Sigma layer; export-nir writes CUBA LIF files"
        )
    graph = netx_to_nir(model, dt)
    return write_atomically(out, lambda tmp: nir.write(tmp, graph), ".nir")
