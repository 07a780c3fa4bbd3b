"""Run a netx HDF5 file on Lava: the CPU simulator (bit-accurate ``fixed_pt``) or a Loihi 2 system.

All samples go through ONE network and ONE RingBuffer source, T steps each, with netx's per-sample
LIF resets (:mod:`loihic.deploy.timing`); no ``Var.set`` per sample (about 25 us per element).
Outputs are returned in the emulator's aligned time base, so the two compare index for index.
The runtime is always stopped in ``finally``: a live runtime after an exception hangs the
interpreter (spec 3).
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib.util
import multiprocessing as mp
import os
import tempfile
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from loihic.compiler.errors import LoihicError
from loihic.compiler.netx.read import NetxModel, NxDense, NxFlatten, read_netx
from loihic.deploy import lava_compat, timing

BACKENDS = ("lava-sim", "loihi2")
_NC_COMPILER = "lava.magma.compiler.subcompilers.nc.ncproc_compiler"  # ships with lava-loihi only


@dataclass
class LavaResult:
    output_spikes: np.ndarray  # (N, *out_shape, T) uint8, aligned time base
    output_v: np.ndarray | None  # (N, *out_shape) int64: last layer's v at each sample's last step
    layer_spikes: list[np.ndarray] | None  # per neuron layer (N, *shape, T), when recorded


def _to_lava(x: np.ndarray, spatial: bool) -> np.ndarray:
    """(N, *shape, T) -> (*lava_shape, N*T): images as (W, H, C) when the first block is spatial
    (conv, or an image input neuron), else features flattened in torch's C order (spec 1.2, 3)."""
    n, steps = x.shape[0], x.shape[-1]
    if spatial:
        return x.transpose(3, 2, 1, 0, 4).reshape(x.shape[3], x.shape[2], x.shape[1], n * steps)
    feat = x.reshape(n, -1, steps)
    return feat.transpose(1, 0, 2).reshape(feat.shape[1], n * steps)


