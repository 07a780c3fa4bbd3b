"""Run a netx HDF5 file on Lava: the CPU simulator (bit-accurate ``fixed_pt``) or a Loihi 2 system.

Aligned timing (the default): all samples go through ONE network and ONE RingBuffer source, T steps each, with
netx's per-sample LIF resets (:mod:`loihic.deploy.lava.timing`); no ``Var.set`` per sample (about 25 us per
element).  Outputs are returned in the emulator's aligned time base, so the two compare index for index.
Stream timing (``stream=True``): every sample runs through a fresh, plain ``netx.hdf5.Network`` (no resets), and
its sink's record of the T steps is returned as it is.
Every run is supervised by :mod:`loihic.deploy.lava.guard`: it ends (a dead or stuck Lava process
fails it with one line, within a deadline), and its processes never outlive it or this process
(a live runtime after an exception would also hang the interpreter, spec 3).
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib.util
import multiprocessing as mp
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from loihic.compiler.errors import LoihicError
from loihic.compiler.netx.read import NetxModel, NxDense, NxFlatten, read_netx
from loihic.deploy.lava import compat as lava_compat
from loihic.deploy.lava import guard as lava_guard
from loihic.deploy.lava import no_orphans, timing

BACKENDS = ("lava-sim", "loihi2")
_NC_COMPILER = "lava.magma.compiler.subcompilers.nc.ncproc_compiler"  # ships with lava-loihi only


@dataclass
class LavaResult:
    output_spikes: np.ndarray  # (N, *out_shape, T) uint8 spikes (int32 sigma-delta messages), run's time base
    output_v: np.ndarray | None  # (N, *out_shape) int64: last layer's v (sigma-delta: sigma) at a sample's end
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


@dataclass
class _Job:
    """Everything a Lava session needs, prepared in the calling thread (see :func:`run_lava`)."""

    path: str
    model: NetxModel
    data: np.ndarray  # (*lava_shape, total) int32 source data, K zero columns appended
    steps: int  # T
    input_message_bits: int
    record_layers: bool
    cfg: object  # Lava run config
    read_v_after: dict[int, int]  # Lava step -> sample whose last-layer v is read after it
    out_v: np.ndarray | None
    stream: bool = False  # a plain network: no resets, the sink's record as it is

    @property
    def total(self) -> int:
        return self.data.shape[-1]


def _session(job: _Job, session: lava_guard.Session, sink_dir: str, progress_path: str) -> list[tuple[str, tuple]]:
    """Build the network, compile and start it, run ``session.plan``, stop it (the worker thread of
    :func:`lava_guard.supervise`).  Returns the sinks' (file, shape)."""
    netx = lava_compat.import_netx()
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc import io

    from loihic.deploy.lava.lavaproc import recorder

    model = job.model
    net = netx.hdf5.Network(
        net_config=job.path,
        reset_interval=None if job.stream else job.steps,
        reset_offset=0 if job.stream else timing.reset_offset(model.has_input_neuron),
        input_message_bits=job.input_message_bits,
        input_shape=model.netx_input_shape,  # (W, H, C) for a conv-first file without an 'input' layer, else None
    )
    session.net = net
    source = io.source.RingBuffer(data=job.data)
    source.s_out.connect(net.in_layer.neuron.a_in if model.has_input_neuron else net.inp)
    blocks = list(net.layers) if job.record_layers else [net.layers[-1]]
    sinks = []
    for i, block in enumerate(blocks):
        shape = tuple(block.out.shape)
        sink_path = os.path.join(sink_dir, f"sink{i}.i32")
        recorder.allocate(sink_path, shape, job.total)
        counter = progress_path if i == len(blocks) - 1 else ""  # the watchdog's step counter
        sink = recorder.MemmapSink(shape=shape, buffer=job.total, path=sink_path, progress=counter)
        block.out.connect(sink.a_in)
        sinks.append((sink_path, shape))
    net.create_runtime(run_cfg=job.cfg)  # compile and fork here, so the first run() is all stepping
    done = 0
    for k in session.plan:
        session.start_chunk()
        net.run(condition=RunSteps(num_steps=k), run_cfg=job.cfg)
        session.end_chunk(k)
        done += k
        if done in job.read_v_after:
            neuron = net.layers[-1].neuron  # LIF: v; a sigma-delta layer: sigma (the emulator's readout)
            v = np.asarray((neuron.sigma if model.is_sigma_delta else neuron.v).get()).astype(np.int64)
            job.out_v[job.read_v_after[done]] = _from_lava(v[..., None], model.output_shape)[..., 0]
    session.phase = "stopping"
    net.stop()
    return sinks


