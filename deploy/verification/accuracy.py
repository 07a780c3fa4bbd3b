"""Accuracy of a netx file on real inputs, on the emulator or on Lava, with the inputs encoded by the shared
chunk rule (compiler/encoding.py ``encode_chunks``), so every backend sees the same spikes for one seed.

A sigma-delta (SDNN) file is run in stream timing: every image is held for T steps (its graded 8-bit values
enter the Delta input every step), each sample from a fresh network (netx never resets one), and the
prediction is the argmax of the Sigma read-out (its running sum) at the last step, which has settled once T
reaches the file's settle index + 1 (K + 1 steps for K synaptic layers: :func:`sdnn_settle_index`)."""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from loihic.compiler.encoding import encode_all, encode_chunks
from loihic.compiler.errors import InputError
from loihic.compiler.netx.read import NetxModel
from loihic.deploy.emulator.network import DEFAULT_MEMORY_MB, Emulator, LayerOverflow, merge_overflow, predict
from loihic.deploy.netx_run import message_bits, sdnn_settle_index


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


def check_sdnn_steps(model: NetxModel, steps: int) -> None:
    settle = sdnn_settle_index(model)
    if steps < settle + 1:
        raise InputError(
            f"{model.path}: T = {steps}: this sigma-delta network's read-out settles at step {settle + 1} "
            f"(sink index {settle}, the pipeline filled); pass --timesteps T >= {settle + 1}"
        )


def sdnn_predict(output: np.ndarray) -> np.ndarray:
    """Class per sample: argmax of the Sigma read-out (its running sum) at the last step."""
    return output[..., -1].reshape(output.shape[0], -1).argmax(axis=1)


def sdnn_emulator_accuracy(
    model: NetxModel,
    x: np.ndarray,
    y: np.ndarray,
    steps: int,
    device: str | None = None,
    progress: bool = True,
    memory_mb: float = DEFAULT_MEMORY_MB,
    overflow_out: list[LayerOverflow] | None = None,
) -> float:
    """Accuracy of a sigma-delta file on the emulator: images held for ``steps`` steps, stream timing, each sample
    from a fresh state (module docstring)."""
    emu = Emulator(model, device=device, input_message_bits=message_bits(model), memory_mb=memory_mb, stream=True)
    correct, totals = 0, None
    bar = tqdm(total=len(x), desc="emulator (sigma-delta)", unit="sample", disable=not progress, leave=False)
    for start, held in encode_chunks(x, steps, str(model.meta.get("encoding", "direct")), 0):
        res = emu.run(held, check_overflow=overflow_out is not None)
        totals = merge_overflow(totals, res.overflow)
        correct += int((sdnn_predict(res.output_spikes) == y[start : start + len(held)]).sum())
        bar.update(len(held))
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
    over Ray, deploy/scale/ray_lava.py).  ``overflow_out``: emulator only, see :func:`emulator_accuracy`.  A
    sigma-delta file: stream timing, the read-out's argmax at the last step (module docstring)."""
    if model.is_sigma_delta:
        check_sdnn_steps(model, steps)
    if backend == "emulator":
        if ray_address is not None:
            raise InputError("--ray shards Lava runs; use it with --backend lava-sim")
        if model.is_sigma_delta:
            return sdnn_emulator_accuracy(model, x, y, steps, device, memory_mb=memory_mb, overflow_out=overflow_out)
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
    if model.is_sigma_delta:
        res = run(
            model.path,
            encode_all(x, steps, encoding, seed),
            workers=workers,
            backend=backend,
            input_message_bits=message_bits(model),
            read_v=False,
            model=model,
            stream=True,
        )
        return float((sdnn_predict(res.output_spikes) == y).mean())
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
