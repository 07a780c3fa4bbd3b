"""The neuron recurrences of the layer-major emulator (LIF, and sigma-delta: Delta, SigmaDelta, Sigma), over a
whole (B, T, n) block of synaptic input.

Layout: sample-major, then time, then neuron, ``(B, T, n)`` (C-contiguous): one sample's T rows are the
rows of the layer's GEMM/convolution over all B*T inputs, and at every step the n neurons of a sample
are contiguous, so the update of step t is one vectorisable loop over n.  Two implementations,
equal integer for integer (sim_tests/unit/test_emulator_layer_major.py):

* :func:`scan_numba` (CPU): ONE compiled numba kernel per layer and block, which reads the float
  accumulator the GEMM wrote, converts, wraps, shifts, integrates and fires in one pass, and writes the
  spikes in the dtype the next layer's GEMM reads; slices of the samples on a thread pool.
* :func:`scan_torch` (any device, CUDA included): the same integer arithmetic as torch ops on (B, n)
  slices, one step at a time (a handful of kernel launches per step).

The integer arithmetic is :mod:`loihic.deploy.emulator.synapse` (dense / conv synaptic input) and
:mod:`loihic.deploy.emulator.lif` (the LIF step), written once: the torch scan calls those functions on
(B, n) tensors, and the numba kernel compiles the same functions into its loop.  The overflow monitor
counts, per layer, the elements (sample x neuron x step) where u wrapped, where v was clipped, and where
the synaptic value wrapped (dense: outside int32; conv: the int32 cast or the 24-bit accumulator).

The sigma-delta kinds have the same pair, :func:`sd_scan_numba` and :func:`sd_scan_torch`, over
:mod:`loihic.deploy.emulator.sigma_delta`'s steps; their state is the population's list of (B, n) int64
tensors (Delta: act, residue; SigmaDelta: sigma, act, residue; Sigma: sigma), their output the graded
messages, their trace the readout (``state[0]``), and their monitor the synapse-wrap column only.
"""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from loihic.deploy.emulator import lif, sigma_delta, synapse

# numba is a dependency (Makefile, pyproject); without it the torch recurrence runs everywhere.  Its
# kernels (deploy/emulator/numba_kernels.py) are imported on first use only.
HAVE_NUMBA = importlib.util.find_spec("numba") is not None
COUNTS = ("u_wraps", "v_clips", "synapse_wraps")  # columns of the counts arrays


def synaptic_a6(
    acc: torch.Tensor, wexp: int, conv: bool, counts: torch.Tensor | None = None, graded: bool = False
) -> torch.Tensor:
    """``lif.current_input`` of the synaptic input of every element of a block (vectorised over all steps)."""
    a, shifted = synapse.synaptic(acc.to(torch.int64), wexp, conv, graded)  # exact integers in float, or integers
    if counts is not None:
        counts[:, 2] += (a != shifted).reshape(a.shape[0], -1).sum(1)
    return lif.current_input(a)


def scan_torch(
    acc: torch.Tensor,
    wexp: int,
    conv: bool,
    du: int,
    dv: int,
    vth: int,
    bias6: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    spikes: torch.Tensor,
    vtrace: torch.Tensor | None = None,
    counts: torch.Tensor | None = None,
    graded: bool = False,
) -> None:
    """The recurrence on any torch device: ``acc`` (B, T, n) -> ``spikes`` (B, T, n), ``u``/``v`` (B, n)
    int64 updated in place, ``vtrace`` (B, T, n) int64 and ``counts`` (B, 3) int64 when given.  ``graded``:
    the input is graded (synapse.synaptic's int32 dense sum before weight_exp)."""
    a6 = synaptic_a6(acc, wexp, conv, counts, graded)
    for t in range(a6.shape[1]):
        uu, vv, s, u_wrapped, v_clipped = lif.step(u, v, a6[:, t], du, dv, bias6, vth)
        if counts is not None:
            counts[:, 0] += u_wrapped.sum(1)
            counts[:, 1] += v_clipped.sum(1)
        u.copy_(uu)
        v.copy_(vv)
        spikes[:, t] = s
        if vtrace is not None:
            vtrace[:, t] = v


