"""An snnTorch recurrent network trained on a temporal task, for the NIR recurrence tests and bench: sklearn's
digits read row by row (8 rows, one per step, then 4 silent steps; each row's 8 pixels as 16 input channels,
pixel > 0.25 and pixel > 0.625: deterministic spikes), 16 -> RSynaptic H (all-to-all recurrent Linear) ->
Linear 10 -> Synaptic 10, read out as output spike counts, BPTT with a fixed seed, exported with snnTorch's
real ``export_to_nir``.

Reset: NIR's CubaLIF (and Loihi) set v to 0 right after a spike, so the next step integrates from 0.  snnTorch
1.0's default (``reset_delay=True``) zeroes v one step later instead, the step after the spike losing its
input, which NIR cannot express; ``reset_delay=False`` is what NIR computes.  ``Synaptic(reset_delay=False)``
does it; ``RSynaptic(reset_delay=False)`` raises a TypeError in snnTorch 1.0 (its forward reads the ``spk``
argument, None with ``init_hidden``), so :class:`RSynapticResetNow` is RSynaptic with that reset done
right after the spike (the same line snnTorch's Synaptic runs).  ``delayed_reset=True`` trains snnTorch's
default instead, to measure what its delayed reset costs on deployment."""

from __future__ import annotations

from typing import Any

import numpy as np

STEPS = 12
N_IN = 16
BATCH = 128


def row_spikes(x: np.ndarray) -> np.ndarray:
    """Images (N, 1, 8, 8) in [0, 1] -> spikes (N, 16, 12): row r at step r, channels 0-7 pixel > 0.25 and
    8-15 pixel > 0.625; steps 8-11 silent."""
    img = x.reshape(len(x), 8, 8)
    s = np.zeros((len(x), N_IN, STEPS), np.uint8)
    s[:, :8, :8] = (img > 0.25).transpose(0, 2, 1)
    s[:, 8:, :8] = (img > 0.625).transpose(0, 2, 1)
    return s


def _rsynaptic_reset_now() -> Any:
    import snntorch as snn

    class RSynapticResetNow(snn.RSynaptic):
        """RSynaptic whose v is zeroed right after a spike (NIR's CubaLIF reset; module docstring)."""

        def forward(self, input_: Any) -> Any:
            spk = super().forward(input_)
            self.mem = self.mem - self.spk * self.mem  # reset now: the next step's delayed reset sees v = 0
            return spk

    return RSynapticResetNow


def build(hidden: int, delayed_reset: bool = False) -> Any:
    import snntorch as snn
    import torch
    from torch import nn

    rsyn = snn.RSynaptic if delayed_reset else _rsynaptic_reset_now()
    return nn.Sequential(
        nn.Linear(N_IN, hidden),
        rsyn(
            alpha=torch.full((hidden,), 0.5),
            beta=torch.full((hidden,), 0.85),
            threshold=torch.ones(hidden),
            linear_features=hidden,
            init_hidden=True,
            reset_mechanism="zero",
        ),
        nn.Linear(hidden, 10),
        snn.Synaptic(
            alpha=torch.full((10,), 0.5),
            beta=torch.full((10,), 0.85),
            threshold=torch.ones(10),
            init_hidden=True,
            output=True,
            reset_mechanism="zero",
            reset_delay=delayed_reset,
        ),
    )


def counts(net: Any, s: Any) -> Any:
    """Output spike counts (B, 10) of spikes ``s`` (B, 16, T), from a fresh state."""
    for m in net:
        if hasattr(m, "reset_mem"):
            m.reset_mem()
    return sum(net(s[..., t])[0] for t in range(s.shape[-1]))


def train(
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    seed: int = 0,
    hidden: int = 64,
    delayed_reset: bool = False,
    lr: float = 2e-2,
    init_gain: float = 3.0,
) -> Any:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    net = build(hidden, delayed_reset)
    with torch.no_grad():  # a livelier start than nn.Linear's default: hidden neurons fire from the first epoch
        net[0].weight.mul_(init_gain)
        net[2].weight.mul_(init_gain)
    s = torch.tensor(row_spikes(x), dtype=torch.float32)
    labels = torch.tensor(y)
    opt = torch.optim.Adam(net.parameters(), lr)
    for _ in range(epochs):
        perm = torch.randperm(len(s))
        for i in range(0, len(s), BATCH):
            idx = perm[i : i + BATCH]
            opt.zero_grad()
            F.cross_entropy(counts(net, s[idx]), labels[idx]).backward()
            opt.step()
    return net


def predict(net: Any, x: np.ndarray) -> np.ndarray:
    """snnTorch's own output spike counts (N, 10) on the row spikes of ``x``."""
    import torch

    with torch.no_grad():
        return counts(net, torch.tensor(row_spikes(x), dtype=torch.float32)).numpy()


def export(net: Any, path: Any) -> None:
    import nir
    import torch
    from snntorch.export_nir import export_to_nir

    nir.write(path, export_to_nir(net, torch.rand(N_IN)))
