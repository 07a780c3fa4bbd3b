"""What any run of a netx file needs, shared by the emulator, Lava, the CLI and the Python API: the model read
with the input shape a conv-first file without an 'input' layer needs, T and the encoding (options first, then
the file's loihic metadata), and the width of the graded input messages."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from loihic.compiler.encoding import direct_bits
from loihic.compiler.errors import InputError, LoihicWarning, NetxFormatError, NetxInputShapeError
from loihic.compiler.netx.read import NetxModel, read_netx


def message_bits(model: NetxModel, override: int | None = None) -> int:
    """Bits of the graded input messages: ``override`` (0..24), else what the file's encoding needs."""
    if override is not None:
        if not 0 <= override <= 24:
            raise InputError(f"--input-message-bits {override} outside [0, 24]")
        return override
    return direct_bits(str(model.meta.get("encoding", "poisson")))


def sdnn_settle_index(model: NetxModel) -> int:
    """The first sink index (0-based step) at which a sigma-delta file's read-out of a held input has settled:
    the file's ``sdnn.settle_index`` (loihic writes it), else K, the number of its synaptic layers."""
    recorded = (model.meta.get("sdnn") or {}).get("settle_index")
    return int(recorded) if recorded is not None else len(list(model.neuron_layers))


def sdnn_default_steps(model: NetxModel) -> int:
    """T for a sigma-delta file: the T it records (loihic: settle index + 1), else its settle index + 2."""
    return int(model.meta.get("timesteps") or sdnn_settle_index(model) + 2)


def netx_run_settings(model: NetxModel, dataset: str | None, timesteps: int | None) -> tuple[str | None, int, str]:
    """Data set (None when neither given nor recorded), T and encoding for a netx file: options first, then the
    file's loihic metadata.  More steps than the file was range-checked for is a :class:`LoihicWarning`.  A
    sigma-delta file: T defaults to :func:`sdnn_default_steps`, its graded input to 'direct'."""
    ds = dataset or model.meta.get("dataset") or None
    if model.is_sigma_delta:
        return ds, int(timesteps or sdnn_default_steps(model)), str(model.meta.get("encoding", "direct"))
    steps = timesteps or model.meta.get("timesteps")
    if not steps or steps < 1:
        raise InputError(f"{model.path}: records no timesteps; pass --timesteps T >= 1")
    compiled_t = model.meta.get("timesteps")
    if compiled_t and steps > compiled_t:
        warnings.warn(f"running {steps} steps; range checks assumed T={compiled_t}", LoihicWarning, stacklevel=2)
    return ds, int(steps), str(model.meta.get("encoding", "poisson"))


def always_on_inputs(model: NetxModel) -> int:
    """How many always-on input channels the file's input has beyond the graph's own (metadata
    ``always_on_inputs``, written by the NIR front end for CubaLIF biases: compiler/load/nir.py)."""
    return int(model.meta.get("always_on_inputs") or 0)


def user_input_shape(model: NetxModel) -> tuple[int, ...]:
    """The per-sample input shape a user feeds: the graph's own (``graph_input_shape``) for a file with
    always-on input channels, else the file's."""
    if always_on_inputs(model):
        return tuple(int(s) for s in model.meta["graph_input_shape"])
    return tuple(model.input.shape)


def append_always_on(model: NetxModel, x: np.ndarray) -> np.ndarray:
    """``x`` in the user's shape, (N, n) real inputs or (N, n, T) spikes, with the file's always-on channels
    appended (1: a spike at every step; a real 1.0 encodes to one with the rate code); unchanged for other
    files."""
    k = always_on_inputs(model)
    if not k:
        return x
    pad = [(0, 0)] * x.ndim
    pad[1] = (0, k)
    return np.pad(x, pad, constant_values=1)


def parse_input_shape(text: str | None) -> tuple[int, ...] | None:
    """``--input-shape C,H,W`` (or ``N`` for a dense input) as a tuple of positive integers."""
    if text is None:
        return None
    try:
        dims = tuple(int(s) for s in text.split(","))
    except ValueError:
        dims = ()
    if not dims or min(dims) < 1:
        raise InputError(f"--input-shape {text!r}: expected C,H,W (comma-separated positive integers)")
    return dims


def read_net(
    path: str,
    input_shape: str | None,
    data_shape: Callable[[], tuple[tuple[int, ...], str] | None],
    sigma_delta: bool = False,
) -> NetxModel:
    """``read_netx`` with the input shape a conv-first file without an 'input' layer needs: ``input_shape``
    (``--input-shape``, checked against the file), else the data's (``data_shape()``: its per-sample shape and
    what it is, or None when there is no data; called only for such a file).  ``sigma_delta``: read SDNN files
    too (the verbs that run them: simulate, verify)."""
    given = parse_input_shape(input_shape)
    try:
        return read_netx(path, input_shape=given, sigma_delta=sigma_delta)
    except NetxInputShapeError:
        found = data_shape()
        if found is None:
            raise
    shape, source = found
    try:
        return read_netx(path, input_shape=shape, sigma_delta=sigma_delta)
    except NetxFormatError as exc:
        raise NetxFormatError(f"{exc} (the input shape of {source})") from None
