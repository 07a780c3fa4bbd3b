"""Verify a netx file spike for spike: the batched emulator against Lava, layer by layer."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from loihic.compiler.netx.read import NetxModel, read_netx
from loihic.deploy.emulator.network import DEFAULT_MEMORY_MB, Emulator, LayerOverflow, predict
from loihic.deploy.lava.run import run_lava_parallel


@dataclass
class Mismatch:
    layer: int  # the netx layer number (``NetxModel.neuron_layer_index``)
    sample: int
    neuron: list[int]  # index within the layer, (C, H, W) or (n,)
    step: int  # aligned time step within the sample
    emulator: int
    lava: int


@dataclass
class VerifyReport:
    samples: int
    timesteps: int
    spikes_equal: bool
    mismatches: int  # differing (layer, sample, neuron, step) entries
    spikes_compared: int
    voltage_equal: bool | None  # integrator readout voltages, when the output layer is one
    first_mismatch: Mismatch | None
    accuracy_emulator: float | None
    accuracy_lava: float | None
    emulator_seconds: float
    lava_seconds: float
    overflow: list[LayerOverflow] | None = None  # the emulator's overflow monitor, per neuron layer
    stream: bool = False  # the timing both ran in: stream, or aligned
    # netx layer numbers of the recurrent ('dense_rec') and delayed ('delay') layers compared (each sample then
    # runs from a fresh Lava network in both timings: deploy/emulator/temporal.py), and the largest delay
    recurrent_layers: list[int] | None = None
    delayed_layers: list[int] | None = None
    max_delay: int | None = None

    @property
    def temporal_note(self) -> str:
        """One line naming the recurrent and delayed layers, or '' for a feed-forward network."""
        parts = []
        if self.recurrent_layers:
            parts.append(f"recurrent layers {self.recurrent_layers}")
        if self.delayed_layers:
            parts.append(f"delayed layers {self.delayed_layers} (delays up to {self.max_delay} steps)")
        return ("; ".join(parts) + ", one Lava network per sample") if parts else ""

    @property
    def identical(self) -> bool:
        """Every spike of every layer, and the readout voltages, equal."""
        return self.spikes_equal and self.voltage_equal is not False

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "identical": self.identical}


def first_mismatch(emu: list[np.ndarray], lava: list[np.ndarray], numbers: list[int] | None = None) -> Mismatch | None:
    """The earliest divergence: first layer with any difference, then its earliest step.  ``numbers``: the netx
    layer number of each entry (``NetxModel.neuron_layer_index``); list positions without it."""
    for k, (a, b) in enumerate(zip(emu, lava, strict=True)):
        diff = np.argwhere(a != b)
        if len(diff):
            idx = diff[np.argmin(diff[:, -1])]
            return Mismatch(
                layer=k if numbers is None else numbers[k],
                sample=int(idx[0]),
                neuron=[int(i) for i in idx[1:-1]],
                step=int(idx[-1]),
                emulator=int(a[tuple(idx)]),
                lava=int(b[tuple(idx)]),
            )
    return None


def verify(
    path: str,
    x: np.ndarray,
    labels: np.ndarray | None = None,
    input_message_bits: int = 0,
    backend: str = "lava-sim",
    workers: int = 1,
    device: str | None = None,
    model: NetxModel | None = None,
    progress: bool = True,
    ray_address: str | None = None,
    memory_mb: float = DEFAULT_MEMORY_MB,
    stream: bool | None = None,
) -> VerifyReport:
    """Run ``x`` on Lava and on the emulator and compare every spike of every layer (and the read-out's final
    v); ``stream``: both in stream timing (deploy/lava/timing.py) instead of aligned; None: stream for a
    sigma-delta network, aligned otherwise."""
    model = model or read_netx(path)
    emulator = Emulator(model, device=device, input_message_bits=input_message_bits, memory_mb=memory_mb, stream=stream)
    t0 = time.perf_counter()
    emu = emulator.run(x, record_layers=True, check_overflow=True)
    t1 = time.perf_counter()
    readout = not emulator.output_spiking
    run = run_lava_parallel
    if ray_address is not None:  # sharded over Ray (deploy/scale/ray_lava.py); same result as one process
        from loihic.deploy.scale.ray_lava import run_lava_ray

        run = lambda p, xs, workers, **kw: run_lava_ray(p, xs, address=ray_address, **kw)  # noqa: E731
    lava = run(
        path,
        x,
        workers=workers,
        backend=backend,
        input_message_bits=input_message_bits,
        record_layers=True,
        read_v=readout,
        progress=progress,
        stream=emulator.stream,
        model=model,
    )
    t2 = time.perf_counter()
    emu_layers, lava_layers = emu.layer_spikes or [], lava.layer_spikes or []
    mismatches = sum(int((a != b).sum()) for a, b in zip(emu_layers, lava_layers, strict=True))
    compared = sum(a.size for a in emu_layers)
    v_equal = bool(np.array_equal(emu.output_v, lava.output_v)) if readout else None
    acc_e = acc_l = None
    if labels is not None:
        acc_e = float((predict(emu.output_spikes, emu.output_v, emulator.output_spiking) == labels).mean())
        acc_l = float((predict(lava.output_spikes, lava.output_v, emulator.output_spiking) == labels).mean())
    return VerifyReport(
        samples=int(x.shape[0]),
        timesteps=int(x.shape[-1]),
        spikes_equal=mismatches == 0,
        mismatches=mismatches,
        spikes_compared=compared,
        voltage_equal=v_equal,
        first_mismatch=first_mismatch(emu_layers, lava_layers, model.neuron_layer_index),
        accuracy_emulator=acc_e,
        accuracy_lava=acc_l,
        emulator_seconds=t1 - t0,
        lava_seconds=t2 - t1,
        overflow=emu.overflow,
        stream=emulator.stream,
        **_temporal_fields(model),
    )


def _temporal_fields(model: NetxModel) -> dict[str, Any]:
    numbers = model.neuron_layer_index[1:] if model.has_input_neuron else model.neuron_layer_index
    layers = list(zip(numbers, model.neuron_layers, strict=True))
    rec = [i for i, lay in layers if getattr(lay, "weight_rec", None) is not None]
    dly = [(i, int(lay.delay.max())) for i, lay in layers if getattr(lay, "delay", None) is not None]
    if not rec and not dly:
        return {}
    return {
        "recurrent_layers": rec,
        "delayed_layers": [i for i, _ in dly],
        "max_delay": max((d for _, d in dly), default=None),
    }
