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
from loihic.deploy.emulator import kernels, lif, step_major, synapse

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
