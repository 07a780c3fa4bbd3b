"""The LIF recurrence of the layer-major emulator, over a whole (B, T, n) block of synaptic input.

Layout: sample-major, then time, then neuron, ``(B, T, n)`` (C-contiguous): one sample's T rows are the
rows of the layer's GEMM/convolution over all B*T inputs, and at every step the n neurons of a sample
are contiguous, so the update of step t is one vectorisable loop over n.  Two implementations,
equal integer for integer (sim_tests/unit/test_emulator_layer_major.py):

* :func:`scan_numba` (CPU): ONE compiled numba kernel per layer and block, which reads the float
  accumulator the GEMM wrote, converts, wraps, shifts, integrates and fires in one pass, and writes the
  spikes in the dtype the next layer's GEMM reads; slices of the samples on a thread pool.
* :func:`scan_torch` (any device, CUDA included): the same integer arithmetic as torch ops on (B, n)
  slices, one step at a time (a handful of kernel launches per step).

Per element, with ``acc`` the exact integer the GEMM/convolution computed (spec 2.1-2.3; lava-nc 0.10.0)::

    a  = acc << wexp if wexp > 0 else acc >> -wexp       # dense weight_exp; 0 for conv and input neurons
    a  = wrap32(a)                                       # dense: the int32 channel
       | wrap24(INT_MIN if a outside int32 else a)       # conv: astype(int32), then the 24-bit wrap
    c  = wrap32(rs0(u * du, 12) + wrap32(a << 6))        # du = 4096 - iDecay; rs0 shifts toward zero
    u  = c - 2^24 if c > 2^23 else (c + 2^24 if c <= -2^23 else c)
    w  = wrap32(rs0(v * dv, 12) + u + (bias << 6))       # dv = 4096 - vDecay
    v  = clip(w, -(2^23 - 1), 2^23 - 1);  s = v > vth;  v = 0 where s

``rs0(x, 12)`` is computed as ``(x + ((x >> 63) & 4095)) >> 12``, which equals ``sign(x) * (|x| >> 12)``
for every int64 x.  The overflow monitor counts, per layer, the elements (sample x neuron x step) where
``c`` was outside (-2^23, 2^23] (u wrapped), where ``w`` was outside +-(2^23 - 1) (v clipped), and where
the synaptic value wrapped (dense: ``a`` outside int32; conv: outside the 24-bit range).
"""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

# numba is a dependency (Makefile, pyproject); without it the torch recurrence runs everywhere.  Its
# kernels (deploy/emulator/numba_kernels.py) are imported on first use only.
HAVE_NUMBA = importlib.util.find_spec("numba") is not None
U_LIMIT = 1 << 23  # u wraps once at +-2^23
V_MAX = (1 << 23) - 1  # v clips to +-(2^23 - 1)
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
COUNTS = ("u_wraps", "v_clips", "synapse_wraps")  # columns of the counts arrays


def _wrap_t(x: torch.Tensor, bits: int) -> torch.Tensor:
    half = 1 << (bits - 1)
    return ((x + half) & ((1 << bits) - 1)) - half


def _rs0_t(x: torch.Tensor) -> torch.Tensor:
    return (x + ((x >> 63) & 4095)) >> 12


def synaptic_a6(acc: torch.Tensor, wexp: int, conv: bool, counts: torch.Tensor | None = None) -> torch.Tensor:
    """``wrap32(a << 6)`` of every element of a block (torch, vectorised over all steps)."""
    a = acc.to(torch.int64)  # exact integers in floating point (the dtype rule) or integers
    if wexp > 0:
        a = a << wexp
    elif wexp < 0:
        a = a >> -wexp
    if conv:
        a = torch.where((a < INT32_MIN) | (a > INT32_MAX), torch.full_like(a, INT32_MIN), a)
        w = _wrap_t(a, 24)
    else:
        w = _wrap_t(a, 32)
    if counts is not None:
        counts[:, 2] += (w != a).reshape(a.shape[0], -1).sum(1)
    return _wrap_t(w << 6, 32)


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
) -> None:
    """The recurrence on any torch device: ``acc`` (B, T, n) -> ``spikes`` (B, T, n), ``u``/``v`` (B, n)
    int64 updated in place, ``vtrace`` (B, T, n) int64 and ``counts`` (B, 3) int64 when given."""
    a6 = synaptic_a6(acc, wexp, conv, counts)
    for t in range(a6.shape[1]):
        c = a6[:, t]
        if du:
            c = _wrap_t(_rs0_t(u * du) + c, 32)
        uu = torch.where(c > U_LIMIT, c - 2 * U_LIMIT, torch.where(c <= -U_LIMIT, c + 2 * U_LIMIT, c))
        w = uu + bias6
        if dv:
            w = w + _rs0_t(v * dv)
        w = _wrap_t(w, 32)
        vv = torch.clamp(w, -V_MAX, V_MAX)
        s = vv > vth
        if counts is not None:
            counts[:, 0] += (uu != c).sum(1)
            counts[:, 1] += (vv != w).sum(1)
        u.copy_(uu)
        v.copy_(vv.masked_fill_(s, 0))
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
) -> None:
    """:func:`scan_torch`'s contract on CPU tensors, in one numba kernel (tensors shared, not copied)."""
    args = (
        acc.numpy(),
        int(wexp),
        bool(conv),
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
