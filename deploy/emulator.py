"""A batched PyTorch emulator of Lava's ``fixed_pt`` Dense, Conv and LIF models, bit for bit.

It runs a :class:`~loihic.compiler.netx.read.NetxModel` on many samples at once, on CUDA when
available.  Time is *aligned*: at step t every layer integrates what the layer before it emitted at
step t, which is what Lava computes once each layer's pipeline delay is removed with per-sample
resets (spec 2.7; :mod:`loihic.deploy.timing`).  State starts at zero for every sample.

Per step and layer (lava-nc 0.10.0, spec 2.1-2.3; ``rs0`` shifts toward zero, ``wrap32`` is the int32
channel/array wrap numpy applies)::

    dense: a = wrap32(shift(W @ s, weight_exp))          # s binary unless graded input
    conv:  a = wrap24(conv2d(s, W))                      # proc/conv/models.py signed wrap
    LIF:   c = wrap32(rs0(u * (4096 - iDecay), 12) + wrap32(a << 6))
           u = c - 2^24 if c > 2^23 else (c + 2^24 if c <= -2^23 else c)      # single wrap
           v = clip(wrap32(rs0(v * (4096 - vDecay), 12) + u + (bias << 6)), -(2^23-1), 2^23-1)
           s = v > (vThMant << 6);  v[s] = 0

Integer products are carried in floating-point matmuls/convolutions: float32 for a layer whose
largest possible partial sum, ``max_out sum_i |W_i| * max_input``, is below 2^24 (float32 is exact
on integers up to there, whatever the summation order), else float64 (exact below 2^53).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from loihic.compiler.errors import InputError
from loihic.compiler.netx import schema
from loihic.compiler.netx.read import NetxModel, NxConv, NxDense, NxFlatten, NxNeuron

_U = schema.UV_LIMIT  # 2^23
_V_MAX = schema.UV_LIMIT - 1


def _exact_dtype(weight: np.ndarray, in_max: int) -> torch.dtype:
    """float32 when every partial sum of integer products stays below 2^24 (exact), else float64."""
    w = np.abs(weight.reshape(weight.shape[0], -1)).sum(axis=1).max() * in_max
    return torch.float32 if w < (1 << 24) else torch.float64


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _wrap(x: torch.Tensor, bits: int) -> torch.Tensor:
    half = 1 << (bits - 1)
    return ((x + half) & ((1 << bits) - 1)) - half


def _rs0(x: torch.Tensor, n: int) -> torch.Tensor:
    """Shift right toward zero, ``sign(x) * (|x| >> n)`` (lif/models.py subthr_dynamics)."""
    return torch.sign(x) * (torch.abs(x) >> n)


@dataclass
class _LifState:
    u: torch.Tensor
    v: torch.Tensor


class _Lif:
    """The constants of one LIF population, prepared for a batch."""

    def __init__(self, n: NxNeuron, shape: tuple[int, ...], device: torch.device) -> None:
        self.du = schema.DECAY_UNITY - n.i_decay
        self.dv = schema.DECAY_UNITY - n.v_decay
        self.vth = int(n.v_th_mant) << schema.VTH_SHIFT
        bias = np.zeros(int(np.prod(shape)), np.int64) if n.bias is None else n.bias
        self.bias = torch.as_tensor(bias << schema.BIAS_EXP, device=device).reshape(shape)
        self.shape = shape
        self.can_spike = self.vth < _V_MAX

    def state(self, batch: int, device: torch.device) -> _LifState:
        z = torch.zeros((batch, *self.shape), dtype=torch.int64, device=device)
        return _LifState(z, z.clone())

    def step(self, st: _LifState, a: torch.Tensor) -> torch.Tensor:
        c = _wrap(_rs0(st.u * self.du, schema.DECAY_BITS) + _wrap(a << schema.WEIGHT_SHIFT, 32), 32)
        u = torch.where(c > _U, c - 2 * _U, c)
        st.u = torch.where(u <= -_U, c + 2 * _U, u)
        v = _wrap(_rs0(st.v * self.dv, schema.DECAY_BITS) + st.u + self.bias, 32)
        v = torch.clamp(v, -_V_MAX, _V_MAX)
        s = v > self.vth
        st.v = torch.where(s, torch.zeros_like(v), v)
        return s


@dataclass
class EmulatorResult:
    """Outputs of one batch.  Spike arrays are (B, *shape, T) uint8 in the aligned time base."""

    output_spikes: np.ndarray  # spikes of the last layer
    output_v: np.ndarray  # (B, *out_shape) int64: last layer's v after the final step
    layer_spikes: list[np.ndarray] | None  # every neuron layer (input neuron first, if any)
    output_v_trace: np.ndarray | None  # (B, *out_shape, T) int64 when requested


class Emulator:
    """Run a :class:`NetxModel` exactly as Lava's CPU simulator would, many samples at once.

    ``input_message_bits`` mirrors ``netx.hdf5.Network(input_message_bits=...)``: 0 means any
    nonzero input counts as one spike; > 0 delivers graded integer inputs (direct coding).
    """

    def __init__(self, model: NetxModel, device: torch.device | str | None = None, input_message_bits: int = 0) -> None:
        self.model = model
        self.device = torch.device(device) if device is not None else default_device()
        self.graded = input_message_bits > 0
        self.input_shape = model.input.shape
        self._input_lif = (
            _Lif(model.input.neuron, self.input_shape, self.device) if model.input.neuron is not None else None
        )
        self._ops: list[tuple[str, object, _Lif | None]] = []
        in_max = (1 << max(input_message_bits, 1)) - 1 if self.graded else 1
        for layer in model.layers:
            if isinstance(layer, NxFlatten):
                self._ops.append(("flatten", None, None))
                continue
            dtype = _exact_dtype(layer.weight, in_max)
            in_max = 1  # spikes after the first layer
            if isinstance(layer, NxDense):
                w = torch.as_tensor(layer.weight.T, dtype=dtype, device=self.device)
                self._ops.append(("dense", (w, layer.weight_exp), _Lif(layer.neuron, layer.shape, self.device)))
            elif isinstance(layer, NxConv):
                w = torch.as_tensor(layer.weight, dtype=dtype, device=self.device)
                self._ops.append(("conv", (w, layer), _Lif(layer.neuron, layer.shape, self.device)))

    @property
    def output_spiking(self) -> bool:
        """False when the last layer can never fire (an integrator readout, read from v)."""
        return self._ops[-1][2].can_spike  # type: ignore[union-attr]

    def _synapse(self, kind: str, params: object, s: torch.Tensor, first: bool) -> torch.Tensor:
        w = params[0]  # type: ignore[index]
        x = s.to(w.dtype) if (first and self.graded) else (s != 0).to(w.dtype)
        if kind == "dense":
            w, wexp = params  # type: ignore[misc]
            acc = torch.matmul(x.reshape(x.shape[0], -1), w).round().to(torch.int64)
            acc = acc << wexp if wexp > 0 else acc >> -wexp
            return _wrap(acc, schema.CHANNEL_BITS)
        w, layer = params  # type: ignore[misc]
        acc = (
            F.conv2d(x, w, stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)
            .round()
            .to(torch.int64)
        )
        return _wrap(acc, schema.CONV_ACC_BITS)

    def check_input(self, x: np.ndarray | torch.Tensor) -> None:
        shape = tuple(x.shape)
        if len(shape) != len(self.input_shape) + 2 or shape[1:-1] != self.input_shape:
            raise InputError(f"input has shape {shape}, expected (N, {', '.join(map(str, self.input_shape))}, T)")
        kind = x.dtype.kind if isinstance(x, np.ndarray) else ("f" if x.dtype.is_floating_point else "i")
        if kind not in "iub":
            raise InputError(f"input dtype {x.dtype} is not an integer type")

    @torch.no_grad()
    def run(self, x: np.ndarray | torch.Tensor, record_layers: bool = False, record_v: bool = False) -> EmulatorResult:
        """Run a batch ``x`` of shape (B, *input_shape, T) of integer inputs."""
        self.check_input(x)
        xt = torch.as_tensor(np.asarray(x) if isinstance(x, np.ndarray) else x, device=self.device)
        xt = xt.to(torch.int64)
        batch, steps = xt.shape[0], xt.shape[-1]
        lifs = ([self._input_lif] if self._input_lif else []) + [op[2] for op in self._ops if op[2]]
        states = [lif.state(batch, self.device) for lif in lifs]
        rec: list[list[torch.Tensor]] = [[] for _ in lifs]
        vtrace: list[torch.Tensor] = []
        last = len(lifs) - 1
        for t in range(steps):
            s = xt[..., t]
            k = 0
            if self._input_lif:
                s = self._input_lif.step(states[0], s)
                rec[0].append(s) if (record_layers or last == 0) else None
                k = 1
            first = not self._input_lif
            for kind, params, lif in self._ops:
                if kind == "flatten":
                    s = s.reshape(batch, -1)
                    continue
                a = self._synapse(kind, params, s, first)
                first = False
                s = lif.step(states[k], a)  # type: ignore[union-attr]
                if record_layers or k == last:
                    rec[k].append(s)
                k += 1
            if record_v:
                vtrace.append(states[-1].v.clone())

        def stack(ts: list[torch.Tensor]) -> np.ndarray:
            return torch.stack(ts, dim=-1).to(torch.uint8).cpu().numpy()

        return EmulatorResult(
            output_spikes=stack(rec[-1]),
            output_v=states[-1].v.cpu().numpy(),
            layer_spikes=[stack(r) for r in rec] if record_layers else None,
            output_v_trace=torch.stack(vtrace, -1).cpu().numpy() if record_v else None,
        )


def predict(output_spikes: np.ndarray, output_v: np.ndarray | None, output_spiking: bool) -> np.ndarray:
    """Class per sample: argmax of the final voltage for an integrator readout, else of spike counts
    (ties go to the lowest index)."""
    if output_spiking:
        return output_spikes.reshape(output_spikes.shape[0], -1, output_spikes.shape[-1]).sum(-1).argmax(axis=1)
    if output_v is None:
        raise ValueError("an integrator readout needs the final voltages")
    return output_v.reshape(output_v.shape[0], -1).argmax(axis=1)
