"""Accuracy of a netx file on real inputs, on the emulator or on Lava, with the inputs encoded by the shared
chunk rule (compiler/encoding.py ``encode_chunks``), so every backend sees the same spikes for one seed."""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from loihic.compiler.encoding import encode_all, encode_chunks
from loihic.compiler.errors import InputError
from loihic.compiler.netx.read import NetxModel
from loihic.deploy.emulator.network import DEFAULT_MEMORY_MB, Emulator, LayerOverflow, merge_overflow, predict
from loihic.deploy.netx_run import message_bits


def emulator_accuracy(
    model: NetxModel,
    x: np.ndarray,
    y: np.ndarray,
    steps: int,
    encoding: str,
    seed: int,
    device: str | None = None,
    progress: bool = True,
    memory_mb: float = DEFAULT_MEMORY_MB,
    overflow_out: list[LayerOverflow] | None = None,
) -> float:
    """Accuracy of the netx model on the emulator.  With a list as ``overflow_out``, the overflow monitor runs
    and the list receives its per-layer totals."""
    emu = Emulator(model, device=device, input_message_bits=message_bits(model), memory_mb=memory_mb)
    correct, totals = 0, None
    bar = tqdm(total=len(x), desc="emulator", unit="sample", disable=not progress, leave=False)
    for start, spikes in encode_chunks(x, steps, encoding, seed):
        res = emu.run(spikes, check_overflow=overflow_out is not None)
        totals = merge_overflow(totals, res.overflow)
        pred = predict(res.output_spikes, res.output_v, emu.output_spiking)
        correct += int((pred == y[start : start + len(spikes)]).sum())
        bar.update(len(spikes))
    bar.close()
    if overflow_out is not None:
        overflow_out[:] = totals or []
    return correct / len(x)


def netx_accuracy(
    model: NetxModel,
    x: np.ndarray,
    y: np.ndarray,
    steps: int,
    encoding: str,
    seed: int,
    backend: str = "emulator",
    workers: int = 1,
    device: str | None = None,
    ray_address: str | None = None,
    memory_mb: float = DEFAULT_MEMORY_MB,
    overflow_out: list[LayerOverflow] | None = None,
) -> float:
    """Accuracy of a netx file on the emulator or Lava (``backend`` lava-sim or loihi2; ``ray_address``: sharded
    over Ray, deploy/scale/ray_lava.py).  ``overflow_out``: emulator only, see :func:`emulator_accuracy`."""
    if backend == "emulator":
        if ray_address is not None:
            raise InputError("--ray shards Lava runs; use it with --backend lava-sim")
        return emulator_accuracy(
            model, x, y, steps, encoding, seed, device, memory_mb=memory_mb, overflow_out=overflow_out
        )
    if overflow_out is not None:
        raise InputError("--check-overflow counts on the emulator; use --backend emulator")
    from loihic.deploy.lava.run import run_lava_parallel

    run = run_lava_parallel
    if ray_address is not None:
        from loihic.deploy.scale.ray_lava import run_lava_ray

        run = lambda p, xs, workers, **kw: run_lava_ray(p, xs, address=ray_address, **kw)  # noqa: E731
    emu = Emulator(model, device="cpu", input_message_bits=message_bits(model))
    res = run(
        model.path,
        encode_all(x, steps, encoding, seed),
        workers=workers,
        backend=backend,
        input_message_bits=message_bits(model),
        read_v=not emu.output_spiking,
        model=model,
    )
    return float((predict(res.output_spikes, res.output_v, emu.output_spiking) == y).mean())
