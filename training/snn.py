"""Batched float SNN simulator: the reference semantics of ``compiler/ir.py``'s Neuron, in PyTorch.

For a network converted from an ANN (``convert.py``), per time step t (Datta et al. eqs. 2-5):

- input ``x_t = spikes[..., t] / input_scale(encoding)`` (a spike is 1.0; direct coding delivers the
  graded value round(255 x) / 255);
- every synaptic layer computes its current ``I_t = W x_t + b`` (then the inference-time BatchNorm affine,
  if any): the ``u[t]`` of ir.py with ``current_decay = 1``, so there is no separate current state;
- a hidden (spiking) layer integrates ``v = leak * v + I_t`` (eq. 2, ``leak = lambda = 1 - voltage_decay``),
  fires ``s = v > threshold`` (strict) and resets: hard ``v <- 0`` where it fired (Lava's LIF), or soft
  ``v <- v - threshold`` (eq. 3, Datta's choice; not deployable on Loihi);
- its spikes pass through avgpool / flatten / dropout (identity at inference) to the next synaptic layer;
- the last synaptic layer is a non-spiking integrator without leak, ``v_T = sum_t I_t`` (eqs. 4-5), and
  the prediction is ``argmax(v_T)``;
- or, when its threshold is a float (checkpoint ``snn.output == "spiking"``, e.g. noise-based training,
  Jiang & Zhang eqs. 1-3), the last layer is a LIF layer like the hidden ones (same leak and reset) and the
  output is its spike count ``sum_t s_t``; the prediction is ``argmax`` of the counts, ties to the lowest
  index (``deploy/emulator/network.py`` ``predict``).

Inputs are encoded in fixed chunks by :func:`encode_chunks` (sample order, 256 per chunk, chunk k seeded
with ``seed + k``): the rule every backend follows to see the same spikes for the same ``seed``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from loihic.compiler import ir
from loihic.compiler.encoding import encode_chunks, input_scale
from loihic.compiler.errors import InputError, LoihicError
from loihic.compiler.ir import RESETS
from loihic.compiler.load.checkpoint import ann_network, module_indices, network_data
from loihic.training.checkpoint import validate_checkpoint
from loihic.training.models import build_model


def integrate(v: torch.Tensor, current: torch.Tensor, leak: float) -> torch.Tensor:
    """Membrane update before firing, Datta et al. eq. 2 (ir.py: v = (1 - voltage_decay) v + u + bias)."""
    return leak * v + current


def fire(v: torch.Tensor, threshold: float, reset: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(spikes, v after reset)``: s = v > threshold; hard reset v <- 0, soft v <- v - threshold (eq. 3)."""
    s = v > threshold
    if reset == "hard":
        return s, torch.where(s, torch.zeros_like(v), v)
    return s, v - threshold * s.to(v.dtype)


@dataclass(frozen=True, eq=False)
class Stage:
    """One synaptic layer, its optional batchnorm, and the modules between its neuron and the next synapse."""

    index: int  # torch module index of the dense/conv layer
    synapse: nn.Module
    norm: nn.Module | None
    post: tuple[nn.Module, ...]  # avgpool / dropout / flatten applied to the spikes

    def current(self, x: torch.Tensor) -> torch.Tensor:
        i = self.synapse(x)
        return self.norm(i) if self.norm is not None else i

    def forward_spikes(self, s: torch.Tensor) -> torch.Tensor:
        for module in self.post:
            s = module(s)
        return s


@dataclass(frozen=True, eq=False)
class SNNRun:
    output: torch.Tensor  # (B, classes): v_T of the integrator readout, or the spike counts of a spiking output
    spikes: tuple[torch.Tensor, ...]  # per spiking layer (the output too if it spikes), bool (B, *shape, T);
    # empty unless recorded


def split_stages(modules: nn.Sequential, net: ir.Network) -> tuple[tuple[nn.Module, ...], list[Stage]]:
    """``(prefix modules acting on the input, stages)`` of ``modules = build_model(net)``; the ReLU modules
    are dropped (they become neurons)."""
    layers = net.layers
    index = module_indices(network_data(layers))
    syn = [k for k, layer in enumerate(layers) if isinstance(layer, ir.SYNAPTIC)]
    prefix = tuple(modules[index[k]] for k in range(syn[0]))
    stages = []
    for n, k in enumerate(syn):
        end = syn[n + 1] if n + 1 < len(syn) else len(layers)
        norm = modules[index[k + 1]] if k + 1 < end and isinstance(layers[k + 1], ir.BatchNorm) else None
        post = tuple(modules[index[j]] for j in range(k + 1, end) if not isinstance(layers[j], ir.BatchNorm))
        stages.append(Stage(index[k], modules[index[k]], norm, post))
    return prefix, stages