_pool: ThreadPoolExecutor | None = None


def _split(fn, batch: int, threads: int, *args) -> None:  # noqa: ANN001
    """``fn(*args, lo, hi)`` over [0, batch) in ``threads`` slices (this thread runs the first)."""
    global _pool
    parts = max(1, min(threads, batch))
    if parts == 1:
        fn(*args, 0, batch)
        return
    if _pool is None or _pool._max_workers < parts - 1:
        _pool = ThreadPoolExecutor(max_workers=parts - 1, thread_name_prefix="loihic-emulator")
    cuts = [p * batch // parts for p in range(parts + 1)]
    futures = [_pool.submit(fn, *args, cuts[p], cuts[p + 1]) for p in range(1, parts)]
    fn(*args, cuts[0], cuts[1])
    for f in futures:
        f.result()


_DUMMY_V = np.zeros((1, 1, 1), np.int64)
_DUMMY_C = np.zeros((1, 3), np.int64)


def scan_numba(
    acc: torch.Tensor,
    wexp: int,
    conv: bool,
    du: int,
    dv: int,
    vth: int,
    bias6: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    spikes: torch.Tensor,
    vtrace: torch.Tensor | None = None,
    counts: torch.Tensor | None = None,
    graded: bool = False,
) -> None:
    """:func:`scan_torch`'s contract on CPU tensors, in one numba kernel (tensors shared, not copied)."""
    args = (
        acc.numpy(),
        int(wexp),
        bool(conv),
        bool(graded),
        int(du),
        int(dv),
        int(vth),
        bias6.numpy(),
        u.numpy(),
        v.numpy(),
        spikes.numpy(),
        _DUMMY_V if vtrace is None else vtrace.numpy(),
        _DUMMY_C if counts is None else counts.numpy(),
        vtrace is not None,
        counts is not None,
    )
    from loihic.deploy.emulator import numba_kernels as nb

    _split(nb.scan_rows, acc.shape[0], torch.get_num_threads(), *args)


def rec_scan_numba(a, w_rec, wexp, graded, pop, u, v, sprev, spikes, vtrace, counts, lo: int, hi: int) -> None:  # noqa: ANN001, PLR0913
    """:func:`loihic.deploy.emulator.temporal.rec_scan_torch`'s contract on CPU tensors (steps [lo, hi) of a
    recurrent LIF layer), in one numba kernel; ``w_rec`` the int64 (n, n) numpy weights."""
    args = (
        a.numpy(),
        w_rec,
        int(wexp),
        bool(graded),
        int(pop.du),
        int(pop.dv),
        int(pop.vth),
        pop.bias6.numpy(),
        u.numpy(),
        v.numpy(),
        sprev.numpy(),
        spikes.numpy(),
        _DUMMY_V if vtrace is None else vtrace.numpy(),
        _DUMMY_C if counts is None else counts.numpy(),
        vtrace is not None,
        counts is not None,
        int(lo),
        int(hi),
    )
    from loihic.deploy.emulator import numba_kernels as nb

    _split(nb.rec_scan_rows, a.shape[0], torch.get_num_threads(), *args)


def sd_step(
    kind: str, relu: bool, vth: int, bias12: torch.Tensor, a: torch.Tensor, state: list[torch.Tensor]
) -> torch.Tensor:
    """One step of a sigma-delta population of ``kind`` ('delta', 'sigma_delta', 'sigma') on the (B, n) int64
    input ``a`` (array-generic: torch or numpy): updates ``state`` in place, returns the message."""
    if kind == "delta":
        msg, act, residue = sigma_delta.delta_step(a, state[0], state[1], vth)
        new = [act, residue]
    elif kind == "sigma_delta":
        msg, sigma, act, residue = sigma_delta.sigma_delta_step(a, state[0], state[1], state[2], bias12, vth, relu)
        new = [sigma, act, residue]
    else:
        msg = sigma_delta.sigma_step(a, state[0])
        new = [msg]
    for old, value in zip(state, new, strict=True):
        old[...] = value
    return msg


def sd_scan_torch(
    kind: str,
    relu: bool,
    acc: torch.Tensor,
    wexp: int,
    conv: bool,
    graded: bool | None,
    vth: int,
    bias12: torch.Tensor,
    state: list[torch.Tensor],
    out: torch.Tensor,
    vtrace: torch.Tensor | None = None,
    counts: torch.Tensor | None = None,
) -> None:
    """The sigma-delta recurrence on any torch device: ``acc`` (B, T, n) -> messages ``out`` (B, T, n), ``state``
    updated in place, ``vtrace`` (B, T, n) int64 (the readout, ``state[0]``) and ``counts[:, 2]`` (synapse
    wraps) when given.  ``graded``: as :func:`scan_torch`; None: no synapse, ``acc`` holds the source's raw
    values driving an input Delta."""
    a = acc.to(torch.int64)
    if graded is not None:
        a, shifted = synapse.synaptic(a, wexp, conv, graded)
        if counts is not None:
            counts[:, 2] += (a != shifted).reshape(a.shape[0], -1).sum(1)
    for t in range(a.shape[1]):
        out[:, t] = sd_step(kind, relu, vth, bias12, a[:, t], state)
        if vtrace is not None:
            vtrace[:, t] = state[0]


def sd_scan_numba(
    kind: str,
    relu: bool,
    acc: torch.Tensor,
    wexp: int,
    conv: bool,
    graded: bool | None,
    vth: int,
    bias12: torch.Tensor,
    state: list[torch.Tensor],
    out: torch.Tensor,
    vtrace: torch.Tensor | None = None,
    counts: torch.Tensor | None = None,
) -> None:
    """:func:`sd_scan_torch`'s contract on CPU tensors, in one numba kernel (tensors shared, not copied)."""
    rows = [x.numpy() for x in state]
    rows += rows[:1] * (3 - len(rows))  # the rows a kind does not have: never read or written by its kernel
    args = (
        kind,
        graded is not None,
        bool(relu),
        acc.numpy(),
        int(wexp),
        bool(conv),
        bool(graded),
        int(vth),
        bias12.numpy(),
        *rows,
        out.numpy(),
        _DUMMY_V if vtrace is None else vtrace.numpy(),
        _DUMMY_C if counts is None else counts.numpy(),
        vtrace is not None,
        counts is not None,
    )
    from loihic.deploy.emulator import numba_kernels as nb

    _split(nb.sd_scan_rows, acc.shape[0], torch.get_num_threads(), *args)


def to_btn(x: torch.Tensor, out: torch.Tensor, binary: bool) -> None:
    """(B, n, T) -> (B, T, n) into ``out`` (its dtype), binarised (``x != 0``) when ``binary``."""
    if HAVE_NUMBA and x.device.type == "cpu" and x.dtype != torch.bool:
        from loihic.deploy.emulator import numba_kernels as nb

        _split(nb.to_btn_rows, x.shape[0], torch.get_num_threads(), x.numpy(), out.numpy(), binary)
    else:
        out.copy_(((x != 0) if binary else x).permute(0, 2, 1))


def to_bnt(s: torch.Tensor, out: np.ndarray) -> None:
    """(B, T, n) tensor -> ``out`` (B, n, T) numpy array (its dtype)."""
    if HAVE_NUMBA and s.device.type == "cpu":
        from loihic.deploy.emulator import numba_kernels as nb

        _split(nb.to_bnt_rows, s.shape[0], torch.get_num_threads(), s.numpy(), out)
    else:
        out[...] = s.permute(0, 2, 1).cpu().numpy()
