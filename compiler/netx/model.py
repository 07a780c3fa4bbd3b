"""What a netx file means to Lava, as exact integers: the model :func:`loihic.compiler.netx.read.read_netx` returns.

Frozen dataclasses, one per layer kind (:class:`NxInput`, :class:`NxDense`, :class:`NxConv`, :class:`NxFlatten`)
and one per neuron kind (:class:`NxNeuron`, CUBA-LIF; :class:`NxSigmaDelta`, Delta / SigmaDelta / Sigma), in
:class:`NetxModel`.  The emulator dispatches on ``neuron.kind``; ``neuron.graded`` says whether the next
synapse takes graded messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from loihic.compiler.netx import schema


@dataclass(frozen=True)
class NxNeuron:
    """A CUBA-LIF neuron group (netx 'CUBA' / 'LOIHI'; :mod:`loihic.deploy.emulator.lif`): binary spikes."""

    kind: ClassVar[str] = "lif"  # what the emulator dispatches on (NxSigmaDelta.kind for sigma-delta)
    graded: ClassVar[bool] = False  # binary spikes: the next synapse sums the weights of the spiking inputs

    v_th_mant: int  # spike iff v > v_th_mant << 6
    i_decay: int  # u <- rs0(u * (4096 - i_decay), 12) + (a << 6)
    v_decay: int  # v <- rs0(v * (4096 - v_decay), 12) + u + (bias << 6)
    bias: np.ndarray | None  # int64 per neuron, in the layer's (C, H, W) / (n,) order


SIGMA_DELTA_KINDS = ("delta", "sigma_delta", "sigma")  # Lava's Delta, SigmaDelta, Sigma (proc/sdn/process.py)


@dataclass(frozen=True)
class NxSigmaDelta:
    """A sigma-delta neuron group (netx 'SDNN'; :mod:`loihic.deploy.emulator.sigma_delta` has the equations):
    graded messages.  ``kind`` is what netx builds (hdf5.py get_neuron_params lines 164-189): ``'delta'`` for
    an 'input' layer (the source's integers, delta-encoded), ``'sigma'`` for a group with 'sigma_output'
    (sends its running sum), else ``'sigma_delta'`` (ReLU).  The next Dense / Conv takes the messages as
    graded input (``num_message_bits = 16``)."""

    graded: ClassVar[bool] = True

    kind: str  # 'delta' | 'sigma_delta' | 'sigma'
    v_th_mant: int  # send iff |d| >= v_th_mant << 12 (delta, sigma_delta); 0 for sigma (not read by netx)
    bias: np.ndarray | None  # int64 per neuron, (C, H, W) / (n,) order (sigma_delta only): y = sigma + bias << 12
    relu: bool = True  # netx always runs ReLU (it never passes act_mode); only sigma_delta applies it
    # spike_exp = state_exp = 6 and 16-bit messages are netx's constants (schema.SPIKE_EXP, STATE_EXP,
    # SDNN_MESSAGE_BITS): loihic refuses 'messageBits' and runs Network with its default spike_exp

    def __post_init__(self) -> None:
        if self.kind not in SIGMA_DELTA_KINDS:
            raise ValueError(f"sigma-delta kind {self.kind!r} is not one of {SIGMA_DELTA_KINDS}")
        if not 0 <= self.v_th_mant <= schema.SDNN_VTH_MANT_MAX:
            raise ValueError(f"vThMant {self.v_th_mant} outside [0, {schema.SDNN_VTH_MANT_MAX}]")
        if self.bias is not None and self.kind != "sigma_delta":
            raise ValueError(f"a {self.kind} neuron has no bias (Lava's {self.kind.capitalize()} takes none)")


NxNeuronGroup = NxNeuron | NxSigmaDelta


@dataclass(frozen=True)
class NxInput:
    shape: tuple[int, ...]  # (C, H, W) or (n,)
    neuron: NxNeuronGroup | None  # an input layer's neuron (LIF, or a sigma-delta Delta) is driven by the source
    declared: bool = True  # the file has an 'input' layer; False: shape from the first dense, or the caller's


@dataclass(frozen=True)
class NxDense:
    weight: np.ndarray  # int64 (out, in): the matrix Lava's Dense multiplies with
    weight_exp: int  # a = (W @ s) >> -weight_exp (or << weight_exp); 0 for loihic files
    neuron: NxNeuronGroup
    shape: tuple[int, ...]  # (out,)
    # 'dense_rec' (Lava RecurrentDense): int64 (out, out), the layer's spikes of step t enter its input at t + 1,
    # shifted by the same weight_exp (netx stacks weight and weight_rec for one exponent); None: feed-forward
    weight_rec: np.ndarray | None = None
    # 'delay' (Lava DelayDense): int64 (out, in) in [0, 62], synapse (i, j) delivers input j's spike d_ij steps
    # later than a plain Dense would; None: no delays (a plain Dense)
    delay: np.ndarray | None = None

    @property
    def temporal(self) -> bool:
        """Recurrent or delayed: its synaptic input depends on more than the layer below's current step."""
        return self.weight_rec is not None or self.delay is not None


@dataclass(frozen=True)
class NxConv:
    weight: np.ndarray  # int64 (out, in/groups, kH, kW), torch layout
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    neuron: NxNeuronGroup
    shape: tuple[int, ...]  # (C, H, W) output


@dataclass(frozen=True)
class NxFlatten:
    shape: tuple[int, ...]  # (n,)


NxLayer = NxDense | NxConv | NxFlatten


@dataclass(frozen=True)
class NetxModel:
    path: str
    input: NxInput
    layers: tuple[NxLayer, ...]
    meta: dict[str, Any] = field(default_factory=dict)  # loihic metadata, {} for foreign files

    @property
    def neuron_layers(self) -> list[NxDense | NxConv]:
        return [lay for lay in self.layers if not isinstance(lay, NxFlatten)]

    @property
    def neuron_layer_index(self) -> list[int]:
        """The netx layer number (``layer/<i>`` in the file) of each neuron layer, the input neuron first if
        there is one: the one layer numbering of every loihic output (compile table, notes, overflow monitor,
        verify, report)."""
        first = 1 if self.input.declared else 0  # layer/0 is the input layer when the file declares one
        head = [0] if self.has_input_neuron else []
        return head + [first + i for i, lay in enumerate(self.layers) if not isinstance(lay, NxFlatten)]

    @property
    def temporal(self) -> bool:
        """A recurrent ('dense_rec') or delayed ('delay') layer anywhere: state crosses a netx reset (Lava resets u
        and v, not the synapses' buffers), so such a file runs each sample from a fresh network."""
        return any(isinstance(lay, NxDense) and lay.temporal for lay in self.layers)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.neuron_layers[-1].shape

    @property
    def has_input_neuron(self) -> bool:
        return self.input.neuron is not None

    @property
    def is_sigma_delta(self) -> bool:
        """Every neuron group is sigma-delta (netx 'SDNN'); the reader refuses files that mix kinds."""
        groups = [lay.neuron for lay in self.neuron_layers] + [self.input.neuron]
        return any(isinstance(n, NxSigmaDelta) for n in groups)

    @property
    def netx_input_shape(self) -> tuple[int, ...] | None:
        """``netx.hdf5.Network(input_shape=...)``, in Lava's (x, y, f) = (W, H, C) order: set for a conv-first
        file without an 'input' layer, which netx cannot size by itself (hdf5.py _create: "Input shape could
        not be inferred"); None for every other file, whose input shape netx reads from the file."""
        if self.input.declared or not self.layers or not isinstance(self.layers[0], NxConv):
            return None
        return schema.lava_order(self.input.shape)