def _from_lava(data: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sink data (*lava_shape, steps) -> (*shape, steps) in our (C, H, W) layout."""
    return data.transpose(2, 1, 0, 3) if len(shape) == 3 else data.reshape(*shape, data.shape[-1])


def _run_config(backend: str):  # noqa: ANN202 - Lava types
    from lava.magma.core.run_configs import Loihi2HwCfg, Loihi2SimCfg

    if backend == "lava-sim":
        return Loihi2SimCfg(select_tag="fixed_pt")
    if backend == "loihi2":
        if importlib.util.find_spec(_NC_COMPILER.rsplit(".", 1)[0]) is None:
            raise LoihicError(
                "backend 'loihi2' needs Intel's lava-loihi extension and a Loihi 2 system, "
                "which are not installed here; use --backend lava-sim"
            )
        return Loihi2HwCfg(select_sub_proc_model=True)
    raise LoihicError(f"backend '{backend}' is not one of {', '.join(BACKENDS)}")


def run_lava(
    path: str,
    x: np.ndarray,
    backend: str = "lava-sim",
    input_message_bits: int = 0,
    record_layers: bool = False,
    read_v: bool = False,
    progress: bool = True,
    model: NetxModel | None = None,
) -> LavaResult:
    """Run samples ``x`` (N, *input_shape, T) of integers through the netx file ``path`` on Lava.

    ``read_v`` reads the last layer's voltage at the end of every sample (the integrator readout);
    it runs the network one sample at a time for that, in the same runtime.
    """
    lava_compat.install()
    model = model or read_netx(path)
    netx = lava_compat.import_netx()
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc import io

    n, steps = x.shape[0], x.shape[-1]
    delay = timing.output_delay(sum(1 for _ in model.neuron_layers))
    spatial = len(model.input.shape) == 3 and (
        model.has_input_neuron or not isinstance(model.layers[0], NxFlatten | NxDense)
    )
    lava_x = _to_lava(np.asarray(x, dtype=np.int32), spatial)
    data = np.concatenate([lava_x, np.zeros((*lava_x.shape[:-1], delay), np.int32)], axis=-1)
    total = timing.total_steps(n, steps, delay)
    cfg = _run_config(backend)
    net = netx.hdf5.Network(
        net_config=path,
        reset_interval=steps,
        reset_offset=timing.reset_offset(model.has_input_neuron),
        input_message_bits=input_message_bits,
    )
    source = io.source.RingBuffer(data=data)
    if model.has_input_neuron:
        source.s_out.connect(net.in_layer.neuron.a_in)
    else:
        source.s_out.connect(net.inp)
    from loihic.deploy.lavaproc import recorder

    blocks = list(net.layers) if record_layers else [net.layers[-1]]
    tmpdir = tempfile.TemporaryDirectory(prefix="loihic-sink-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    sinks = []
    for i, block in enumerate(blocks):
        shape = tuple(block.out.shape)
        sink_path = os.path.join(tmpdir.name, f"sink{i}.i32")
        recorder.allocate(sink_path, shape, total)
        sink = recorder.MemmapSink(shape=shape, buffer=total, path=sink_path)
        block.out.connect(sink.a_in)
        sinks.append((sink_path, shape))
    shapes = ([model.input.shape] if model.has_input_neuron else []) + [lay.shape for lay in model.neuron_layers]
    shapes = shapes if record_layers else shapes[-1:]
    delays = _block_delays(model)
    delays = delays if record_layers else delays[-1:]
    out_v = np.zeros((n, *model.output_shape), np.int64) if read_v else None
    chunk = 1 if read_v else max(1, min(n, 2000 // max(steps, 1)))
    bar = tqdm(total=n, desc=f"Lava {backend}", unit="sample", disable=not progress, leave=False)
    try:
        done = 0
        while done < n:
            k = min(chunk, n - done)
            run_for = k * steps + (delay if done == 0 else 0)
            net.run(condition=RunSteps(num_steps=run_for), run_cfg=cfg)
            if read_v:
                v = np.asarray(net.layers[-1].neuron.v.get()).astype(np.int64)
                out_v[done] = _from_lava(v[..., None], model.output_shape)[..., 0]
            done += k
            bar.update(k)
    finally:
        bar.close()
        net.stop()
    try:
        recorded = [recorder.read(p, shape, total).astype(np.int64) for p, shape in sinks]
    finally:
        tmpdir.cleanup()
    spikes = []
    for data_k, shape, d in zip(recorded, shapes, delays, strict=True):
        aligned = _from_lava(data_k, shape)[..., d : d + n * steps]
        spikes.append(np.moveaxis(aligned.reshape(*shape, n, steps), -2, 0).astype(np.uint8))
    return LavaResult(spikes[-1], out_v, spikes if record_layers else None)


def _block_delays(model: NetxModel) -> list[int]:
    """Sink delay of every block netx creates, in order (input neuron first when present)."""
    delays = [0] if model.has_input_neuron else []
    return delays + [i + 1 for i in range(len(model.neuron_layers))]


def _worker(args: tuple) -> LavaResult:
    path, x, kwargs = args
    return run_lava(path, x, progress=False, **kwargs)


def run_lava_parallel(path: str, x: np.ndarray, workers: int = 1, **kwargs) -> LavaResult:
    """Split the samples across ``workers`` processes, each with its own Lava runtime."""
    if workers <= 1 or x.shape[0] < 2:
        return run_lava(path, x, **kwargs)
    kwargs.pop("progress", None)
    parts = np.array_split(np.arange(x.shape[0]), workers)
    jobs = [(path, x[idx], kwargs) for idx in parts if len(idx)]
    ctx = mp.get_context("spawn")  # a clean interpreter per worker; each installs lava_compat itself
    with cf.ProcessPoolExecutor(len(jobs), mp_context=ctx) as pool:
        results = list(tqdm(pool.map(_worker, jobs), total=len(jobs), desc="Lava workers", leave=False))
    cat = lambda arrs: None if arrs[0] is None else np.concatenate(arrs)  # noqa: E731
    layers = None
    if results[0].layer_spikes is not None:
        layers = [np.concatenate([r.layer_spikes[i] for r in results]) for i in range(len(results[0].layer_spikes))]
    return LavaResult(cat([r.output_spikes for r in results]), cat([r.output_v for r in results]), layers)
