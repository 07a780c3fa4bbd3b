"""A batched PyTorch emulator of Lava's ``fixed_pt`` Dense, Conv and LIF models, bit for bit.

It runs a :class:`~loihic.compiler.netx.read.NetxModel` on many samples at once, on CUDA when
available.  State starts at zero for every sample.  Two timings (:mod:`loihic.deploy.lava.timing` draws both):

* *aligned* (the default): at step t every layer integrates what the layer before it emitted at step t, which is
  what Lava computes once each layer's pipeline delay is removed with per-sample resets (spec 2.7);
* *stream* (``stream=True``): as a plain ``netx.hdf5.Network`` run records its output sink: every synapse into a
  neuron delays by one step, so at step t a layer integrates what the layer before it emitted at step t - 1
  (nothing before step 0), and every layer integrates its bias from step 0 on, during the pipeline's fill.

Per step and layer (lava-nc 0.10.0, spec 2.1-2.3; ``rs0`` shifts toward zero, ``wrap32`` is the int32
channel/array wrap numpy applies)::

    dense: a = wrap32(shift(W @ s, weight_exp))          # s binary unless graded input
    conv:  a = wrap24(int32(conv2d(s, W)))               # proc/conv/models.py signed wrap; int32(): below
    LIF:   c = wrap32(rs0(u * (4096 - iDecay), 12) + wrap32(a << 6))
           u = c - 2^24 if c > 2^23 else (c + 2^24 if c <= -2^23 else c)      # single wrap
           v = clip(wrap32(rs0(v * (4096 - vDecay), 12) + u + (bias << 6)), -(2^23-1), 2^23-1)
           s = v > (vThMant << 6);  v[s] = 0

Lava's conv sums in float64 and casts with ``astype(int32)`` before the wrap (``proc/conv/utils.py conv``):
a sum outside the int32 range becomes INT_MIN there (x86-64's out-of-range conversion, with numpy's
"invalid value encountered in cast" warning), so ``int32()`` above maps every such sum to -2^31, which
wraps to 0.  Only graded input reaches it (e.g. 24-bit inputs times 8-bit weights).

Integer products are carried in floating-point matmuls/convolutions: float32 for a layer whose
largest possible partial sum, ``max_out sum_i |W_i| * max_input``, is below 2^24 (float32 is exact
on integers up to there, whatever the summation order), else float64 (exact below 2^53).  On CUDA,
convolutions always run in float64 (cuDNN may choose FFT or Winograd algorithms, which are not exact
in float32), and TF32 / reduced-precision float32 matmuls are switched off for the run.

Execution order (``mode``):

* ``"layer"`` (default): a feed-forward network is run layer by layer.  Once the layer below has run,
  a layer's synaptic input over all T steps is known, so each layer is ONE matmul / conv2d over all
  B*T rows, then the LIF recurrence over T (:mod:`loihic.deploy.emulator.kernels`: one numba kernel on
  CPU, vectorised torch steps elsewhere).  Tensors are (B, T, n).  Samples (and, when one sample alone
  exceeds it, steps) are processed in blocks that fit ``memory_mb`` of working memory.
* ``"step"``: every layer once per time step (:mod:`loihic.deploy.emulator.step_major`), the emulator as it
  was; the reference the layer-major path is tested against.

Both give the same integers: spikes of every layer, voltages, overflow counts.

A network with recurrent ('dense_rec') or delayed ('delay') layers runs :mod:`loihic.deploy.emulator.temporal`
(layer-major with a recurrent scan, or its step-major reference in ``mode="step"``), which has their timing.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch

from loihic.compiler.errors import InputError
from loihic.compiler.netx.read import NetxModel, NxConv, NxDense, NxFlatten
from loihic.deploy.emulator import kernels as kern
from loihic.deploy.emulator.layer_major import Workspace, run_layer_major
from loihic.deploy.emulator.populations import Population, population
from loihic.deploy.emulator.sigma_delta import MESSAGE_MAX
from loihic.deploy.emulator.step_major import run_step_major, run_step_major_temporal
from loihic.deploy.emulator.temporal import run_temporal

MODES = ("layer", "step")
BACKENDS = ("numba", "torch")
# Bound on the working memory of one block in layer mode (inputs, accumulators, spikes; not the results).
# On CPU the blocks are smaller still, cache-sized, whenever a sample fits (emulator_layers.CPU_BLOCK_MB).
DEFAULT_MEMORY_MB = 1024


def _exact_dtype(weight: np.ndarray, in_max: int) -> torch.dtype:
    """float32 when every partial sum of integer products stays below 2^24 (exact), else float64."""
    w = np.abs(weight.reshape(weight.shape[0], -1)).sum(axis=1).max() * in_max
    return torch.float32 if w < (1 << 24) else torch.float64


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def _exact_float_math() -> Iterator[None]:
    """IEEE float32 matmuls and convolutions for the duration (no TF32, no bf16 passes)."""
    precision = torch.get_float32_matmul_precision()
    cudnn_tf32 = torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(precision)
        torch.backends.cudnn.allow_tf32 = cudnn_tf32


@dataclass
class LayerOverflow:
    """Overflow events of one neuron layer during a run, each counted per (sample, neuron, step)."""

    layer: int  # the netx layer number (``NetxModel.neuron_layer_index``; an input neuron is layer 0)
    kind: str  # "input", "dense" or "conv"
    shape: tuple[int, ...]
    u_wraps: int  # u left (-2^23, 2^23] and wrapped by 2^24
    v_clips: int  # v left +-(2^23 - 1) and was clipped
    synapse_wraps: int  # the synaptic value wrapped: dense int32 channel, conv 24-bit accumulator
    neuron_steps: int  # samples x neurons x steps monitored

    @property
    def any(self) -> bool:
        return bool(self.u_wraps or self.v_clips or self.synapse_wraps)

    def to_json(self) -> dict:
        return {**asdict(self), "shape": list(self.shape)}


def merge_overflow(a: list[LayerOverflow] | None, b: list[LayerOverflow] | None) -> list[LayerOverflow] | None:
    """Sum two runs' counts layer by layer (e.g. the batches of a data set)."""
    if a is None or b is None:
        return a or b
    return [
        LayerOverflow(
            x.layer,
            x.kind,
            x.shape,
            x.u_wraps + y.u_wraps,
            x.v_clips + y.v_clips,
            x.synapse_wraps + y.synapse_wraps,
            x.neuron_steps + y.neuron_steps,
        )
        for x, y in zip(a, b, strict=True)
    ]


