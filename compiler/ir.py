"""The intermediate representation: what a network is, between a checkpoint and a netx file.

A :class:`Network` is an :class:`Input` plus an ordered tuple of layers.  Synaptic layers
(:class:`Dense`, :class:`Conv`) carry their neuron (:class:`Neuron`): Loihi puts one compartment
behind every synapse block, exactly as netx does.  :class:`AvgPool`, :class:`BatchNorm` and
:class:`Dropout` exist only before lowering; the writer accepts Input, Dense, Conv and Flatten, each synaptic layer
quantized (:class:`Quant`).

Every dataclass is frozen and validates itself; passes build new objects with
``dataclasses.replace`` and never mutate.  Arrays are stored read-only.

Neuron model (float, per step t, before quantization; units are those of the weights times the
input, i.e. a real input of 1.0 or one spike contributes ``w``)::

    u[t] = (1 - current_decay) * u[t-1] + sum_i w_i s_i[t]          # synaptic current
    v[t] = (1 - voltage_decay) * v[t-1] + u[t] + bias                # membrane voltage
    s[t] = v[t] > threshold ;  v[t] = 0 where s[t]                   # hard reset (Lava LIF)

``current_decay = 1`` (no current memory) makes ``v`` integrate ``sum w s`` directly, the neuron of
Datta et al. eq. 2 and Jiang & Zhang eqs. 1-3 with ``voltage_decay = 1 - lambda``.  A non-spiking
layer (``spiking=False``) is the integrator readout of Datta et al. eqs. 4-5, read from ``v``.

A sigma-delta network (:class:`SigmaDelta` neurons on every synaptic layer, an :class:`Input` with a
``delta`` threshold) means its ReLU ANN: the values it computes once its message stream has settled
(:class:`SigmaDelta` has the equations).  One network holds one kind of neuron.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loihic.compiler.errors import LoihicError, UnsupportedLayerError

RESETS = ("hard", "soft")


def _frozen_array(a: Any, name: str, ndim: int | tuple[int, ...]) -> np.ndarray:
    arr = np.array(a, copy=True)
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in ndims:
        raise LoihicError(f"{name}: expected {ndims} dimensions, got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = arr[~np.isfinite(arr)].ravel()[0]
        raise LoihicError(f"{name}: contains non-finite value {bad}")
    arr.setflags(write=False)
    return arr


def _pair(v: int | tuple[int, int] | list[int], name: str, minimum: int) -> tuple[int, int]:
    pair = (int(v), int(v)) if np.isscalar(v) else tuple(int(x) for x in v)
    if len(pair) != 2 or min(pair) < minimum:
        raise LoihicError(f"{name}: expected an int or (H, W) pair >= {minimum}, got {v}")
    return pair  # type: ignore[return-value]


@dataclass(frozen=True)
class Neuron:
    """CUBA LIF parameters in float units (see the module docstring for the update equations)."""

    threshold: float  # v_th, in weight units; ignored when spiking is False
    current_decay: float = 1.0  # fraction of u lost per step, [0, 1]; netx iDecay = 4096 * this
    voltage_decay: float = 0.0  # fraction of v lost per step, [0, 1]; netx vDecay = 4096 * this
    spiking: bool = True  # False: integrator readout that never fires (read from v)
    reset: str = "hard"  # "hard": v <- 0 (Lava LIF); "soft": v <- v - threshold (not deployable)

    def __post_init__(self) -> None:
        for name in ("current_decay", "voltage_decay"):
            value = getattr(self, name)
            if not (np.isfinite(value) and 0.0 <= value <= 1.0):
                raise LoihicError(f"neuron {name} {value} is outside [0, 1]")
        if self.spiking and not (np.isfinite(self.threshold) and self.threshold > 0):
            raise LoihicError(f"neuron threshold {self.threshold} must be finite and > 0")
        if self.reset not in RESETS:
            raise LoihicError(f"neuron reset '{self.reset}' is not one of {RESETS}")


SIGMA_DELTA_OUTPUTS = ("sigma_delta", "sigma")


@dataclass(frozen=True)
class SigmaDelta:
    """A sigma-delta neuron (Lava's SigmaDelta, or Sigma for a read-out), in float activation units.

    Float semantics, the ReLU ANN it computes once its input stream has settled (per neuron, ``a_in`` the
    previous layer's activations, ``x`` for the first layer)::

        z = sum_i w_i a_in_i + bias                   # pre-activation, activation units
        a = max(z, 0)          (output "sigma_delta": ReLU, what netx's SigmaDelta runs)
        a = z                  (output "sigma": the read-out, the running sum of its input; no bias on Lava)

    Its messages: it sends ``d = a - a_sent + residue`` whenever ``|d| >= threshold`` (else the residue
    keeps it), so the value the next layer has seen differs from ``a`` by less than ``threshold`` (plus
    Lava's message floor: compiler/passes/quantize_sdnn.py).  Larger thresholds send fewer messages.
    """

    threshold: float  # delta threshold, in this layer's activation units (>= 0); not used by a "sigma" read-out
    output: str = "sigma_delta"  # "sigma_delta": ReLU, sends deltas; "sigma": the read-out, sends its sum
    act_max: float | None = None  # largest |z| seen on calibration data (activation units); None: derived

    def __post_init__(self) -> None:
        if self.output not in SIGMA_DELTA_OUTPUTS:
            raise LoihicError(f"sigma-delta output '{self.output}' is not one of {SIGMA_DELTA_OUTPUTS}")
        if not (np.isfinite(self.threshold) and self.threshold >= 0):
            raise LoihicError(f"sigma-delta threshold {self.threshold} must be finite and >= 0")
        if self.act_max is not None and not (np.isfinite(self.act_max) and self.act_max >= 0):
            raise LoihicError(f"sigma-delta act_max {self.act_max} must be finite and >= 0")


@dataclass(frozen=True)
class SigmaDeltaQuant:
    """A sigma-delta layer in Lava's integers (compiler/passes/quantize_sdnn.py derives every relation).

    With ``S`` = ``act_scale`` and ``S_in`` = ``in_act_scale`` (integers per activation unit of this layer
    and of its input): ``weight = even_round(w * 64 * S / S_in)``, ``bias = round(S * bias)``,
    ``v_th_mant = round(S * threshold)``; Lava's sigma + (bias << 12) is ``4096 * S * z``.
    """

    weight: np.ndarray  # int64, even, in [-256, 254]; torch layout
    bias: np.ndarray | None  # int64 per output neuron (int16 range); Lava adds bias << 12 to sigma
    v_th_mant: int  # delta threshold mantissa, [0, 2^19): Lava sends iff |d| >= v_th_mant << 12; 0 for a Sigma
    act_scale: float  # S: integers per activation unit of this layer (Lava's y = 4096 * S * z)
    in_act_scale: float  # S_in: the same for this layer's input (255 for 8-bit images through the Delta)
    weight_scale: float  # 64 * S / S_in: integers per real weight unit
    sqnr_db: float  # weight quantization signal-to-noise ratio
    act_bound: float  # |z| the scale was sized for (activation units): act_max or the interval bound

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _frozen_array(self.weight, "quant.weight", (2, 4)))
        if self.bias is not None:
            object.__setattr__(self, "bias", _frozen_array(self.bias, "quant.bias", 1))


@dataclass(frozen=True)
class Quant:
    """A synaptic layer in Loihi integers (what the netx writer emits).

    Real values relate to integers by the layer's ``scale``: ``weight_int = even_round(scale * w)``,
    ``v_th_mant = round(scale * in_scale *
    threshold)`` and ``bias_int = round(scale * in_scale * bias)``, where ``in_scale`` is the integer
    that stands for a real input of 1.0 (255 for direct-coded input, 1 for spikes).  Calibrated rounding
    (compiler/calib.py) picks each integer within error feedback of that instead, and may clip.
    """

    weight: np.ndarray  # int64, even, in [-256, 254]; torch layout
    bias: np.ndarray | None  # int64 per output neuron (v += bias << 6 each step), or None
    v_th_mant: int  # threshold mantissa; Lava compares v > v_th_mant << 6
    i_decay: int  # [0, 4096]; Lava du = i_decay - 1
    v_decay: int  # [0, 4096]; Lava dv = v_decay
    scale: float  # integers per real weight unit
    in_scale: int  # integer value of a real input of 1.0 for this layer's input
    sqnr_db: float  # weight quantization signal-to-noise ratio
    # a recurrent Dense only: its recurrent weights in the same integers (one scale, one weight exponent:
    # netx stacks weight and weight_rec before choosing it, spec sec. 7)
    weight_rec: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _frozen_array(self.weight, "quant.weight", (2, 4)))
        if self.bias is not None:
            object.__setattr__(self, "bias", _frozen_array(self.bias, "quant.bias", 1))
        if self.weight_rec is not None:
            object.__setattr__(self, "weight_rec", _frozen_array(self.weight_rec, "quant.weight_rec", 2))


MAX_DELAY = 62  # Lava's DelayDense / netx: synaptic delays 0..62 steps (netx clamps larger ones; loihic refuses)


@dataclass(frozen=True)
class Input:
    shape: tuple[int, ...]  # (n,) for features, (C, H, W) for images
    # Sigma-delta networks only: the input enters through a Delta layer (graded values, e.g. 8-bit pixels)
    # that sends a change once it reaches this threshold, in input units (x in [0, 1]); None: no Delta
    delta: float | None = None

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if len(shape) not in (1, 3) or min(shape) < 1:
            raise LoihicError(f"input shape {self.shape}: expected (n,) or (C, H, W) of positive ints")
        object.__setattr__(self, "shape", shape)
        if self.delta is not None and not (np.isfinite(self.delta) and self.delta >= 0):
            raise LoihicError(f"input delta threshold {self.delta} must be finite and >= 0")


@dataclass(frozen=True)
class Dense:
    """A dense synapse and its neurons.  Optional, LIF neurons only (netx ``dense_rec`` and ``delay``):

    - ``weight_rec`` (out, out): recurrent weights; the layer's own spikes of step t enter its synaptic
      input at step t + 1 (Lava's RecurrentDense: the one-step latency of the recurrent synapse), i.e.
      ``u[t] = (1 - current_decay) u[t-1] + W s_in[t] + W_rec s[t-1]``;
    - ``delay`` (out, in) integers in [0, MAX_DELAY]: synapse (i, j) carries input j's spike of step t
      to neuron i's synaptic input at step t + delay[i, j] (Lava's DelayDense), i.e.
      ``u_i[t] = ... + sum_j W_ij s_j[t - delay_ij]``.
    """

    name: str
    weight: np.ndarray  # (out, in), float, torch.nn.Linear layout
    bias: np.ndarray | None  # (out,) added to v every step, or None
    neuron: Neuron | SigmaDelta
    quant: Quant | SigmaDeltaQuant | None = None
    weight_rec: np.ndarray | None = None  # (out, out) float, or None: not recurrent
    delay: np.ndarray | None = None  # (out, in) int64 steps in [0, MAX_DELAY], or None: no delays

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _frozen_array(self.weight, f"layer '{self.name}': weight", 2))
        n_out, n_in = self.weight.shape
        if self.weight_rec is not None:
            wr = _frozen_array(self.weight_rec, f"layer '{self.name}': weight_rec", 2)
            if wr.shape != (n_out, n_out):
                raise LoihicError(f"layer '{self.name}': weight_rec has shape {wr.shape}, expected {(n_out, n_out)}")
            object.__setattr__(self, "weight_rec", wr)
        if self.delay is not None:
            d = np.asarray(self.delay)
            if d.dtype.kind == "f" and not (np.isfinite(d).all() and (d == np.round(d)).all()):
                raise LoihicError(f"layer '{self.name}': delays must be whole steps")
            d = np.broadcast_to(np.asarray(d, np.int64), (n_out, n_in)) if d.ndim == 0 else np.asarray(d, np.int64)
            if d.shape != (n_out, n_in):
                raise LoihicError(f"layer '{self.name}': delay has shape {d.shape}, expected {(n_out, n_in)}")
            if d.size and (d.min() < 0 or d.max() > MAX_DELAY):
                bad = int(d.max()) if d.max() > MAX_DELAY else int(d.min())
                raise LoihicError(
                    f"layer '{self.name}': delay {bad} steps is outside [0, {MAX_DELAY}] (Lava's DelayDense)"
                )
            object.__setattr__(self, "delay", _frozen_array(d, f"layer '{self.name}': delay", 2))
        if (self.weight_rec is not None or self.delay is not None) and not isinstance(self.neuron, Neuron):
            raise LoihicError(f"layer '{self.name}': recurrence and delays are for LIF neurons, not sigma-delta")
        if self.bias is not None:
            b = _frozen_array(self.bias, f"layer '{self.name}': bias", 1)
            if b.shape[0] != self.weight.shape[0]:
                raise LoihicError(
                    f"layer '{self.name}': bias has {b.shape[0]} entries, expected {self.weight.shape[0]}"
                )
            object.__setattr__(self, "bias", b)

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])

    @property
    def recurrent(self) -> bool:
        return self.weight_rec is not None


@dataclass(frozen=True)
class Conv:
    name: str
    weight: np.ndarray  # (out, in / groups, kH, kW), torch.nn.Conv2d layout (cross-correlation)
    bias: np.ndarray | None  # (out,) per channel, or None
    neuron: Neuron | SigmaDelta
    stride: tuple[int, int] = (1, 1)  # (H, W)
    padding: tuple[int, int] = (0, 0)  # (H, W), zeros
    dilation: tuple[int, int] = (1, 1)  # (H, W)
    groups: int = 1
    quant: Quant | SigmaDeltaQuant | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _frozen_array(self.weight, f"layer '{self.name}': weight", 4))
        object.__setattr__(self, "stride", _pair(self.stride, f"layer '{self.name}': stride", 1))
        object.__setattr__(self, "padding", _pair(self.padding, f"layer '{self.name}': padding", 0))
        object.__setattr__(self, "dilation", _pair(self.dilation, f"layer '{self.name}': dilation", 1))
        if self.groups < 1 or self.weight.shape[0] % self.groups:
            raise LoihicError(
                f"layer '{self.name}': groups {self.groups} does not divide {self.weight.shape[0]} output channels"
            )
        if self.bias is not None:
            b = _frozen_array(self.bias, f"layer '{self.name}': bias", 1)
            if b.shape[0] != self.weight.shape[0]:
                raise LoihicError(
                    f"layer '{self.name}': bias has {b.shape[0]} entries, expected {self.weight.shape[0]}"
                )
            object.__setattr__(self, "bias", b)


@dataclass(frozen=True)
class AvgPool:
    """Average pooling between a spiking layer and the next synapse (lowered away, see passes)."""

    name: str
    kernel: tuple[int, int]  # (H, W)
    stride: tuple[int, int]  # (H, W)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", _pair(self.kernel, f"layer '{self.name}': kernel", 1))
        object.__setattr__(self, "stride", _pair(self.stride, f"layer '{self.name}': stride", 1))


@dataclass(frozen=True)
class BatchNorm:
    """Inference-time BatchNorm right after a synaptic layer (folded into it, see passes)."""

    name: str
    mean: np.ndarray
    var: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    eps: float = 1e-5

    def __post_init__(self) -> None:
        for f in ("mean", "var", "gamma", "beta"):
            object.__setattr__(self, f, _frozen_array(getattr(self, f), f"layer '{self.name}': {f}", 1))
        if (self.var < 0).any():
            raise LoihicError(f"layer '{self.name}': negative running variance")


@dataclass(frozen=True)
class Dropout:
    """Training-time dropout between a neuron and the next synapse: the identity at inference, removed by
    the first pass (``compiler/passes/drop_dropout.py``).  Kept in the IR so that training builds its
    ``nn.Dropout`` from the same description the compiler reads."""

    name: str
    p: float  # probability of zeroing an element while training, [0, 1)

    def __post_init__(self) -> None:
        if isinstance(self.p, bool) or not (isinstance(self.p, (int, float)) and 0.0 <= self.p < 1.0):
            raise LoihicError(f"layer '{self.name}': dropout p {self.p!r} is outside [0, 1)")
        object.__setattr__(self, "p", float(self.p))


@dataclass(frozen=True)
class Flatten:
    """(C, H, W) -> (C*H*W,) in C order; netx's flatten gives the same order (spec sec. 1.2)."""

    name: str


Layer = Dense | Conv | AvgPool | BatchNorm | Dropout | Flatten
SYNAPTIC = (Dense, Conv)

# The ANN in this vocabulary (training/models.py builds its torch modules from it): a ReLU is a spiking
# neuron of unit threshold (``relu(x)`` is the rate of an IF neuron of threshold 1 driven by x, Diehl et
# al. 2015), the last synaptic layer a non-spiking readout.  An ANN's Network is one step of direct
# (real-valued) input: ANN_TIMESTEPS, ANN_ENCODING.  Conversion (training/convert.py) sets the thresholds,
# the steps and the encoding of the spiking network.
RELU = Neuron(threshold=1.0)
READOUT = Neuron(threshold=1.0, spiking=False)
ANN_TIMESTEPS = 1
ANN_ENCODING = "direct"


@dataclass(frozen=True)
class Network:
    input: Input
    layers: tuple[Layer, ...]
    timesteps: int  # steps per sample
    encoding: str  # "poisson" or "direct" (compiler/encoding.py)
    meta: Mapping[str, Any] = field(default_factory=dict)  # provenance; JSON-serialisable values

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if self.timesteps < 1:
            raise LoihicError(f"timesteps must be >= 1, got {self.timesteps}")
        names = [layer.name for layer in self.layers]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise LoihicError(f"duplicate layer names: {sorted(dup)}")
        if not any(isinstance(layer, SYNAPTIC) for layer in self.layers):
            raise LoihicError("network has no dense or conv layer")
        self._check_sigma_delta()

    def _check_sigma_delta(self) -> None:
        """One kind of neuron per network; a sigma-delta one has a Delta input, graded (direct) input, ReLU
        hidden layers and at most its last layer a Sigma read-out, which has no bias (Lava's Sigma takes none)."""
        syn = self.synaptic()
        sd = [isinstance(layer.neuron, SigmaDelta) for layer in syn]
        if not any(sd) and self.input.delta is None:
            return
        if not all(sd):
            kinds = ", ".join(f"'{lay.name}': {type(lay.neuron).__name__}" for lay in syn)
            raise LoihicError(f"a network holds one kind of neuron, sigma-delta or LIF; this one mixes them ({kinds})")
        if self.input.delta is None:
            raise LoihicError("a sigma-delta network's input enters through a Delta layer: set Input(delta=...)")
        if not self.encoding.startswith("direct"):
            raise LoihicError(f"a sigma-delta network takes graded input (encoding 'direct'), not '{self.encoding}'")
        for layer in syn[:-1]:
            if layer.neuron.output == "sigma":
                raise LoihicError(f"layer '{layer.name}': only the last layer can be a Sigma read-out")
        last = syn[-1]
        if last.neuron.output == "sigma" and last.bias is not None and np.any(last.bias != 0):
            raise LoihicError(
                f"layer '{last.name}': a Sigma read-out has no bias on Lava (proc/sdn/process.py Sigma); "
                "drop it or make the last layer a ReLU SigmaDelta (output='sigma_delta')"
            )

    @property
    def sigma_delta(self) -> bool:
        """Every synaptic layer is sigma-delta (validated: a network holds one kind)."""
        return self.input.delta is not None

    def replace(self, **changes: Any) -> Network:
        return dataclasses.replace(self, **changes)

    def synaptic(self) -> list[Dense | Conv]:
        return [layer for layer in self.layers if isinstance(layer, SYNAPTIC)]


def conv_out_hw(
    hw: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int] = (1, 1),
) -> tuple[int, int]:
    return tuple(  # type: ignore[return-value]
        (hw[i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(2)
    )


def infer_shapes(net: Network) -> list[tuple[int, ...]]:
    """Output shape of every layer (same order as ``net.layers``); raises on inconsistencies."""
    return layer_shapes(net.input, net.layers)


def layer_shapes(inp: Input, layers: Sequence[Layer]) -> list[tuple[int, ...]]:
    """Output shape of each of ``layers`` fed ``inp``: the one shape inference of the project (training
    and checkpoint validation ask it too); raises on inconsistencies."""
    shape = inp.shape
    shapes = []
    for layer in layers:
        where = f"layer '{layer.name}'"
        if isinstance(layer, Dense):
            if len(shape) != 1 or shape[0] != layer.weight.shape[1]:
                raise UnsupportedLayerError(
                    f"{where}: dense expects {layer.weight.shape[1]} inputs, gets shape {shape}"
                )
            shape = (layer.out_features,)
        elif isinstance(layer, (Conv, AvgPool)):
            if len(shape) != 3:
                raise UnsupportedLayerError(f"{where}: expects a (C, H, W) input, gets shape {shape}")
            if isinstance(layer, Conv):
                if shape[0] != layer.weight.shape[1] * layer.groups:
                    raise UnsupportedLayerError(
                        f"{where}: expects {layer.weight.shape[1] * layer.groups} input channels, gets {shape[0]}"
                    )
                hw = conv_out_hw(shape[1:], layer.weight.shape[2:], layer.stride, layer.padding, layer.dilation)
                shape = (layer.weight.shape[0], *hw)
            else:
                shape = (shape[0], *conv_out_hw(shape[1:], layer.kernel, layer.stride, (0, 0)))
            if min(shape) < 1:
                raise UnsupportedLayerError(f"{where}: output shape {shape} is empty")
        elif isinstance(layer, BatchNorm):
            if shape[0] != layer.mean.shape[0]:
                raise UnsupportedLayerError(f"{where}: {layer.mean.shape[0]} features, input has {shape[0]}")
        elif isinstance(layer, Flatten):
            shape = (int(np.prod(shape)),)
        shapes.append(shape)  # Dropout: the identity
    return shapes
