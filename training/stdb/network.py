"""STDB's constants, its spike function (eq. 12) and the trainable SNN (Algorithm 2's forward)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from loihic.compiler import ir
from loihic.compiler.encoding import input_scale
from loihic.compiler.errors import InputError
from loihic.compiler.ir import RESETS
from loihic.training.models import build_model
from loihic.training.snn import fire, integrate, split_stages

DEFAULT_ALPHA = 0.3  # Rathi et al.'s code (--alpha); Datta et al. give no value
DEFAULT_BETA = 0.01  # Rathi et al.'s code (--beta)
DEFAULT_LR = 1e-4  # Rathi et al.'s code (--learning_rate), Adam
# digits (1437 training samples, 23 batches of 64): in 5 epochs a converted MLP barely moves at 1e-4; 3e-3
# gave the best test accuracy of {1e-4, 1e-3, 3e-3} at T = 2, 4 and 8 (seed 0, hard reset).
DATASET_LR = {"digits": 3e-3}
# Rathi et al.'s code uses Adam(amsgrad=True, weight_decay=5e-4).  Adam's weight decay is an L2 term added
# to the gradient, and at low T most neurons have not fired yet, so their STDB factor is ~alpha e^-10 and
# the L2 term is all of their gradient: Adam normalises it into lr-sized steps towards 0 that silence the
# network (digits MLP, T=2, lr 3e-3: 62% -> 10% in 5 epochs with 5e-4, 62% -> 84% without).  Default 0.
DEFAULT_WEIGHT_DECAY = 0.0
DEFAULT_BATCH_SIZE = 64
LAST_SPIKE_INIT = -1000.0  # "a large negative number" (sec. VI); Rathi's code uses -1000
SCHEDULES = ("cosine", "step", "constant")
STEP_MILESTONES = (0.40, 0.65, 0.85)  # Rathi's --lr_interval: lr / 10 at these fractions of the epochs
_SEED_TAG = 0x5D8B  # separates STDB's derived seeds from other uses of the same user seed


class STDBSpike(torch.autograd.Function):
    """Spike ``o = (u > v)`` with the STDB surrogate gradient ``d o / d u = alpha exp(-beta dt)`` (eq. 12)."""

    @staticmethod
    def forward(
        ctx: Any, u: torch.Tensor, threshold: float, dt: torch.Tensor, alpha: float, beta: float
    ) -> torch.Tensor:
        ctx.save_for_backward(alpha * torch.exp(-beta * dt))
        return (u > threshold).to(u.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (factor,) = ctx.saved_tensors
        return grad * factor, None, None, None, None


def stdb_spike(u: torch.Tensor, threshold: float, dt: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """Float spikes of ``u > threshold`` whose backward is eq. 12 with ``dt`` steps since the last spike."""
    return STDBSpike.apply(u, threshold, dt, alpha, beta)


class STDBNetwork(nn.Module):
    """The SNN of a checkpoint with trainable weights (module docstring; Algorithm 2's forward).

    ``thresholds`` (one per synaptic layer, None for the readout) are fixed floats.  With no ``generator``
    (evaluation) dropout is the identity and the output equals ``snn.SNNModel``'s bit for bit.
    """

    def __init__(
        self,
        net: ir.Network,
        state_dict: Mapping[str, torch.Tensor],
        thresholds: Sequence[float | None],
        leak: float,
        reset: str,
        encoding: str,
        alpha: float = DEFAULT_ALPHA,
        beta: float = DEFAULT_BETA,
    ) -> None:
        super().__init__()
        if reset not in RESETS:
            raise InputError(f"reset '{reset}' is not one of {', '.join(RESETS)}")
        self.net = build_model(net)
        self.net.load_state_dict(state_dict)
        self.net.eval()  # batchnorm uses its running statistics (as SNNModel); dropout is handled here
        self.prefix, self.stages = split_stages(self.net, net)
        if len(thresholds) != len(self.stages) or thresholds[-1] is not None:
            raise InputError(
                f"{len(thresholds)} thresholds for {len(self.stages)} synaptic layers (the last, "
                f"the integrator readout, must be None)"
            )
        self.thresholds = [None if t is None else float(t) for t in thresholds]
        self.input_shape = tuple(net.input.shape)
        self.leak, self.reset, self.scale = float(leak), reset, float(input_scale(encoding))
        self.alpha, self.beta = float(alpha), float(beta)

    def train(self, mode: bool = True) -> STDBNetwork:
        """Keep the wrapped modules in eval mode: dropout masks come from :meth:`forward`'s generator."""
        super().train(mode)
        self.net.eval()
        return self

    def _through(
        self,
        modules: Sequence[nn.Module],
        h: torch.Tensor,
        masks: dict[int, torch.Tensor] | None,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        for module in modules:
            if isinstance(module, nn.Dropout):
                if generator is None or module.p == 0.0:
                    continue
                key = id(module)
                if key not in masks:  # drawn at the first step, kept for all T (sec. VI)
                    keep = torch.rand(h.shape, generator=generator) >= module.p
                    masks[key] = (keep.to(h.dtype) / (1.0 - module.p)).to(h.device)
                h = h * masks[key]
            else:
                h = module(h)
        return h

    def forward(self, spikes: torch.Tensor | np.ndarray, generator: torch.Generator | None = None) -> torch.Tensor:
        """``spikes`` (B, *input_shape, T) -> readout u_T (B, classes), eqs. 2-5.

        ``generator`` (CPU): draw dropout masks from it (training); None: no dropout (evaluation).
        The STDB surrogate is attached only when autograd is recording.
        """
        x = torch.as_tensor(spikes)
        if x.ndim != len(self.input_shape) + 2 or tuple(x.shape[1:-1]) != self.input_shape:
            dims = ", ".join(map(str, self.input_shape))
            raise InputError(f"spikes have shape {tuple(x.shape)}, expected (B, {dims}, T)")
        if x.shape[-1] < 1:
            raise InputError("spikes have no time steps (T = 0)")
        device = next(self.net.parameters()).device
        x = x.to(device=device, dtype=torch.float32) / self.scale
        grad = torch.is_grad_enabled()
        hidden = len(self.stages) - 1
        v: list[torch.Tensor | float] = [0.0] * hidden
        last: list[torch.Tensor | None] = [None] * hidden
        masks: dict[int, torch.Tensor] = {}
        out: torch.Tensor | None = None
        for t in range(x.shape[-1]):
            h = self._through(self.prefix, x[..., t], masks, generator)
            for k in range(hidden):
                stage, th = self.stages[k], self.thresholds[k]
                u = integrate(v[k], stage.current(h), self.leak)  # eq. 2 before the reset
                if grad:
                    if last[k] is None:
                        last[k] = torch.full_like(u, LAST_SPIKE_INIT, requires_grad=False)
                    o = stdb_spike(u, th, t - last[k], self.alpha, self.beta)  # eqs. 3, 12
                else:
                    o = (u > th).to(u.dtype)
                s, v[k] = fire(u, th, self.reset)  # reset; s is a bool tensor, not differentiated
                if grad:
                    last[k] = torch.where(s, float(t), last[k])
                h = self._through(stage.post, o, masks, generator)
            current = self.stages[-1].current(h)
            out = current if out is None else out + current  # eq. 5
        assert out is not None
        return out
