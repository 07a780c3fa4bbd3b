"""Every neuron kind's integer arithmetic, written once (deploy/emulator/<kind>.py, with synapse.py for the
synaptic input), against every backend that runs it: the torch scan (CUDA's path), the numba scan (CPU) and
the step-major path, exactly (spikes, u, v, the voltage trace and the overflow counts).

The kinds are a table (:data:`KINDS`): a kind brings its random parameters, its reference (the kind's own
module on numpy int64 arrays, one step at a time) and its backends.  Today only LIF; sigma-delta slots in
as one more row.  Inputs are random integers in regimes built to overflow: u wraps, v clips, the dense
int32 channel wraps (with weight_exp), the conv 24-bit accumulator wraps, and conv sums beyond int32
(Lava's astype(int32)).

:func:`lif_reference` is the same reference for one sample and one :class:`NxNeuron`; the emulator tests
(test_emulator_reference, test_emulator_layer_major) compare whole networks against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from loihic.compiler.netx import schema
from loihic.compiler.netx.read import NxNeuron
from loihic.deploy.emulator import kernels, lif, sigma_delta, step_major, synapse

Outcome = dict[str, np.ndarray]  # spikes (B, T, n), u, v (B, n), vtrace (B, T, n), counts (B, 3)


# --- LIF ---------------------------------------------------------------------------------------------------
def lif_params(rng: np.random.Generator, n: int, regime: str) -> dict:
    i_decay, v_decay = (int(rng.choice([0, 1, 7, 1000, 2048, 4095, 4096])) for _ in range(2))
    vth = int(rng.choice([0, 1, 50, 3000, schema.VTH_MANT_MAX, schema.VTH_MANT_NEVER]))
    if regime == "u_wrap":  # the current never decays: u climbs past 2^23 and wraps
        i_decay = 0
    elif regime == "v_clip":  # no leak, no spike: v clips at +-(2^23 - 1)
        v_decay, vth = 0, schema.VTH_MANT_NEVER
    bias = rng.integers(schema.BIAS_MANT_MIN, schema.BIAS_MANT_MAX + 1, n) * (rng.random() < 0.6)
    return {
        "du": schema.DECAY_UNITY - i_decay,
        "dv": schema.DECAY_UNITY - v_decay,
        "vth": lif.threshold(vth),
        "bias6": lif.bias_term(bias.astype(np.int64)),
    }


def lif_scan_reference(acc: np.ndarray, wexp: int, conv: bool, p: dict) -> Outcome:
    """lif.py and synapse.py on numpy int64 arrays, one step at a time: the reference."""
    nb, nt, n = acc.shape
    u, v = np.zeros((nb, n), np.int64), np.zeros((nb, n), np.int64)
    spikes, vtrace = np.zeros((nb, nt, n), np.uint8), np.zeros((nb, nt, n), np.int64)
    counts = np.zeros((nb, 3), np.int64)
    for t in range(nt):
        a, shifted = synapse.synaptic(acc[:, t].astype(np.int64), wexp, conv)
        u, v, s, u_wrapped, v_clipped = lif.step(u, v, lif.current_input(a), p["du"], p["dv"], p["bias6"], p["vth"])
        counts += np.stack([u_wrapped.sum(1), v_clipped.sum(1), (a != shifted).sum(1)], 1)
        spikes[:, t], vtrace[:, t] = s, v
    return {"spikes": spikes, "u": u, "v": v, "vtrace": vtrace, "counts": counts}


def _layer_major(scan: Callable) -> Callable:
    def run(acc: np.ndarray, wexp: int, conv: bool, p: dict) -> Outcome:
        nb, nt, n = acc.shape
        u, v = torch.zeros((nb, n), dtype=torch.int64), torch.zeros((nb, n), dtype=torch.int64)
        spikes, vtrace = torch.zeros((nb, nt, n), dtype=torch.uint8), torch.zeros((nb, nt, n), dtype=torch.int64)
        counts = torch.zeros((nb, 3), dtype=torch.int64)
        bias6 = torch.as_tensor(p["bias6"])
        scan(torch.as_tensor(acc), wexp, conv, p["du"], p["dv"], p["vth"], bias6, u, v, spikes, vtrace, counts)
        out = {"spikes": spikes, "u": u, "v": v, "vtrace": vtrace, "counts": counts}
        return {k: x.numpy() for k, x in out.items()}

    return run


def lif_step_major(acc: np.ndarray, wexp: int, conv: bool, p: dict) -> Outcome:
    """step_major.lif_step, one step at a time on torch tensors (the synaptic wraps as step_major.synapse)."""
    nb, nt, n = acc.shape
    pop = SimpleNamespace(du=p["du"], dv=p["dv"], vth=p["vth"], bias=torch.as_tensor(p["bias6"]))
    zero = torch.zeros((nb, n), dtype=torch.int64)
    count = torch.zeros(3, dtype=torch.int64)
    states = [step_major._LifState(zero[k : k + 1].clone(), zero[k : k + 1].clone(), count.clone()) for k in range(nb)]
    spikes, vtrace = np.zeros((nb, nt, n), np.uint8), np.zeros((nb, nt, n), np.int64)
    for t in range(nt):
        for k, st in enumerate(states):  # one sample at a time: the counts are per run
            a, shifted = synapse.synaptic(torch.as_tensor(acc[k : k + 1, t]).to(torch.int64), wexp, conv)
            st.counts[2] += (a != shifted).sum()
            spikes[k, t] = step_major.lif_step(pop, st, a)[0].numpy()
            vtrace[k, t] = st.v[0].numpy()
    cat = lambda f: np.concatenate([f(st) for st in states])  # noqa: E731
    return {
        "spikes": spikes,
        "u": cat(lambda st: st.u.numpy()),
        "v": cat(lambda st: st.v.numpy()),
        "vtrace": vtrace,
        "counts": np.stack([st.counts.numpy() for st in states]),
    }


def lif_reference(a_seq: np.ndarray, n: NxNeuron) -> tuple[np.ndarray, np.ndarray, int, int]:
    """lif.py's reference for one sample of a population with netx neuron ``n``: ``a_seq`` (n, T) int64 dense
    synaptic sums (the int32 channel wrap is applied here) -> spikes (n, T) uint8, final v, u wraps, v clips."""
    size = a_seq.shape[0]
    bias = np.zeros(size, np.int64) if n.bias is None else np.asarray(n.bias, np.int64)
    p = {
        "du": schema.DECAY_UNITY - n.i_decay,
        "dv": schema.DECAY_UNITY - n.v_decay,
        "vth": lif.threshold(n.v_th_mant),
        "bias6": lif.bias_term(bias),
    }
    out = lif_scan_reference(a_seq.T[None].astype(np.int64), 0, False, p)
    return out["spikes"][0].T, out["v"][0], int(out["counts"][0, 0]), int(out["counts"][0, 1])


# --- the table of kinds ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    name: str
    params: Callable[[np.random.Generator, int, str], dict]  # (rng, n, regime) -> the kind's constants
    reference: Callable[[np.ndarray, int, bool, dict], Outcome]  # (acc, wexp, conv, params)
    backends: dict[str, Callable[[np.ndarray, int, bool, dict], Outcome]]
    regimes: tuple[str, ...]  # the kind's own overflow regimes (params), besides the synaptic ones


KINDS = [
    Kind(
        "lif",
        lif_params,
        lif_scan_reference,
        {
            "torch": _layer_major(kernels.scan_torch),
            **({"numba": _layer_major(kernels.scan_numba)} if kernels.HAVE_NUMBA else {}),
            "step_major": lif_step_major,
        },
        ("normal", "u_wrap", "v_clip"),
    ),
]
SYNAPSES = ("binary", "graded", "channel_wrap", "conv_wrap", "conv_int32")


def random_acc(rng: np.random.Generator, shape: tuple[int, ...], synapse_regime: str) -> tuple[np.ndarray, int, bool]:
    """(acc, wexp, conv): exact integer sums as the GEMM / convolution hands them over (float or int64)."""
    sign = rng.choice([-1, 1], shape)
    if synapse_regime == "binary":  # spike input, 8-bit weights: float32 like the emulator's GEMM
        return rng.integers(-2000, 6000, shape).astype(np.float32), int(rng.choice([0, 0, -2, 1])), False
    if synapse_regime == "graded":  # 8-bit graded input: sums up to ~2^23, excitatory mostly
        return rng.integers(-(1 << 18), 1 << 23, shape).astype(np.float64), int(rng.choice([0, 3, -3])), False
    if synapse_regime == "channel_wrap":  # 24-bit graded input: sums beyond int32 (the channel wraps)
        return (sign * rng.integers(0, 1 << 40, shape)).astype(np.float64), int(rng.choice([0, 4, -5])), False
    if synapse_regime == "conv_wrap":  # beyond the conv's 24-bit accumulator, inside int32
        return (sign * rng.integers(0, 1 << 31, shape)).astype(np.int64), 0, True
    # beyond int32: Lava's astype(int32) gives INT_MIN (also exactly at the edges)
    edges = np.array([-(1 << 31) - 1, -(1 << 31), (1 << 31) - 1, 1 << 31, 1 << 45, -(1 << 52)])
    acc = (sign * rng.integers(0, 1 << 34, shape)).astype(np.float64)
    acc.flat[: edges.size] = edges
    return acc, 0, True


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_backend_equals_the_kinds_reference(kind: Kind):
    rng = np.random.default_rng(18)
    seen = {"u_wraps": 0, "v_clips": 0, "synapse_wraps": 0, "spikes": 0}
    for case in range(24):
        regime = kind.regimes[case % len(kind.regimes)]
        syn = SYNAPSES[(case // len(kind.regimes)) % len(SYNAPSES)]
        nb, nt, n = int(rng.integers(1, 4)), int(rng.integers(1, 30)), int(rng.integers(1, 70))
        acc, wexp, conv = random_acc(rng, (nb, nt, n), syn)
        if regime == "u_wrap" and syn in ("binary", "graded"):
            acc = np.abs(acc)  # excitatory drive into a current that never decays
        p = kind.params(rng, n, regime)
        ref = kind.reference(acc, wexp, conv, p)
        for name, run in kind.backends.items():
            got = run(acc.copy(), wexp, conv, p)
            for key, want in ref.items():
                if not np.array_equal(got[key], want):
                    first = np.argwhere(np.asarray(got[key]) != want)[0]
                    raise AssertionError(
                        f"{kind.name} case {case} ({regime}, {syn}), backend {name}: {key} differs first at {first}: "
                        f"{np.asarray(got[key])[tuple(first)]} vs reference {want[tuple(first)]}"
                    )
        for j, key in enumerate(("u_wraps", "v_clips", "synapse_wraps")):
            seen[key] += int(ref["counts"][:, j].sum() > 0)
        seen["spikes"] += int(ref["spikes"].any())
    assert min(seen.values()) >= 4, seen  # every overflow regime was reached, and spikes happened


def test_conv_int32_cast_and_wraps_by_hand():
    """A few values worked by hand: Lava's astype(int32) then the 24-bit wrap; the dense channel; u's single wrap."""
    acc = np.array([5, (1 << 23) - 1, 1 << 23, (1 << 31) - 1, 1 << 31, -(1 << 31), -(1 << 31) - 1], np.int64)
    conv, _ = synapse.synaptic(acc, 0, True)
    assert conv.tolist() == [5, (1 << 23) - 1, -(1 << 23), -1, 0, 0, 0]
    dense, _ = synapse.synaptic(acc, 1, False)
    assert dense.tolist() == [10, (1 << 24) - 2, 1 << 24, -2, 0, 0, -2]
    c = np.array([1 << 23, (1 << 23) + 1, -(1 << 23) + 1, -(1 << 23), 5 << 23, -(5 << 23)], np.int64)
    once = [1 << 23, -(1 << 23) + 1, -(1 << 23) + 1, 1 << 23, 3 << 23, -(3 << 23)]  # one wrap, not modulo 2^24
    assert lif.wrap_u(c).tolist() == once
    assert lif.clip_v(np.array([1 << 23, -(1 << 23), 5])).tolist() == [(1 << 23) - 1, -(1 << 23) + 1, 5]
    x = np.array([-4097, -4096, -4095, -1, 0, 1, 4095, 4096, 8191], np.int64)
    assert lif.rs0(x).tolist() == (np.sign(x) * (np.abs(x) >> 12)).tolist()


# --- sigma-delta (Delta, SigmaDelta, Sigma) ------------------------------------------------------------------------
# Their state and coverage differ from LIF's (int32 wraps of sigma and of the delta, messages, residues held back),
# so they are a table of their own: every kind against sigma_delta.py's numpy reference, on the torch scan (CUDA's
# path), the numba scan (CPU) and one step at a time (the step-major path's kernels.sd_step on torch tensors).
SD_KINDS = (("delta", True), ("sigma_delta", True), ("sigma_delta", False), ("sigma", True))
SD_STATE = {"delta": 2, "sigma_delta": 3, "sigma": 1}
SD_VTH_MANT = (0, 1, 5, 300, 1 << 15, (1 << 19) - 1, 1 << 19)  # vth = mant << 12: 0 up to 2^31 (never sends)


def sd_scan_reference(kind: str, relu: bool, acc: np.ndarray, wexp: int, conv: bool, graded, p: dict) -> Outcome:  # noqa: ANN001, PLR0913
    """sigma_delta.py and synapse.py on numpy int64 arrays, one step at a time; ``seen`` counts the int32 wraps."""
    nb, nt, n = acc.shape
    state = [np.zeros((nb, n), np.int64) for _ in range(SD_STATE[kind])]
    out, vtrace = np.zeros((nb, nt, n), np.int64), np.zeros((nb, nt, n), np.int64)
    counts, wraps = np.zeros((nb, 3), np.int64), 0
    for t in range(nt):
        a = acc[:, t].astype(np.int64)
        if graded is not None:
            a, shifted = synapse.synaptic(a, wexp, conv, graded)
            counts[:, 2] += (a != shifted).sum(1)
        before = state[0] + a if kind != "delta" else a << sigma_delta.SCALE_BITS
        wraps += int((before != synapse.wrap(before, 32)).sum())
        out[:, t] = kernels.sd_step(kind, relu, p["vth"], p["bias12"], a, state)
        vtrace[:, t] = state[0]
    residue = state[-1] if kind != "sigma" else np.zeros_like(state[0])
    return {
        "spikes": out,
        "vtrace": vtrace,
        "counts": counts,
        "state": np.stack(state),
        "wraps": wraps,
        "residue": residue,
    }


def _sd_layer_major(scan: Callable) -> Callable:
    def run(kind: str, relu: bool, acc: np.ndarray, wexp: int, conv: bool, graded, p: dict) -> Outcome:  # noqa: ANN001, PLR0913
        nb, nt, n = acc.shape
        state = [torch.zeros((nb, n), dtype=torch.int64) for _ in range(SD_STATE[kind])]
        out, vtrace = torch.zeros((nb, nt, n), dtype=torch.int64), torch.zeros((nb, nt, n), dtype=torch.int64)
        counts = torch.zeros((nb, 3), dtype=torch.int64)
        bias12 = torch.as_tensor(p["bias12"])
        scan(kind, relu, torch.as_tensor(acc), wexp, conv, graded, p["vth"], bias12, state, out, vtrace, counts)
        got = {"spikes": out, "vtrace": vtrace, "counts": counts, "state": torch.stack(state)}
        return {k: x.numpy() for k, x in got.items()}

    return run


def _sd_step_by_step(kind: str, relu: bool, acc: np.ndarray, wexp: int, conv: bool, graded, p: dict) -> Outcome:  # noqa: ANN001, PLR0913
    """kernels.sd_step on torch tensors, one step at a time (what the step-major path calls)."""
    nb, nt, n = acc.shape
    state = [torch.zeros((nb, n), dtype=torch.int64) for _ in range(SD_STATE[kind])]
    out, vtrace = np.zeros((nb, nt, n), np.int64), np.zeros((nb, nt, n), np.int64)
    counts = np.zeros((nb, 3), np.int64)
    for t in range(nt):
        a = torch.as_tensor(acc[:, t]).to(torch.int64)
        if graded is not None:
            a, shifted = synapse.synaptic(a, wexp, conv, graded)
            counts[:, 2] += (a != shifted).sum(1).numpy()
        out[:, t] = kernels.sd_step(kind, relu, p["vth"], torch.as_tensor(p["bias12"]), a, state).numpy()
        vtrace[:, t] = state[0].numpy()
    return {"spikes": out, "vtrace": vtrace, "counts": counts, "state": torch.stack(state).numpy()}


SD_BACKENDS = {
    "torch": _sd_layer_major(kernels.sd_scan_torch),
    **({"numba": _sd_layer_major(kernels.sd_scan_numba)} if kernels.HAVE_NUMBA else {}),
}


def _sd_input(rng: np.random.Generator, shape: tuple[int, ...], regime: str) -> tuple[np.ndarray, int, bool, object]:
    """(acc, wexp, conv, graded): a synapse regime of :func:`random_acc`, or 'source' (no synapse: the raw int32
    values a source drives an input Delta with, small or anywhere in int32 so that ``a << 12`` wraps)."""
    if regime == "source":
        bound = int(rng.choice([300, 1 << 20, 1 << 31]))
        return rng.integers(-bound, bound, shape, dtype=np.int64), 0, False, None
    acc, wexp, conv = random_acc(rng, shape, regime)
    return acc, wexp, conv, regime != "binary"


@pytest.mark.parametrize(("kind", "relu"), SD_KINDS, ids=lambda k: str(k))
def test_sigma_delta_backends_equal_the_reference(kind: str, relu: bool):
    rng = np.random.default_rng(19)
    seen = {"messages": 0, "int32_wraps": 0, "held_residue": 0, "silent": 0, "synapse_wraps": 0}
    regimes = ("source", *SYNAPSES)
    for case in range(30):
        regime = regimes[case % len(regimes)]
        nb, nt, n = int(rng.integers(1, 4)), int(rng.integers(1, 30)), int(rng.integers(1, 70))
        acc, wexp, conv, graded = _sd_input(rng, (nb, nt, n), regime)
        if rng.random() < 0.5:  # sparse input: held values, where only the residue can still send
            acc = acc * (rng.random(acc.shape) < 0.3)
        mant = SD_VTH_MANT[case % len(SD_VTH_MANT)]
        bias = rng.integers(-(1 << 22), 1 << 22, n) * (rng.random() < 0.6)
        p = {"vth": sigma_delta.threshold(mant), "bias12": sigma_delta.bias_term(bias.astype(np.int64))}
        ref = sd_scan_reference(kind, relu, acc, wexp, conv, graded, p)
        backends = {**SD_BACKENDS, "step_by_step": _sd_step_by_step}
        for name, run in backends.items():
            got = run(kind, relu, acc.copy(), wexp, conv, graded, p)
            for key in ("spikes", "vtrace", "counts", "state"):
                if not np.array_equal(got[key], ref[key]):
                    first = np.argwhere(np.asarray(got[key]) != ref[key])[0]
                    raise AssertionError(
                        f"{kind} relu={relu} case {case} ({regime}, vThMant {mant}), backend {name}: {key} differs "
                        f"first at {first}: {got[key][tuple(first)]} vs reference {ref[key][tuple(first)]}"
                    )
        seen["messages"] += int(ref["spikes"].any())
        seen["int32_wraps"] += int(ref["wraps"] > 0)
        seen["held_residue"] += int(ref["residue"].any())
        seen["silent"] += int(not ref["spikes"].any())
        seen["synapse_wraps"] += int(ref["counts"][:, 2].sum() > 0)
    want = {"messages": 10, "int32_wraps": 4, "synapse_wraps": 4}
    if kind != "sigma":  # Sigma sends its sum every step: no threshold, no residue
        want |= {"held_residue": 4, "silent": 2}
    assert all(seen[k] >= v for k, v in want.items()), seen


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba not installed")
def test_numba_cache_key_covers_every_compiled_step():
    """numba's disk cache keys a kernel on its own bytecode only: the digest in every kernel's closure must cover
    the functions compiled into it (sigma_delta.py's as well as lif.py's and synapse.py's)."""
    from loihic.deploy.emulator import numba_kernels as nb

    steps = (sigma_delta.delta_step, sigma_delta.sigma_delta_step, sigma_delta.sigma_step, sigma_delta.delta_encode)
    assert all(fn in nb._GENERIC for fn in (*steps, lif.step, synapse.synaptic))
    assert nb._digest() == nb._DIGEST
