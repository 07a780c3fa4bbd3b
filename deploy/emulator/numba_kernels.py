"""The numba kernels of the layer-major emulator (CPU), imported on first use by
:mod:`loihic.deploy.emulator.kernels` (importing numba costs about half a second, which the commands
that never emulate should not pay).  Compiled on first call and cached on disk (``cache=True``).

The scans hold no arithmetic of their own: they compile the array-generic functions of
:mod:`loihic.deploy.emulator.synapse`, :mod:`loihic.deploy.emulator.lif` and
:mod:`loihic.deploy.emulator.sigma_delta` (registered below with ``register_jitable``, inlined) on int64
scalars, so the schema's constants become compile-time constants.  :func:`scan_rows` is the LIF
recurrence, :func:`sd_scan_rows` the sigma-delta one (Delta, SigmaDelta, Sigma).

Each kernel is a serial function over the samples [lo, hi) that releases the GIL; with more than one
thread, ``emulator_kernels._split`` runs slices of the samples on a thread pool.  (Not numba's
``prange``: its OpenMP layer resets torch's thread count, and with one thread a parallel launch still
hands the work to a pool thread, which on a loaded machine costs a scheduler slice, up to 10 ms.)
"""

from __future__ import annotations

import hashlib

import numba
import numpy as np
from numba.core import types
from numba.extending import overload_method, register_jitable

from loihic.compiler.netx import schema
from loihic.deploy.emulator import lif, sigma_delta, synapse


@overload_method(types.Integer, "clip", inline="always")
def _scalar_clip(x, lo, hi):  # noqa: ANN001, ANN202
    """numpy's ``clip`` method for the integer scalars of the scan, so that ``lif.clip_v`` compiles as written
    (min / max: measured 6% faster on the whole scan than the same clip as arithmetic on booleans)."""
    return lambda x, lo, hi: min(max(x, lo), hi)


_GENERIC = (synapse.wrap, synapse.weight_exp, synapse.int32_cast, synapse.synaptic)
_GENERIC += (lif.rs0, lif.current_input, lif.wrap_u, lif.clip_v, lif.step)
_GENERIC += (sigma_delta.encode_input, sigma_delta.activation, sigma_delta.delta_encode, sigma_delta.message)
_GENERIC += (sigma_delta.delta_step, sigma_delta.sigma_delta_step, sigma_delta.sigma_step)
for _fn in _GENERIC:
    register_jitable(inline="always")(_fn)


def _digest() -> str:
    """What the compiled scan depends on beyond its own bytecode: the code of the functions compiled into it
    and the integer constants of their modules.  numba's disk cache keys a kernel on its own bytecode and
    closure values only (not on the functions it calls or the globals they read), so this goes into every
    kernel's closure: a change in lif.py, sigma_delta.py, synapse.py or the schema recompiles instead of loading
    stale code."""
    h = hashlib.sha256()
    for fn in _GENERIC:
        h.update(fn.__code__.co_code + repr((fn.__code__.co_consts, fn.__code__.co_names)).encode())
    for m in (schema, synapse, lif, sigma_delta):
        h.update(repr(sorted((k, v) for k, v in vars(m).items() if isinstance(v, int))).encode())
    return h.hexdigest()


_DIGEST = _digest()


def _make_scan(RECORD_V: bool, MONITOR: bool):  # noqa: ANN202, N803 - constants of the compiled code
    """The recurrence with the voltage trace and the overflow monitor compiled in or out: numba treats
    the closure's flags as constants, so the normal kernel carries no trace store and no counters.
    (A run-time flag guarding a store into a dummy array made the whole loop about 20x slower in a
    process that had started a Lava runtime, measured; constants avoid the question.)  Numba's cache key
    includes the closure's values, so the four variants are cached side by side."""
    digest = _DIGEST

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def scan(acc, wexp, conv, graded, du, dv, vth, bias6, u, v, spikes, vtrace, counts, lo, hi):  # noqa: ANN001, ANN202, PLR0913
        digest  # noqa: B018 - in the closure, hence in the cache key (above)
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
                    a, shifted = synapse.synaptic(np.int64(at[j]), wexp, conv, graded)
                    uu, vv, s, u_wrapped, v_clipped = lif.step(
                        ub[j], vb[j], lif.current_input(a), du, dv, bias6[j], vth
                    )
                    ub[j] = uu
                    vb[j] = vv
                    st[j] = s
                    if MONITOR:
                        ca += a != shifted
                        cu += u_wrapped
                        cv += v_clipped
                    if RECORD_V:
                        vtrace[b, t, j] = vv
            if MONITOR:
                counts[b, 0] += cu
                counts[b, 1] += cv
                counts[b, 2] += ca

    return scan


_SCANS: dict[tuple[bool, bool], object] = {}


def scan_rows(acc, wexp, conv, graded, du, dv, vth, bias6, u, v, spikes, vtrace, counts, record_v, monitor, lo, hi):  # noqa: ANN001, ANN201, PLR0913
    """The LIF recurrence over samples [lo, hi) of a (B, T, n) block (emulator_kernels.scan_numba)."""
    key = (bool(record_v), bool(monitor))
    if key not in _SCANS:
        _SCANS[key] = _make_scan(*key)
    _SCANS[key](acc, wexp, conv, graded, du, dv, vth, bias6, u, v, spikes, vtrace, counts, lo, hi)


