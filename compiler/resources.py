"""What a netx network costs on Loihi 2, and what a Loihi 2 run would reject: estimates, stated as such.

Per neuron layer: neurons; synapses (dense: one per weight; conv: one per connected (input, output) pair,
counted exactly over the padded geometry); stored weights and synaptic memory in bits at the precision netx
gives the layer (dense: netx's ``num_weight_bits`` from ``optimize_weight_bits``; conv: 8 bits, netx writes
conv weights unchanged); and an *estimate* of Loihi 2 neuro cores.

Cited limits (Intel Labs, "Taking Neuromorphic Computing to the Next Level with Loihi 2", technology brief,
2021): 128 neuro cores per chip, up to 1 million neurons and up to 120 million synapses per chip.  Intel
publishes no per-core maxima for Lava-compiled networks; the per-core figures used here are those chip maxima
divided by the 128 cores (8,192 neurons, 937,500 synapses per core).  The core count of a layer is
``max(ceil(neurons / 8192), ceil(synapses / 937500))``: an *estimate*, since the real mapping depends on
Intel's (non-public) compiler, the synapse encoding and the neuron model's memory.

Energy proxy: 23.6 pJ per synaptic operation, the minimum synaptic spike-op energy measured on Loihi (the
first chip, 14 nm) by Davies et al., "Loihi: A Neuromorphic Manycore Processor with On-Chip Learning", IEEE
Micro 38(1), 2018, Table 2.  No per-operation figure is published for Loihi 2, so the product of that figure
and the synaptic operations the emulator measures is a *proxy*, not a prediction of a Loihi 2 measurement.

Hardware readiness (:func:`hardware_notes`): what a Loihi 2 run would reject or compute differently from the
CPU simulator.  ``iDecay`` / ``vDecay`` = 4096 (no memory / full decay) is legal in Lava's CPU models, but the
hardware register holds 12 bits (0..4095, spec 2.1), so 4095 is the nearest legal value; netx's per-sample
reset interval (the sample length T) must be a power of two on Loihi 2 (lava-dl's netx MNIST tutorial, which
pads samples to a power of two for that reason); a layer estimated above one chip's 128 cores.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from loihic.compiler import ir
from loihic.compiler.netx import schema
from loihic.compiler.netx.read import NetxModel, NxConv, NxDense, NxFlatten, optimize_weight_bits

CORES_PER_CHIP = 128
NEURONS_PER_CHIP = 1 << 20
SYNAPSES_PER_CHIP = 120_000_000
NEURONS_PER_CORE = NEURONS_PER_CHIP // CORES_PER_CHIP  # 8192, an average, not a published per-core limit
SYNAPSES_PER_CORE = SYNAPSES_PER_CHIP // CORES_PER_CHIP  # 937,500
LIMITS_SOURCE = (
    "Intel Labs, 'Taking Neuromorphic Computing to the Next Level with Loihi 2', technology brief (2021): 128 neuro "
    "cores, up to 1M neurons and 120M synapses per chip; per-core figures are those maxima / 128 (an estimate)"
)
ENERGY_PER_SYNOP_J = 23.6e-12
ENERGY_SOURCE = (
    "Davies et al., 'Loihi: A Neuromorphic Manycore Processor with On-Chip Learning', IEEE Micro 38(1), 2018, "
    "Table 2: 23.6 pJ minimum per synaptic spike op (Loihi 1); a proxy for Loihi 2"
)
HW_DECAY_MAX = schema.DECAY_UNITY - 1  # 4095: the 12-bit hardware field


def _conv_connections(lay: NxConv | ir.Conv, in_shape: tuple[int, ...]) -> int:
    """Exact count of (input neuron, output neuron) pairs joined by a kernel tap inside the padded input."""
    import torch
    import torch.nn.functional as F

    cout, cin_g, kh, kw = lay.weight.shape
    ones = torch.ones((1, in_shape[0], *in_shape[1:]), dtype=torch.float64)
    k = torch.ones((cout, cin_g, kh, kw), dtype=torch.float64)
    return int(
        F.conv2d(ones, k, stride=lay.stride, padding=lay.padding, dilation=lay.dilation, groups=lay.groups).sum()
    )


def layer_resources(model: NetxModel) -> list[dict[str, Any]]:
    """One row per neuron layer; ``layer`` is the netx layer number (``NetxModel.neuron_layer_index``)."""
    rows, shape = [], tuple(model.input.shape)
    first = 1 if model.input.declared else 0
    for i, lay in enumerate(model.layers, start=first):
        if isinstance(lay, NxFlatten):
            shape = lay.shape
            continue
        neurons = int(np.prod(lay.shape))
        if isinstance(lay, NxDense):
            # a recurrent layer's synapses are its weight and its weight_rec (two synapse blocks on Lava), one
            # weight exponent for both; a delayed synapse is still one synapse (its delay rides along)
            w = lay.weight if lay.weight_rec is None else np.hstack([lay.weight, lay.weight_rec])
            synapses = int(w.size)
            nonzero = int(np.count_nonzero(w))
            _, bits, _ = optimize_weight_bits(w)
            stored = int(w.size)
            macs = int(w.size)
        else:
            synapses = _conv_connections(lay, shape)
            nonzero = synapses  # weight sharing: a zero kernel tap still occupies its connection on a core
            bits, stored, macs = 8, int(lay.weight.size), synapses
        cores = max(math.ceil(neurons / NEURONS_PER_CORE), math.ceil(synapses / SYNAPSES_PER_CORE))
        rows.append(
            {
                "layer": i,
                "type": _kind(lay),
                "shape": list(lay.shape),
                "neurons": neurons,
                "synapses": synapses,
                "nonzero_synapses": nonzero,
                "weight_bits": int(bits),
                "stored_weights": stored,
                "synaptic_memory_bits": int(synapses * bits),
                "ann_macs": macs,
                "loihi2_cores_estimate": int(cores),
            }
        )
        shape = tuple(lay.shape)
    return rows


def _kind(lay: NxDense | NxConv) -> str:
    if isinstance(lay, NxConv):
        return "conv"
    return "dense_rec" if lay.weight_rec is not None else ("dense+delay" if lay.delay is not None else "dense")


def network_macs(net: ir.Network) -> list[dict[str, Any]]:
    """Multiply-accumulates per inference of every synaptic layer of an IR network as written (before the
    compiler folds average pooling into the next layer, which widens its kernel: the ANN a user trained).
    Dense: one per weight; conv: one per (input, output) pair joined by a tap inside the padded input, as
    :func:`layer_resources` counts a netx conv.  Pooling, BatchNorm and biases are additions, not counted."""
    rows = []
    shapes = ir.infer_shapes(net)
    for i, lay in enumerate(net.layers):
        if not isinstance(lay, ir.SYNAPTIC):
            continue
        in_shape = tuple(net.input.shape) if i == 0 else tuple(shapes[i - 1])
        macs = int(np.size(lay.weight)) if isinstance(lay, ir.Dense) else _conv_connections(lay, in_shape)
        rows.append({"name": lay.name, "type": "dense" if isinstance(lay, ir.Dense) else "conv", "macs": macs})
    return rows


def synops_per_inference(model: NetxModel, layer_spikes: list[np.ndarray], x: np.ndarray) -> list[float]:
    """Mean synaptic operations per sample and neuron layer, from recorded spikes: every nonzero input (a spike,
    or a graded input value) times the nonzero weights it reaches.  ``layer_spikes`` as the emulator records
    them (input neuron first when the file has one, then every neuron layer); ``x`` the network's input."""
    import torch
    import torch.nn.functional as F

    neuron_spikes = layer_spikes[1:] if model.has_input_neuron else layer_spikes
    src = (layer_spikes[0] if model.has_input_neuron else x) != 0
    out, k = [], 0
    for lay in model.layers:
        if isinstance(lay, NxFlatten):
            src = src.reshape(src.shape[0], -1, src.shape[-1])
            continue
        counts = src.sum(-1).astype(np.float64)  # (N, *in) active steps per input neuron
        if isinstance(lay, NxDense):
            fan_out = np.count_nonzero(lay.weight, axis=0).astype(np.float64)  # (in,)
            ops = counts.reshape(len(counts), -1) @ fan_out
            if lay.weight_rec is not None:  # the layer's own spikes through its recurrent synapses
                own = (neuron_spikes[k] != 0).sum(-1).astype(np.float64).reshape(len(counts), -1)
                ops = ops + own @ np.count_nonzero(lay.weight_rec, axis=0).astype(np.float64)
        else:
            mask = torch.as_tensor((lay.weight != 0).astype(np.float64))
            # ops = sum over outputs of the active inputs they connect to = conv of the counts with the mask
            y = F.conv2d(
                torch.as_tensor(counts),
                mask,
                stride=lay.stride,
                padding=lay.padding,
                dilation=lay.dilation,
                groups=lay.groups,
            )
            ops = y.reshape(len(counts), -1).sum(1).numpy()
        out.append(float(np.mean(ops)))
        src = neuron_spikes[k] != 0
        k += 1
    return out


