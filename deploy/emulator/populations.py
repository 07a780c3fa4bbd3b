"""The neuron populations of an emulated network, one class per neuron kind.

A population holds its kind's constants prepared for a batch on one device, makes the kind's zero state, and
runs the kind's integer arithmetic, written once in its own module (:mod:`loihic.deploy.emulator.lif`,
:mod:`loihic.deploy.emulator.sigma_delta`): over a whole (B, T, n) block of synaptic input for the layer-major
path, or one step for the step-major one.  The LIF block scan itself is in :mod:`loihic.deploy.emulator.kernels`
(numba on CPU), which the layer-major path calls for LIF populations.

``graded_out``: whether the population's output is a graded message (sigma-delta) that the next synapse takes
as an integer value, or a binary spike (LIF).  ``record_dtype``: the dtype its recorded output is returned in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from loihic.compiler.netx import schema
from loihic.compiler.netx.read import NxNeuron, NxSigmaDelta
from loihic.deploy.emulator import kernels, lif, sigma_delta


@dataclass
class _LifState:
    u: torch.Tensor
    v: torch.Tensor
    counts: torch.Tensor | None  # (3,) int64: u wraps, v clips, synapse wraps (overflow monitor)


def lif_step(pop: LifPopulation, st: _LifState, a: torch.Tensor) -> torch.Tensor:
    """One step of the LIF population ``pop`` on synaptic input ``a`` (the step-major path)
    (:func:`loihic.deploy.emulator.lif.step`)."""
    st.u, st.v, s, u_wrapped, v_clipped = lif.step(st.u, st.v, lif.current_input(a), pop.du, pop.dv, pop.bias, pop.vth)
    if st.counts is not None:
        st.counts[0] += u_wrapped.sum()
        st.counts[1] += v_clipped.sum()
    return s


class LifPopulation:
    """A CUBA-LIF population (netx 'CUBA' / 'LOIHI'): state (u, v), binary spikes."""

    kind = "lif"
    graded_out = False
    record_dtype = np.uint8

    def __init__(self, n: NxNeuron, shape: tuple[int, ...], device: torch.device) -> None:
        self.du = schema.DECAY_UNITY - n.i_decay
        self.dv = schema.DECAY_UNITY - n.v_decay
        self.vth = lif.threshold(n.v_th_mant)
        bias = np.zeros(int(np.prod(shape)), np.int64) if n.bias is None else n.bias
        self.bias = torch.as_tensor(lif.bias_term(bias), device=device).reshape(shape)
        self.bias6 = self.bias.reshape(-1).contiguous()  # (n,) for the layer-major kernels
        self.shape = shape
        self.size = int(np.prod(shape))
        self.can_spike = self.vth < lif.V_MAX

    def new_state(self, batch: int, device: torch.device) -> list[torch.Tensor]:
        """(u, v), zero, each (batch, n) int64."""
        return [torch.zeros((batch, self.size), dtype=torch.int64, device=device) for _ in "uv"]

    @staticmethod
    def readout(state: list[torch.Tensor]) -> torch.Tensor:
        """What ``output_v`` reports: v."""
        return state[1]

    def step(self, st: _LifState, a: torch.Tensor) -> torch.Tensor:
        return lif_step(self, st, a)


@dataclass
class SigmaDeltaState:
    """A sigma-delta population's state in the step-major path (the layer-major path keeps the list alone)."""

    values: list[torch.Tensor]
    counts: torch.Tensor | None  # (3,) int64, only the synapse-wrap column is used


class SigmaDeltaPopulation:
    """A sigma-delta population (netx 'SDNN'): Lava's Delta (an input layer), SigmaDelta or Sigma, graded
    messages.  State: Delta (act, residue), SigmaDelta (sigma, act, residue), Sigma (sigma)."""

    graded_out = True
    record_dtype = np.int32  # messages are int32 values (a sigma-delta's s >> 6 stays within +-2^25)
    can_spike = True

    def __init__(self, n: NxSigmaDelta, shape: tuple[int, ...], device: torch.device) -> None:
        self.kind = n.kind
        self.relu = n.relu
        self.vth = sigma_delta.threshold(n.v_th_mant)
        bias = np.zeros(int(np.prod(shape)), np.int64) if n.bias is None else n.bias
        self.bias12 = torch.as_tensor(sigma_delta.bias_term(bias.astype(np.int64)), device=device).reshape(-1)
        self.shape = shape
        self.size = int(np.prod(shape))

    def new_state(self, batch: int, device: torch.device) -> list[torch.Tensor]:
        count = {"delta": 2, "sigma_delta": 3, "sigma": 1}[self.kind]
        return [torch.zeros((batch, self.size), dtype=torch.int64, device=device) for _ in range(count)]

    def readout(self, state: list[torch.Tensor]) -> torch.Tensor:
        """What ``output_v`` reports: sigma (Sigma, SigmaDelta) or the last activation (Delta)."""
        return state[0]

    def advance(self, a: torch.Tensor, state: list[torch.Tensor]) -> torch.Tensor:
        """One step on the (B, n) int64 input ``a``: updates ``state`` in place, returns the message."""
        return kernels.sd_step(self.kind, self.relu, self.vth, self.bias12, a, state)

    def scan(  # noqa: PLR0913
        self,
        backend: str,
        acc: torch.Tensor,
        wexp: int,
        conv: bool,
        graded: bool | None,
        state: list[torch.Tensor],
        out: torch.Tensor,
        vtrace: torch.Tensor | None,
        counts: torch.Tensor | None,
    ) -> None:
        """The recurrence over a (B, T, n) block of accumulator ``acc`` (``graded`` None: the source's raw values,
        no synapse): messages into ``out`` (B, T, n); ``vtrace`` (B, T, n) receives :meth:`readout` after every
        step when given.  ``backend`` 'numba': :func:`~loihic.deploy.emulator.kernels.sd_scan_numba` (CPU),
        else :func:`~loihic.deploy.emulator.kernels.sd_scan_torch`."""
        fn = kernels.sd_scan_numba if backend == "numba" else kernels.sd_scan_torch
        fn(self.kind, self.relu, acc, wexp, conv, graded, self.vth, self.bias12, state, out, vtrace, counts)

    def step(self, st: SigmaDeltaState, a: torch.Tensor) -> torch.Tensor:
        """The step-major path's step on (B, *shape) input: the message, (B, *shape)."""
        flat = a.reshape(a.shape[0], -1).to(torch.int64)
        return self.advance(flat, st.values).reshape(a.shape[0], *self.shape)


Population = LifPopulation | SigmaDeltaPopulation


def population(n: NxNeuron | NxSigmaDelta, shape: tuple[int, ...], device: torch.device) -> Population:
    """The population of neuron group ``n`` (its kind decides the class)."""
    if isinstance(n, NxSigmaDelta):
        return SigmaDeltaPopulation(n, shape, device)
    return LifPopulation(n, shape, device)