def run_lava(
    path: str,
    x: np.ndarray,
    backend: str = "lava-sim",
    input_message_bits: int = 0,
    record_layers: bool = False,
    read_v: bool = False,
    progress: bool = True,
    model: NetxModel | None = None,
    timeout: float | None = None,
    stream: bool | None = None,
) -> LavaResult:
    """Run samples ``x`` (N, *input_shape, T) of integers through the netx file ``path`` on Lava.

    ``read_v`` reads the last layer's voltage at the end of every sample (the integrator readout);
    it runs the network one sample at a time for that, in the same runtime.

    The run is watched (:mod:`loihic.deploy.lava.guard`): a Lava process that dies or hangs ends it
    with a one-line :class:`~loihic.deploy.lava.guard.LavaRunError`, and no Lava process outlives it
    or this process.  ``timeout`` (seconds; default ``$LOIHIC_LAVA_TIMEOUT``) replaces the automatic
    deadline with a fixed one.  ``stream``: stream timing (module doc), one fresh network per sample; None (the
    default): stream for a sigma-delta network (its only timing), aligned otherwise.
    """
    lava_compat.install()
    limit = lava_guard.resolve_timeout(timeout)
    model = model or read_netx(path, sigma_delta=True)
    if stream is None:
        stream = model.is_sigma_delta
    if model.is_sigma_delta and not stream:
        raise LoihicError(f"{path}: a sigma-delta network runs in stream timing only (netx never resets it)")
    # Each sample from a fresh network: in stream timing, as a plain netx run starts; and in both timings for a
    # recurrent or delayed file, whose synapses carry spikes across netx's resets (which zero u and v only), so
    # that one network would leak each sample into the next (deploy/emulator/temporal.py)
    if (stream or model.temporal) and x.shape[0] > 1:
        each = dict(backend=backend, input_message_bits=input_message_bits, record_layers=record_layers)
        each.update(read_v=read_v, progress=False, model=model, timeout=timeout, stream=stream)
        what = "stream" if stream else "aligned, one network per sample"
        runs = tqdm(range(x.shape[0]), desc=f"Lava {backend} ({what})", unit="sample", disable=not progress)
        return merge_results([run_lava(path, x[i : i + 1], **each) for i in runs])
    lava_compat.import_netx()
    from loihic.deploy.lava.lavaproc import recorder

    n, steps = x.shape[0], x.shape[-1]
    delay = 0 if stream else timing.output_delay(sum(1 for _ in model.neuron_layers))
    spatial = len(model.input.shape) == 3 and (
        model.has_input_neuron or not isinstance(model.layers[0], NxFlatten | NxDense)
    )
    lava_x = _to_lava(np.asarray(x, dtype=np.int32), spatial)
    job = _Job(
        path=path,
        model=model,
        data=np.concatenate([lava_x, np.zeros((*lava_x.shape[:-1], delay), np.int32)], axis=-1),
        steps=steps,
        input_message_bits=input_message_bits,
        record_layers=record_layers,
        cfg=_run_config(backend),
        read_v_after={(i + 1) * steps + delay: i for i in range(n)} if read_v else {},
        out_v=np.zeros((n, *model.output_shape), np.int64) if read_v else None,
        stream=stream,
    )
    bar = tqdm(total=n, desc=f"Lava {backend}", unit="sample", disable=not progress, leave=False)

    def show(session: lava_guard.Session) -> None:
        bar.update(min(n, max(0, session.step() - delay) // max(steps, 1)) - bar.n)

    try:
        with no_orphans.exit_cleanly_on_signals(), _sink_dir() as tmp:
            progress_path = os.path.join(tmp, "progress.i64")
            counter = recorder.allocate_progress(progress_path)
            session = lava_guard.Session(plan=_plan(n, steps, delay, read_v), live_step=lambda: counter[0])
            sinks = lava_guard.supervise(
                lambda s: _session(job, s, tmp, progress_path),
                session,
                label=f"{path}: {backend} run",
                timeout=limit,
                on_poll=show,
            )
            recorded = [recorder.read(p, shape, job.total).astype(np.int64) for p, shape in sinks]
    finally:
        bar.close()
    shapes = ([model.input.shape] if model.has_input_neuron else []) + [lay.shape for lay in model.neuron_layers]
    delays = [0] * len(shapes) if stream else _block_delays(model)
    if not record_layers:
        shapes, delays = shapes[-1:], delays[-1:]
    spikes = []
    for data_k, shape, d in zip(recorded, shapes, delays, strict=True):
        aligned = _from_lava(data_k, shape)[..., d : d + n * steps]
        dtype = np.int32 if model.is_sigma_delta else np.uint8  # graded messages, or spikes
        spikes.append(np.moveaxis(aligned.reshape(*shape, n, steps), -2, 0).astype(dtype))
    return LavaResult(spikes[-1], job.out_v, spikes if record_layers else None)


_SINK_PREFIX = "loihic-sink-"


def _sink_dir() -> tempfile.TemporaryDirectory:
    """A private folder for the sinks' memory-mapped files, in /dev/shm when there is one.  Its name
    carries our pid, so that folders left by a process that was killed (SIGKILL: no cleanup is
    possible) are removed by the next run."""
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    for entry in os.listdir(shm):
        pid = entry[len(_SINK_PREFIX) :].split("-", 1)[0]
        if entry.startswith(_SINK_PREFIX) and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(os.path.join(shm, entry), ignore_errors=True)
    return tempfile.TemporaryDirectory(prefix=f"{_SINK_PREFIX}{os.getpid()}-", dir=shm)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _plan(n: int, steps: int, delay: int, read_v: bool) -> list[int]:
    """Steps of each ``run()`` call.  Samples go in chunks of about 2000 steps, or one at a time when
    ``read_v`` (v is read after each); the pipeline's ``delay`` rides on the first chunk, and its
    first :data:`~loihic.deploy.lava.guard.PROBE_STEPS` steps run alone so the watchdog can time them."""
    chunk = 1 if read_v else max(1, min(n, 2000 // max(steps, 1)))
    sizes = [min(chunk, n - i) * steps for i in range(0, n, chunk)]
    sizes[0] += delay
    probe = min(sizes[0], lava_guard.PROBE_STEPS)
    return ([probe, sizes[0] - probe] if probe < sizes[0] else [probe]) + sizes[1:]


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
    # each worker dies with this process (SIGTERM, so that it stops its own Lava children first)
    guard = {"initializer": no_orphans.die_with_parent, "initargs": (os.getpid(), signal.SIGTERM)}
    with cf.ProcessPoolExecutor(len(jobs), mp_context=ctx, **guard) as pool:
        results = list(tqdm(pool.map(_worker, jobs), total=len(jobs), desc="Lava workers", leave=False))
    return merge_results(results)


def merge_results(results: list[LavaResult]) -> LavaResult:
    """Results of consecutive sample ranges, in order, as one result."""
    cat = lambda arrs: None if arrs[0] is None else np.concatenate(arrs)  # noqa: E731
    layers = None
    if results[0].layer_spikes is not None:
        layers = [np.concatenate([r.layer_spikes[i] for r in results]) for i in range(len(results[0].layer_spikes))]
    return LavaResult(cat([r.output_spikes for r in results]), cat([r.output_v for r in results]), layers)