def hardware_notes(model: NetxModel, timesteps: int | None) -> list[dict[str, Any]]:
    """What Loihi 2 hardware would reject or compute differently (module docstring), per layer."""
    notes = []
    first = 1 if model.input.declared else 0  # netx layer numbers, as NetxModel.neuron_layer_index
    layers = [(i, lay) for i, lay in enumerate(model.layers, start=first) if not isinstance(lay, NxFlatten)]
    if model.has_input_neuron:
        layers.insert(0, (0, model.input))
    for i, lay in layers:
        ne = lay.neuron
        if not hasattr(ne, "i_decay"):  # a sigma-delta neuron has no decays
            continue
        for field, value in (("iDecay", ne.i_decay), ("vDecay", ne.v_decay)):
            if value > HW_DECAY_MAX:
                notes.append(
                    {
                        "layer": i,
                        "field": field,
                        "value": int(value),
                        "nearest_legal": HW_DECAY_MAX,
                        "why": f"layer {i}: {field} = {value}: Loihi 2's decay register holds 12 bits "
                        f"(0..{HW_DECAY_MAX}); the CPU simulator accepts {value}",
                    }
                )
    if timesteps and timesteps & (timesteps - 1) and not model.is_sigma_delta:  # netx never resets an SDNN
        legal = 1 << math.ceil(math.log2(timesteps))
        notes.append(
            {
                "layer": None,
                "field": "timesteps",
                "value": int(timesteps),
                "nearest_legal": legal,
                "why": f"T = {timesteps}: netx's per-sample reset interval must be a power of two on Loihi 2 (pad "
                f"samples to T = {legal})",
            }
        )
    for row in layer_resources(model):
        if row["loihi2_cores_estimate"] > CORES_PER_CHIP:
            notes.append(
                {
                    "layer": row["layer"],
                    "field": "cores",
                    "value": row["loihi2_cores_estimate"],
                    "nearest_legal": CORES_PER_CHIP,
                    "why": f"layer {row['layer']}: about {row['loihi2_cores_estimate']} cores, more than one chip's "
                    f"{CORES_PER_CHIP} (estimate)",
                }
            )
    return notes
