"""Small recurrent and delayed networks (IR, compiled, written as netx), shared by the unit, parity and bench
code: a dense chain with one 'dense_rec' layer, and one with per-synapse random delays.  Seeds are arguments."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from loihic.compiler import ir
from loihic.compiler.netx.write import write_netx
from loihic.compiler.pipeline import compile_network


def _neuron(rng: np.random.Generator, spiking: bool = True) -> ir.Neuron:
    return ir.Neuron(
        threshold=1.0,
        current_decay=float(rng.choice([0.0, 0.25, 0.5, 1.0])),
        voltage_decay=float(rng.choice([0.0, 0.1, 0.3])),
        spiking=spiking,
    )


def temporal_net(  # noqa: PLR0913
    seed: int,
    sizes: tuple[int, ...] = (12, 16, 10, 5),
    recurrent: tuple[int, ...] = (1,),
    delayed: tuple[int, ...] = (),
    max_delay: int = 10,
    timesteps: int = 24,
    bias: bool = True,
) -> ir.Network:
    """A dense chain ``sizes[0] -> ... -> sizes[-1]`` (LIF, spiking output); layers (0-based) in ``recurrent``
    get a recurrent weight, those in ``delayed`` per-synapse delays 0..max_delay."""
    rng = np.random.default_rng(seed)
    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = rng.normal(0, 1.6 / np.sqrt(n_in), (n_out, n_in))
        w_rec = rng.normal(0, 0.8 / np.sqrt(n_out), (n_out, n_out)) if k in recurrent else None
        delay = rng.integers(0, max_delay + 1, (n_out, n_in)) if k in delayed else None
        b = rng.normal(0.05, 0.1, n_out) if bias else None
        layers.append(ir.Dense(f"fc{k}", w, b, _neuron(rng), weight_rec=w_rec, delay=delay))
    return ir.Network(ir.Input((sizes[0],)), tuple(layers), timesteps, "poisson", {"seed": seed})


def write_temporal(path: str | Path, net: ir.Network) -> Path:
    """Compile ``net`` and write it as netx at ``path``."""
    return write_netx(compile_network(net), path, {"timesteps": net.timesteps}, force=True)


def spikes(seed: int, n: int, n_in: int, steps: int, density: float = 0.2) -> np.ndarray:
    """(n, n_in, steps) uint8 random spike trains."""
    return (np.random.default_rng(seed).random((n, n_in, steps)) < density).astype(np.uint8)
