"""Regenerate the golden netx files:  .venv/bin/python -m sim_tests.golden.make_golden

Each golden is a small seeded IR network (no training), compiled by the full pipeline and written
with the netx writer.  Seed 7; the files are compared structurally by sim_tests/unit/test_netx_io.py
(keys, dtypes, shapes, exact integers), so any change of the compiler's output shows up as a diff.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from loihic.compiler import ir
from loihic.compiler.config import CompileConfig
from loihic.compiler.netx.write import write_netx
from loihic.compiler.pipeline import compile_network

HERE = Path(__file__).parent
SEED = 7


def golden_networks() -> dict[str, ir.Network]:
    rng = np.random.default_rng(SEED)
    leaky = ir.Neuron(threshold=1.0, voltage_decay=0.1)
    readout = ir.Neuron(threshold=1.0, spiking=False)
    conv = ir.Network(
        ir.Input((1, 8, 8)),
        (
            ir.Conv("conv1", rng.normal(size=(4, 1, 3, 3)) * 0.5, rng.normal(size=4) * 0.05, leaky, padding=1),
            ir.AvgPool("pool1", 2, 2),
            ir.Conv("conv2", rng.normal(size=(6, 4, 3, 3)) * 0.3, None, leaky, padding=1),
            ir.Flatten("flat"),
            ir.Dense("fc", rng.normal(size=(5, 6 * 4 * 4)) * 0.2, None, readout),
        ),
        timesteps=16,
        encoding="poisson",
    )
    mlp = ir.Network(
        ir.Input((12,)),
        (
            ir.Dense("fc1", rng.normal(size=(10, 12)) * 0.4, None, ir.Neuron(threshold=0.8)),
            ir.Dense("fc2", rng.normal(size=(3, 10)) * 0.4, None, readout),
        ),
        timesteps=8,
        encoding="direct",
    )
    return {"conv_small": conv, "mlp_direct": mlp}


# input_bits=None: 8-bit graded input as the network declares (the goldens predate the automatic width)
GOLDEN_CONFIG = CompileConfig(input_bits=None)


def write_goldens(directory: Path) -> list[Path]:
    out = []
    for name, net in golden_networks().items():
        out.append(
            write_netx(
                compile_network(net, GOLDEN_CONFIG),
                directory / f"{name}.net",
                {"golden": name, "seed": SEED, "timesteps": net.timesteps, "encoding": net.encoding},
                force=True,
            )
        )
    return out


if __name__ == "__main__":
    for p in write_goldens(HERE):
        print(p, p.stat().st_size, "bytes")
