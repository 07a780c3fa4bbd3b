"""The numba kernels of the layer-major emulator (CPU), imported on first use by
:mod:`loihic.deploy.emulator.kernels` (importing numba costs about half a second, which the commands
that never emulate should not pay).  Compiled on first call and cached on disk (``cache=True``); see
:mod:`loihic.deploy.emulator.kernels` for the arithmetic.

Each kernel is a serial function over the samples [lo, hi) that releases the GIL; with more than one
thread, ``emulator_kernels._split`` runs slices of the samples on a thread pool.  (Not numba's
``prange``: its OpenMP layer resets torch's thread count, and with one thread a parallel launch still
hands the work to a pool thread, which on a loaded machine costs a scheduler slice, up to 10 ms.)
"""

from __future__ import annotations

import numba
import numpy as np


def _make_scan(RECORD_V: bool, MONITOR: bool):  # noqa: ANN202, N803 - constants of the compiled code
    """The recurrence with the voltage trace and the overflow monitor compiled in or out: numba treats
    the closure's flags as constants, so the normal kernel carries no trace store and no counters.
    (A run-time flag guarding a store into a dummy array made the whole loop about 20x slower in a
    process that had started a Lava runtime, measured; constants avoid the question.)  Numba's cache key
    includes the closure's values, so the four variants are cached side by side."""

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def scan(acc, wexp, conv, du, dv, vth, bias6, u, v, spikes, vtrace, counts, lo, hi):  # noqa: ANN001, ANN202, PLR0913
        nt, nn = acc.shape[1], acc.shape[2]
        for b in range(lo, hi):
            ub = u[b]
            vb = v[b]
            cu = 0
            cv = 0
            ca = 0
            for t in range(nt):
                at = acc[b, t]
                st = spikes[b, t]
                for j in range(nn):
                    a = np.int64(at[j])
                    if wexp > 0:
                        a = a << wexp
                    elif wexp < 0:
                        a = a >> -wexp
                    if conv:
                        if a < -2147483648 or a > 2147483647:
                            a = -2147483648
                        w = ((a + 8388608) & 16777215) - 8388608
                    else:
                        w = ((a + 2147483648) & 4294967295) - 2147483648
                    if MONITOR:
                        ca += w != a
                    a6 = (((w << 6) + 2147483648) & 4294967295) - 2147483648
                    x = ub[j] * du
                    c = ((x + ((x >> 63) & 4095)) >> 12) + a6
                    c = ((c + 2147483648) & 4294967295) - 2147483648
                    uu = c
                    if c > 8388608:
                        uu = c - 16777216
                    elif c <= -8388608:
                        uu = c + 16777216
                    ub[j] = uu
                    y = vb[j] * dv
                    z = ((y + ((y >> 63) & 4095)) >> 12) + uu + bias6[j]
                    z = ((z + 2147483648) & 4294967295) - 2147483648
                    vv = min(max(z, -8388607), 8388607)
                    if MONITOR:
                        cu += uu != c
                        cv += vv != z
                    if vv > vth:
                        st[j] = 1
                        vv = 0
                    else:
                        st[j] = 0
                    vb[j] = vv
                    if RECORD_V:
                        vtrace[b, t, j] = vv
            if MONITOR:
                counts[b, 0] += cu
                counts[b, 1] += cv
                counts[b, 2] += ca

    return scan


_SCANS: dict[tuple[bool, bool], object] = {}


def scan_rows(acc, wexp, conv, du, dv, vth, bias6, u, v, spikes, vtrace, counts, record_v, monitor, lo, hi):  # noqa: ANN001, ANN201, PLR0913
    """The LIF recurrence over samples [lo, hi) of a (B, T, n) block (emulator_kernels.scan_numba)."""
    key = (bool(record_v), bool(monitor))
    if key not in _SCANS:
        _SCANS[key] = _make_scan(*key)
    _SCANS[key](acc, wexp, conv, du, dv, vth, bias6, u, v, spikes, vtrace, counts, lo, hi)


@numba.njit(cache=True, nogil=True)
def to_btn_rows(x, out, binary, lo, hi):  # noqa: ANN001, ANN202
    """x (B, n, T) integers -> out (B, T, n): ``x != 0`` when ``binary``, else the values."""
    nn, nt = x.shape[1], x.shape[2]
    for b in range(lo, hi):
        for j0 in range(0, nn, 64):
            j1 = min(nn, j0 + 64)
            for t in range(nt):
                for j in range(j0, j1):
                    out[b, t, j] = (x[b, j, t] != 0) if binary else x[b, j, t]


@numba.njit(cache=True, nogil=True)
def to_bnt_rows(s, out, lo, hi):  # noqa: ANN001, ANN202
    """s (B, T, n) -> out (B, n, T) (same values, out's dtype)."""
    nt, nn = s.shape[1], s.shape[2]
    for b in range(lo, hi):
        for j0 in range(0, nn, 64):
            j1 = min(nn, j0 + 64)
            for t in range(nt):
                for j in range(j0, j1):
                    out[b, j, t] = s[b, t, j]