class SNNModel(nn.Module):
    """The float SNN of an ANN IR network's structure (``net``, e.g. ``ann_network(ckpt)``) and a state_dict
    with per-layer thresholds (module docstring)."""

    def __init__(
        self,
        net: ir.Network,
        state_dict: Mapping[str, torch.Tensor],
        thresholds: Sequence[float | None],
        leak: float = 1.0,
        reset: str = "hard",
        encoding: str = "poisson",
    ) -> None:
        super().__init__()
        if reset not in RESETS:
            raise InputError(f"reset '{reset}' is not one of {RESETS}")
        if not 0.0 <= leak <= 1.0:
            raise InputError(f"leak {leak} is outside [0, 1]")
        self.net = build_model(net)
        self.net.load_state_dict(state_dict)
        self.net.eval()
        self.prefix, self.stages = split_stages(self.net, net)
        if len(thresholds) != len(self.stages):
            raise InputError(f"{len(thresholds)} thresholds for {len(self.stages)} synaptic layers")
        self.thresholds = [None if t is None else float(t) for t in thresholds]
        self.input_shape = tuple(net.input.shape)
        self.leak, self.reset, self.scale = float(leak), reset, float(input_scale(encoding))

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any]) -> SNNModel:
        ckpt = validate_checkpoint(ckpt, f"checkpoint ({ckpt.get('model')} on {ckpt.get('dataset')})", "snn")
        snn = ckpt["snn"]
        return cls(
            ann_network(ckpt, weights=False),
            ckpt["state_dict"],
            snn["thresholds"],
            snn["leak"],
            snn["reset"],
            snn["encoding"],
        )

    def _input(self, spikes: torch.Tensor | np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(spikes)
        if x.ndim != len(self.input_shape) + 2 or tuple(x.shape[1:-1]) != self.input_shape:
            dims = ", ".join(map(str, self.input_shape))
            raise InputError(f"spikes have shape {tuple(x.shape)}, expected (B, {dims}, T)")
        return x.to(torch.float32) / self.scale

    @torch.no_grad()
    def currents(
        self, spikes: torch.Tensor | np.ndarray, layer: int, record: list[list[torch.Tensor]] | None = None
    ) -> Iterator[torch.Tensor]:
        """Yield, for t = 0..T-1, the current ``I_t`` of synaptic layer ``layer`` (0-based among the
        synaptic layers), running the spiking layers before it; their thresholds must be set.
        ``record``, if given, receives the spikes of those layers (one list per layer, one entry per step).
        """
        if any(self.thresholds[k] is None for k in range(layer)):
            raise LoihicError(f"synaptic layer {layer}: an earlier layer has no threshold yet")
        x = self._input(spikes)
        v: list[torch.Tensor | float] = [0.0] * layer
        for t in range(x.shape[-1]):
            h = x[..., t]
            for module in self.prefix:
                h = module(h)
            for k in range(layer):
                stage = self.stages[k]
                s, v[k] = fire(integrate(v[k], stage.current(h), self.leak), self.thresholds[k], self.reset)
                if record is not None:
                    record[k].append(s)
                h = stage.forward_spikes(s.to(torch.float32))
            yield self.stages[layer].current(h)

    @torch.no_grad()
    def simulate(self, spikes: torch.Tensor | np.ndarray, record: bool = False) -> SNNRun:
        """Run all T steps; ``output`` is the readout's v_T = sum_t I_t (eqs. 4-5), or, when the last
        layer has a threshold (spiking output), its spike counts sum_t s_t (same leak and reset as the
        hidden layers)."""
        last = len(self.stages) - 1
        th_out = self.thresholds[last]
        n_rec = last + (th_out is not None)
        rec: list[list[torch.Tensor]] | None = [[] for _ in range(n_rec)] if record else None
        v_out: torch.Tensor | None = None
        v: torch.Tensor | float = 0.0
        for current in self.currents(spikes, last, rec):
            if th_out is None:
                v_out = current if v_out is None else v_out + current
                continue
            s, v = fire(integrate(v, current, self.leak), th_out, self.reset)
            if rec is not None:
                rec[last].append(s)
            counts = s.to(torch.float32)
            v_out = counts if v_out is None else v_out + counts
        if v_out is None:
            raise InputError("spikes have no time steps (T = 0)")
        trains = tuple(torch.stack(steps, dim=-1) for steps in rec) if rec is not None else ()
        return SNNRun(v_out, trains)

    def forward(self, spikes: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``spikes`` (B, *input_shape, T) -> readout v_T (B, classes), or spike counts (spiking output)."""
        return self.simulate(spikes).output


def snn_outputs(
    ckpt: Mapping[str, Any],
    x: np.ndarray,
    timesteps: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = False,
) -> np.ndarray:
    """Readout v_T (or output spike counts) (N, classes) for real inputs ``x`` in [0, 1], encoded with
    :func:`encode_chunks`.

    ``timesteps`` defaults to the checkpoint's; ``batch_size`` only bounds memory (it does not change the
    spikes, which come from fixed chunks of :data:`ENCODE_CHUNK` samples).
    """
    model = SNNModel.from_checkpoint(ckpt)
    steps = int(ckpt["snn"]["timesteps"] if timesteps is None else timesteps)
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    out = np.zeros((len(x), ckpt["num_classes"]), dtype=np.float32)
    bar = tqdm(total=len(x), desc="snn", unit="sample", file=sys.stderr, disable=not progress)
    for start, spikes in encode_chunks(x, steps, ckpt["snn"]["encoding"], seed):
        for b in range(0, len(spikes), batch_size):
            out[start + b : start + b + batch_size] = model(spikes[b : b + batch_size]).numpy()
            bar.update(len(spikes[b : b + batch_size]))
    bar.close()
    return out


def evaluate_snn(
    ckpt: Mapping[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    timesteps: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = False,
) -> float:
    """Accuracy of argmax(v_T), or of argmax of the output spike counts (ties to the lowest index), against
    labels ``y`` (see :func:`snn_outputs`)."""
    if len(x) != len(y) or len(x) == 0:
        raise InputError(f"x has {len(x)} samples and y {len(y)}: expected the same non-zero number")
    pred = snn_outputs(ckpt, x, timesteps, seed, batch_size, progress).argmax(axis=1)
    return float((pred == np.asarray(y)).mean())
