"""The Python API: the same road as the CLI, for a model trained anywhere.

::

    import loihic
    snn = loihic.convert(model, x_calib, timesteps=64)         # nn.Module (eval mode) or a file
    loihic.compile(snn, "model.net")                             # Loihi fixed point -> netx HDF5
    acc = loihic.evaluate("model.net", x_test, y_test)           # emulator (or backend="lava-sim")
    rep = loihic.verify("model.net", x_test[:20])                # Lava vs emulator, spike for spike
    run = loihic.simulate("model.net", x_test[:5])               # output spikes and read-out voltages

Inputs ``x`` are real-valued, shaped like the model's input ``(N, *input_shape)``, in [0, 1]; they are
encoded with the file's encoding and T by the shared chunk rule (``compiler/encoding.py``), so the CLI and this
API see the same spikes for the same ``seed``.  Every function raises
:class:`~loihic.compiler.errors.LoihicError` (one line) on bad input.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from loihic.compiler.errors import InputError

PathLike = str | os.PathLike


def _inputs(x: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    from loihic.training.data import load_inputs

    if isinstance(x, (str, os.PathLike)):
        return load_inputs(x, shape, what)
    arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float32)
    if arr.ndim < 1 or tuple(arr.shape[1:]) != tuple(shape) or len(arr) == 0:
        raise InputError(f"{what} have shape {arr.shape}; expected (N, {', '.join(map(str, shape))})")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise InputError(f"{what} must be finite and within [0, 1] (the raw input before any normalisation)")
    return arr


def convert(
    model: Any,
    calib: Any,
    timesteps: int | None = None,
    *,
    neuron: str = "lif",
    budget: float | None = None,
    thresholds: Any = None,
    pooling: str | None = None,
    norm: str = "max",
    reset: str = "hard",
    leak: float = 1.0,
    encoding: str = "poisson",
    seed: int = 0,
    calib_samples: int = 512,
    input_mean: Any = None,
    input_std: Any = None,
    progress: bool = False,
) -> dict[str, Any]:
    """An ANN -> SNN checkpoint (dict) by threshold balancing (Datta et al. Fig. 3).

    ``model``: an ``nn.Module`` in eval mode (exported with ``torch.export`` on ``calib[:2]``), a
    ``torch.export`` ``.pt2`` file, or a loihic ANN checkpoint (file or dict).  ``calib``: inputs
    ``(N, *input_shape)`` in [0, 1] (array, tensor or ``.npy`` path).  ``input_mean`` / ``input_std``: a
    normalisation applied outside the model, folded into its first layer.

    ``neuron="sdnn"``: a sigma-delta network instead (deploy/sdnn_convert.py): a Delta input, SigmaDelta hidden
    layers, a Sigma read-out; ``timesteps`` defaults to K + 1 (K synaptic layers), the delta thresholds are
    chosen for ``budget`` (default 0.01: the settled read-out on ``calib`` within 1% of its range of the
    zero-threshold network's) or set by ``thresholds`` (the input's, then each hidden layer's); ``pooling``:
    ``"layer"`` (default) or ``"fold"``, average pooling a layer of its own or folded into the next layer.  ``norm``,
    ``reset``, ``leak`` and ``encoding`` apply to ``neuron="lif"`` (default 64 steps) only.
    """
    from loihic.compiler.fileio import file_sha256
    from loihic.training.checkpoint import validate_checkpoint
    from loihic.training.convert import convert as balance
    from loihic.training.imported import import_torch, load_ann

    sha = None
    if isinstance(model, dict):
        ann = validate_checkpoint(model, "model", "ann")
    elif isinstance(model, (str, os.PathLike)):
        ann, sha = load_ann(model, input_mean, input_std), file_sha256(model)
    else:
        if isinstance(calib, (str, os.PathLike)):
            calib = np.load(calib, allow_pickle=False)
        example = np.asarray(calib[:2], dtype=np.float32)
        ann = import_torch(model, example, input_mean, input_std)
        _check_reproduces(model, example, ann)
    if ann.get("kind") != "ann":
        raise InputError("model is an SNN checkpoint; convert needs an ANN")
    x = _inputs(calib, tuple(ann["input_shape"]), "calibration inputs")
    if neuron not in ("lif", "sdnn"):
        raise InputError(f"neuron {neuron!r}: expected 'lif' (rate-coded) or 'sdnn' (sigma-delta)")
    if neuron == "sdnn":
        from loihic.deploy.sdnn_convert import DEFAULT_BUDGET, convert_sdnn

        lif = [
            k
            for k, v, d in (
                ("norm", norm, "max"),
                ("reset", reset, "hard"),
                ("leak", leak, 1.0),
                ("encoding", encoding, "poisson"),
            )
            if v != d
        ]
        if lif:
            raise InputError(f"{', '.join(lif)}: apply to neuron='lif', not to a sigma-delta network")
        if thresholds is not None and budget is not None:
            raise InputError("thresholds and budget are alternatives: set the thresholds, or a budget for them")
        return convert_sdnn(
            ann,
            x,
            DEFAULT_BUDGET if budget is None else budget,
            thresholds,
            timesteps,
            seed=seed,
            calib_samples=calib_samples,
            source_sha256=sha,
            pooling=pooling or "layer",
        )
    if budget is not None or thresholds is not None or pooling is not None:
        raise InputError("budget, thresholds and pooling apply to neuron='sdnn'")
    return balance(
        ann,
        x,
        64 if timesteps is None else timesteps,
        norm=norm,
        reset=reset,
        leak=leak,
        encoding=encoding,
        seed=seed,
        calib_samples=calib_samples,
        progress=progress,
        source_sha256=sha,
    )


def _check_reproduces(module: Any, example: np.ndarray, ann: dict[str, Any]) -> None:
    """The imported ANN computes what the module does on the example (before a dropped final softmax)."""
    import torch

    from loihic.compiler.errors import LoihicError
    from loihic.training.models import model_from_checkpoint

    x = torch.as_tensor(example)
    with torch.no_grad():
        ref = module(x).float()
        out = model_from_checkpoint(ann)(x)
        for op in ann["imported"]["dropped_final_ops"]:
            out = torch.log_softmax(out, 1) if "log_softmax" in op else torch.softmax(out, 1)
    err = float((ref - out).abs().max())
    tol = 1e-4 * max(1.0, float(ref.abs().max()))
    if ref.shape != out.shape or not err <= tol:
        raise LoihicError(
            f"<nn.Module {type(module).__name__}>: the imported network does not reproduce the model's output "
            f"(max difference {err:.3g}, tolerance {tol:.3g}); this is a loihic bug, please report it"
        )


def compile(  # noqa: A001
    snn: dict[str, Any] | PathLike,
    path: PathLike,
    *,
    force: bool = False,
    timesteps: int | None = None,
    dt: float | None = None,
    nir_bias: str = "exact",
    nir_from: str = "nir",
    **config: Any,
) -> Path:
    """SNN checkpoint (dict or file) or NIR graph file -> netx HDF5 at ``path``, through the compile driver
    (compiler/driver.py).  ``timesteps``, ``dt``, ``nir_bias`` ("exact" | "steady": CubaLIF synapse biases) and
    ``nir_from`` ("nir" | "norse": the exporter's convention): NIR graphs only (CLI ``--nir-bias``, ``--from``).
    ``config``: :class:`CompileConfig` fields (``l4``, ``l4_rs``, ``input_bits``, ``force_hard_reset``,
    ``calib``: calibration spike trains (N, n_in, T) for a NIR graph's rounding, CLI ``--calib``).  What
    may cost accuracy is issued as a :class:`~loihic.compiler.errors.LoihicWarning`; nothing is printed."""
    import warnings

    from loihic.compiler.config import CompileConfig
    from loihic.compiler.driver import compile_source, nir_source
    from loihic.compiler.errors import LoihicWarning
    from loihic.compiler.fileio import check_output
    from loihic.compiler.load.nir import is_nir
    from loihic.training.deployment import checkpoint_source

    cfg = CompileConfig(**config)
    check_output(path, force)
    if not isinstance(snn, dict) and Path(snn).is_file() and is_nir(snn):
        source = nir_source(snn, timesteps, dt, nir_bias, nir_from)
    elif timesteps is not None or dt is not None or nir_bias != "exact" or nir_from != "nir":
        raise InputError("timesteps, dt, nir_bias and nir_from apply to NIR graphs; a checkpoint records its T")
    else:
        source = checkpoint_source(snn if isinstance(snn, dict) else str(snn), cfg, default_offset=True)
    result = compile_source(source, path, cfg, force)
    for line in result.warnings:
        warnings.warn(line, LoihicWarning, stacklevel=2)
    return result.path


def _netx(
    path: PathLike, timesteps: int | None, x: Any = None, spikes: bool = False, sigma_delta: bool = False
) -> tuple[Any, int, str]:
    """The netx model, T and encoding; a conv-first file without an 'input' layer takes its input shape from
    ``x`` (inputs (N, C, H, W), or spikes (N, C, H, W, T) when ``spikes``), as the CLI does.  ``sigma_delta``:
    SDNN files are read too (simulate, verify)."""
    from loihic.deploy.netx_run import netx_run_settings, read_net

    def data_shape() -> tuple[tuple[int, ...], str] | None:
        if x is None or isinstance(x, (str, os.PathLike)):
            return None
        shape = tuple(int(s) for s in np.shape(x)[1:])
        return (shape[:-1] if spikes else shape), "the data"

    model = read_net(str(path), None, data_shape, sigma_delta)
    if spikes:  # T is the spikes' own
        return model, int(np.shape(x)[-1]), str(model.meta.get("encoding", "poisson"))
    _, steps, encoding = netx_run_settings(model, None, timesteps)
    return model, steps, encoding


def evaluate(
    path: PathLike,
    x: Any,
    y: Any,
    *,
    backend: str = "emulator",
    timesteps: int | None = None,
    seed: int = 0,
    workers: int = 1,
    device: str | None = None,
) -> float:
    """Accuracy of a netx file on inputs ``x`` with labels ``y`` (``backend``: emulator, lava-sim, loihi2).  A
    sigma-delta file: every image held for ``timesteps`` steps (default: the file's), each sample from a fresh
    state (stream timing), the prediction the argmax of the Sigma read-out at the last step."""
    from loihic.deploy.netx_run import append_always_on, user_input_shape
    from loihic.deploy.verification.accuracy import netx_accuracy

    model, steps, encoding = _netx(path, timesteps, x, sigma_delta=True)
    xs = append_always_on(model, _inputs(x, user_input_shape(model), "inputs"))
    labels = np.asarray(y)
    if labels.shape != (len(xs),) or labels.dtype.kind not in "iu":
        raise InputError(f"labels have shape {labels.shape} and dtype {labels.dtype}; expected ({len(xs)},) ints")
    return netx_accuracy(model, xs, labels, steps, encoding, seed, backend, workers, device)


def verify(
    path: PathLike,
    x: Any,
    y: Any = None,
    *,
    backend: str = "lava-sim",
    timesteps: int | None = None,
    seed: int = 0,
    workers: int = 1,
    stream: bool | None = None,
) -> Any:
    """Lava against the emulator, spike for spike on every layer: a
    :class:`~loihic.deploy.verification.parity.VerifyReport`
    (``.identical``, ``.first_mismatch``, accuracies when ``y`` is given).  ``stream``: stream timing (each
    sample through a fresh plain netx network, pipeline fill included) instead of aligned; None: stream for a
    sigma-delta network (its only timing), aligned otherwise."""
    from loihic.compiler.encoding import encode_all as encoded
    from loihic.deploy.netx_run import append_always_on, message_bits, user_input_shape
    from loihic.deploy.verification.parity import verify as run_verify

    model, steps, encoding = _netx(path, timesteps, x, sigma_delta=True)
    xs = append_always_on(model, _inputs(x, user_input_shape(model), "inputs"))
    spikes = encoded(xs, steps, encoding, seed)
    labels = None if y is None else np.asarray(y)
    bits = message_bits(model)
    return run_verify(
        str(path), spikes, labels, input_message_bits=bits, backend=backend, workers=workers, model=model, stream=stream
    )


def simulate(
    path: PathLike,
    x: Any,
    *,
    backend: str = "emulator",
    timesteps: int | None = None,
    seed: int = 0,
    device: str | None = None,
    stream: bool | None = None,
) -> Any:
    """Run a netx file; ``x`` is real inputs ``(N, *input_shape)`` (encoded as the file says) or integer
    spikes ``(N, *input_shape, T)``.  Returns the emulator's or Lava's result (``.output_spikes``,
    ``.output_v``).  ``stream``: stream timing (``out[..., t]`` is a plain netx run's record at step t) instead
    of aligned; None: stream for a sigma-delta network (its only timing), aligned otherwise."""
    from loihic.compiler.encoding import encode_all as encoded
    from loihic.deploy.emulator.network import Emulator
    from loihic.deploy.netx_run import append_always_on, message_bits, user_input_shape

    arr = np.asarray(x)
    is_spikes = arr.dtype.kind in "iub" and arr.ndim in (3, 5)  # (N, n, T) or (N, C, H, W, T) integers
    model, steps, encoding = _netx(path, timesteps, arr, spikes=is_spikes, sigma_delta=True)
    shape = user_input_shape(model)
    if arr.ndim == len(shape) + 2 and arr.dtype.kind in "iub":
        if tuple(arr.shape[1:-1]) != shape:
            raise InputError(f"spikes of shape {arr.shape}; expected (N, {', '.join(map(str, shape))}, T)")
        spikes = append_always_on(model, arr)
    else:
        spikes = append_always_on(model, encoded(_inputs(arr, shape, "inputs"), steps, encoding, seed))
    bits = message_bits(model)
    if backend == "emulator":
        return Emulator(model, device=device, input_message_bits=bits, stream=stream).run(spikes)
    from loihic.deploy.lava.run import run_lava

    emu_spiking = Emulator(model, device="cpu", input_message_bits=bits).output_spiking
    return run_lava(
        str(path), spikes, backend=backend, input_message_bits=bits, read_v=not emu_spiking, model=model, stream=stream
    )