def _make_rec_scan(RECORD_V: bool, MONITOR: bool):  # noqa: ANN202, N803 - constants of the compiled code
    """A recurrent LIF layer (deploy/emulator/temporal.py) over steps [t0, t1): each step adds the recurrent
    synapse's shifted sum over the layer's spikes of the step before (``sprev``, carried across calls) to the
    feed-forward input ``a`` (int64, already the synaptic value), then :func:`lif.step`.  Flags as in
    :func:`_make_scan`."""
    digest = _DIGEST

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def scan(a, w, wexp, graded, du, dv, vth, bias6, u, v, sprev, spikes, vtrace, counts, t0, t1, lo, hi):  # noqa: ANN001, ANN202, PLR0913
        digest  # noqa: B018 - in the closure, hence in the cache key (_digest)
        nn = a.shape[2]
        active = np.empty(nn, np.int64)
        for b in range(lo, hi):
            ub = u[b]
            vb = v[b]
            sb = sprev[b]
            cu = 0
            cv = 0
            ca = 0
            for t in range(t0, t1):
                na = 0
                for j in range(nn):
                    if sb[j] != 0:
                        active[na] = j
                        na += 1
                at = a[b, t]
                st = spikes[b, t]
                for i in range(nn):
                    acc = np.int64(0)
                    wi = w[i]
                    for q in range(na):
                        acc += wi[active[q]]
                    ar, shifted = synapse.synaptic(acc, wexp, False, graded)
                    tot = synapse.wrap(np.int64(at[i]) + ar, 32)
                    uu, vv, s, u_wrapped, v_clipped = lif.step(
                        ub[i], vb[i], lif.current_input(tot), du, dv, bias6[i], vth
                    )
                    ub[i] = uu
                    vb[i] = vv
                    st[i] = s
                    if MONITOR:
                        ca += tot != np.int64(at[i]) + shifted
                        cu += u_wrapped
                        cv += v_clipped
                    if RECORD_V:
                        vtrace[b, t, i] = vv
                for i in range(nn):
                    sb[i] = st[i]
            if MONITOR:
                counts[b, 0] += cu
                counts[b, 1] += cv
                counts[b, 2] += ca

    return scan


_REC_SCANS: dict[tuple[bool, bool], object] = {}


def rec_scan_rows(  # noqa: PLR0913
    a,
    w,
    wexp,
    graded,
    du,
    dv,
    vth,
    bias6,
    u,
    v,
    sprev,
    spikes,
    vtrace,
    counts,
    record_v,
    monitor,
    t0,
    t1,
    lo,
    hi,  # noqa: ANN001
):  # noqa: ANN201
    """A recurrent LIF layer over samples [lo, hi) and steps [t0, t1) (emulator_kernels.rec_scan_numba)."""
    key = (bool(record_v), bool(monitor))
    if key not in _REC_SCANS:
        _REC_SCANS[key] = _make_rec_scan(*key)
    _REC_SCANS[key](a, w, wexp, graded, du, dv, vth, bias6, u, v, sprev, spikes, vtrace, counts, t0, t1, lo, hi)


SD_KINDS = {"delta": 0, "sigma_delta": 1, "sigma": 2}  # the kernel's compile-time kind codes


def _make_sd_scan(KIND: int, SYNAPSE: bool, RELU: bool, RECORD_V: bool, MONITOR: bool):  # noqa: ANN202, N803, FBT001
    """The sigma-delta recurrence of one kind (:data:`SD_KINDS`), compiled like :func:`_make_scan`: the kind,
    whether a synapse feeds it (``SYNAPSE`` False: an input Delta driven by the source's raw values), the
    activation (ReLU or identity), the readout trace and the synapse-wrap monitor are closure constants."""
    digest = _DIGEST

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def scan(acc, wexp, conv, graded, vth, bias12, s0, s1, s2, out, vtrace, counts, lo, hi):  # noqa: ANN001, ANN202, PLR0913
        digest  # noqa: B018 - in the closure, hence in the cache key (_digest)
        nt, nn = acc.shape[1], acc.shape[2]
        for b in range(lo, hi):
            r0 = s0[b]
            r1 = s1[b]
            r2 = s2[b]
            ca = 0
            for t in range(nt):
                at = acc[b, t]
                ot = out[b, t]
                for j in range(nn):
                    if SYNAPSE:
                        a, shifted = synapse.synaptic(np.int64(at[j]), wexp, conv, graded)
                        if MONITOR:
                            ca += a != shifted
                    else:
                        a = np.int64(at[j])
                    if KIND == 0:
                        msg, act, residue = sigma_delta.delta_step(a, r0[j], r1[j], vth)
                        r0[j] = act
                        r1[j] = residue
                    elif KIND == 1:
                        msg, sigma, act, residue = sigma_delta.sigma_delta_step(
                            a, r0[j], r1[j], r2[j], bias12[j], vth, RELU
                        )
                        r0[j] = sigma
                        r1[j] = act
                        r2[j] = residue
                    else:
                        msg = sigma_delta.sigma_step(a, r0[j])
                        r0[j] = msg
                    ot[j] = msg
                    if RECORD_V:
                        vtrace[b, t, j] = r0[j]  # the population's readout: sigma, or Delta's activation
            if MONITOR:
                counts[b, 2] += ca

    return scan


_SD_SCANS: dict[tuple, object] = {}


def sd_scan_rows(
    kind,
    synapse_on,
    relu,
    acc,
    wexp,
    conv,
    graded,
    vth,
    bias12,
    s0,
    s1,
    s2,
    out,
    vtrace,
    counts,
    record_v,
    monitor,
    lo,
    hi,
):  # noqa: ANN001, ANN201, PLR0913
    """The sigma-delta recurrence over samples [lo, hi) of a (B, T, n) block (emulator_kernels.sd_scan_numba)."""
    key = (SD_KINDS[kind], bool(synapse_on), bool(relu), bool(record_v), bool(monitor))
    if key not in _SD_SCANS:
        _SD_SCANS[key] = _make_sd_scan(*key)
    _SD_SCANS[key](acc, wexp, conv, graded, vth, bias12, s0, s1, s2, out, vtrace, counts, lo, hi)


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