def format_overflow(layers: list[LayerOverflow]) -> str:
    """One line per layer, e.g. ``layer 1 (dense (128,)): u wrapped 12x, v clipped 0x, synapse wrapped 0x``."""
    lines = ["overflow monitor (events per sample x neuron x step):"]
    for o in layers:
        shape = "x".join(map(str, o.shape))
        lines.append(
            f"  layer {o.layer} ({o.kind} {shape}): u wrapped {o.u_wraps}, v clipped {o.v_clips}, "
            f"synapse wrapped {o.synapse_wraps} of {o.neuron_steps}" + ("" if o.any else "  (none)")
        )
    return "\n".join(lines)


@dataclass
class EmulatorResult:
    """Outputs of one batch.  Spike arrays are (B, *shape, T) uint8 in the emulator's time base (aligned or
    stream)."""

    output_spikes: np.ndarray  # spikes of the last layer
    output_v: np.ndarray  # (B, *out_shape) int64: last layer's v after the final step
    layer_spikes: list[np.ndarray] | None  # every neuron layer (input neuron first, if any)
    output_v_trace: np.ndarray | None  # (B, *out_shape, T) int64 when requested
    overflow: list[LayerOverflow] | None = None  # per neuron layer, with ``check_overflow=True``


class Emulator:
    """Run a :class:`NetxModel` exactly as Lava's CPU simulator would, many samples at once.

    ``input_message_bits`` mirrors ``netx.hdf5.Network(input_message_bits=...)``: 0 means any
    nonzero input counts as one spike; > 0 delivers graded integer inputs (direct coding).
    ``mode``: ``"layer"`` (default) or ``"step"`` (module doc).  ``backend`` (layer mode): ``"numba"``
    (CPU; the default there when numba is installed) or ``"torch"`` (any device; the default elsewhere).
    ``memory_mb``: bound on the working memory of one block of samples in layer mode (results come on
    top); a sample that needs more is run in blocks of steps.  ``stream``: stream timing instead of aligned
    (module doc): each sample from a fresh network, output ``[..., t]`` as Lava's sink records it at step t;
    None (the default): stream for a sigma-delta network (netx never resets one), aligned for LIF.
    """

    def __init__(
        self,
        model: NetxModel,
        device: torch.device | str | None = None,
        input_message_bits: int = 0,
        mode: str = "layer",
        backend: str | None = None,
        memory_mb: float = DEFAULT_MEMORY_MB,
        stream: bool | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
        if not (memory_mb > 0 and math.isfinite(memory_mb)):
            raise InputError(f"memory budget {memory_mb!r} MB: expected a number > 0")
        self.model = model
        self.device = torch.device(device) if device is not None else default_device()
        if backend is None:
            backend = "numba" if (self.device.type == "cpu" and kern.HAVE_NUMBA) else "torch"
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
        if backend == "numba" and (self.device.type != "cpu" or not kern.HAVE_NUMBA):
            raise ValueError("backend 'numba' runs on the CPU and needs numba installed")
        self.mode, self.backend, self.memory_mb = mode, backend, float(memory_mb)
        self.stream = bool(stream)
        self.graded = input_message_bits > 0
        self.input_shape = model.input.shape
        self.sigma_delta = model.is_sigma_delta
        if stream is None:
            stream = self.sigma_delta
        if self.sigma_delta and not stream:
            raise InputError(
                f"{model.path}: a sigma-delta network runs in stream timing only (netx never resets it); "
                "run it with --stream (stream=True)"
            )
        self.stream = bool(stream)
        self.input_lif = (
            population(model.input.neuron, self.input_shape, self.device) if model.input.neuron is not None else None
        )
        self.ops: list[tuple[str, object, Population | None]] = []
        self.graded_in: list[bool] = []  # per synaptic layer: its input is graded (not binarised)
        graded = self.input_lif.graded_out if self.input_lif is not None else self.graded
        in_max = (1 << max(input_message_bits, 1)) - 1 if self.graded else 1
        in_max = MESSAGE_MAX if (self.input_lif is not None and graded) else in_max
        for layer in model.layers:
            if isinstance(layer, NxFlatten):
                self.ops.append(("flatten", None, None))
                continue
            dtype = _exact_dtype(layer.weight, in_max)
            pop = population(layer.neuron, layer.shape, self.device)
            if isinstance(layer, NxDense):
                w = torch.as_tensor(layer.weight.T, dtype=dtype, device=self.device)
                self.ops.append(("dense", (w, layer.weight_exp), pop))
            elif isinstance(layer, NxConv):
                dtype = torch.float64 if self.device.type == "cuda" else dtype
                w = torch.as_tensor(layer.weight, dtype=dtype, device=self.device)
                self.ops.append(("conv", (w, layer), pop))
            self.graded_in.append(graded)
            graded = pop.graded_out
            in_max = MESSAGE_MAX if graded else 1  # spikes after a LIF layer, messages after a sigma-delta one
        self._synaptic = [op for op in self.ops if op[0] != "flatten"]
        self.temporal = model.temporal  # recurrent or delayed layers: deploy/emulator/temporal.py
        if self.temporal and (self.input_lif is not None or self.sigma_delta):
            raise InputError(
                f"{model.path}: recurrent or delayed layers run with LIF neurons driven by the source directly "
                "(no input neuron, no sigma-delta)"
            )
        # per synaptic layer: (int64 numpy (n, n), float64 torch (n, n) transposed) recurrent weights, or None; and
        # [(delay value, (n_in, n_out) float weights of the synapses with that delay)], or None (no delays)
        self.rec: list[tuple[np.ndarray, torch.Tensor] | None] = []
        self.delays: list[list[tuple[int, torch.Tensor]] | None] = []
        for layer, (_, params, _) in zip(model.neuron_layers, self._synaptic, strict=True):
            w_rec = getattr(layer, "weight_rec", None)
            delay = getattr(layer, "delay", None)
            self.rec.append(
                None
                if w_rec is None
                else (
                    np.ascontiguousarray(w_rec, np.int64),
                    torch.as_tensor(w_rec.T, dtype=torch.float64, device=self.device),
                )
            )
            groups = None
            if delay is not None:
                w = params[0]  # type: ignore[index]
                groups = [
                    (int(d), w * torch.as_tensor(delay.T == d, dtype=w.dtype, device=self.device))
                    for d in np.unique(delay)
                ]
            self.delays.append(groups)
        self.workspace = Workspace(self.device)  # layer mode's buffers, kept between runs

    # names the conformance harness (sim_tests/conformance) reads
    _input_lif = property(lambda self: self.input_lif)
    _ops = property(lambda self: self.ops)

    @property
    def lifs(self) -> list[Population]:
        """Every LIF population in order: the input neuron (if any), then one per dense/conv layer."""
        return ([self.input_lif] if self.input_lif else []) + [op[2] for op in self._synaptic]  # type: ignore[misc]

    @property
    def output_spiking(self) -> bool:
        """False when the last layer can never fire (an integrator readout, read from v)."""
        return self.lifs[-1].can_spike

    def check_input(self, x: np.ndarray | torch.Tensor) -> None:
        shape = tuple(x.shape)
        if len(shape) != len(self.input_shape) + 2 or shape[1:-1] != self.input_shape:
            raise InputError(f"input has shape {shape}, expected (N, {', '.join(map(str, self.input_shape))}, T)")
        kind = x.dtype.kind if isinstance(x, np.ndarray) else ("f" if x.dtype.is_floating_point else "i")
        if kind not in "iub":
            raise InputError(f"input dtype {x.dtype} is not an integer type")

    def _overflow(self, counts: list[np.ndarray], batch: int, steps: int) -> list[LayerOverflow]:
        kinds = (["input"] if self.input_lif else []) + [op[0] for op in self._synaptic]
        return [
            LayerOverflow(k, kind, lif.shape, int(c[0]), int(c[1]), int(c[2]), batch * steps * lif.size)
            for k, kind, lif, c in zip(self.model.neuron_layer_index, kinds, self.lifs, counts, strict=True)
        ]

    @torch.no_grad()
    def run(
        self,
        x: np.ndarray | torch.Tensor,
        record_layers: bool = False,
        record_v: bool = False,
        check_overflow: bool = False,
    ) -> EmulatorResult:
        """Run a batch ``x`` of shape (B, *input_shape, T) of integer inputs.  ``check_overflow`` counts,
        per layer, the u wraps, v clips and synaptic wraps (:class:`LayerOverflow`)."""
        self.check_input(x)
        batch, steps = int(x.shape[0]), int(x.shape[-1])
        with _exact_float_math():
            if self.mode == "step":
                xt = torch.as_tensor(np.asarray(x) if isinstance(x, np.ndarray) else x, device=self.device)
                run = run_step_major_temporal if self.temporal else run_step_major
                out = run(self, xt.to(torch.int64), record_layers, record_v, check_overflow)
            elif self.temporal:
                out = run_temporal(self, x, record_layers, record_v, check_overflow)
            else:
                out = run_layer_major(self, x, record_layers, record_v, check_overflow)
        counts = out.pop("counts")
        return EmulatorResult(**out, overflow=self._overflow(counts, batch, steps) if check_overflow else None)


def predict(output_spikes: np.ndarray, output_v: np.ndarray | None, output_spiking: bool) -> np.ndarray:
    """Class per sample: argmax of the final voltage for an integrator readout, else of spike counts
    (ties go to the lowest index)."""
    if output_spiking:
        return output_spikes.reshape(output_spikes.shape[0], -1, output_spikes.shape[-1]).sum(-1).argmax(axis=1)
    if output_v is None:
        raise ValueError("an integrator readout needs the final voltages")
    return output_v.reshape(output_v.shape[0], -1).argmax(axis=1)


__all__ = [
    "DEFAULT_MEMORY_MB",
    "Emulator",
    "EmulatorResult",
    "LayerOverflow",
    "default_device",
    "format_overflow",
    "merge_overflow",
    "predict",
]
