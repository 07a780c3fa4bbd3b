"""Recurrent ('dense_rec') and delayed ('delay') layers: the emulator's path for a network that has either.

What Lava computes (lava-nc 0.10.0, lava-dl 0.6.0), on Lava's own step index ``i = 0 .. L-1`` (Lava step i + 1):

* a plain Dense / Conv delivers its input of step i at step i + 1 (the synapse's ``a_buff``, spec 2.7);
* ``DelayDense`` (``proc/dense/models.py`` ``PyDelayDenseModelBitAcc.run_spk``) sends ``a_buff[:, 0]``, then adds
  ``shift(sum_{j: d_ij = d} W_ij s_j)`` for every delay value d into column d of ``a_buff`` after rolling it one
  column left (the flat ``np.roll`` wraps a zeroed column into the last one, so it is a shift with zero fill):
  input j's spike of step i reaches neuron i at step i + 1 + d_ij.  The weight exponent shifts each delay
  value's sum of each step on its own, before the sums meet in the int32 ``a_buff``;
* ``RecurrentDense`` (``lava-dl netx/blocks/process.py``) adds a second Dense synapse from the layer's own
  ``s_out`` back to its ``a_in``, with the same weight exponent: the layer's spikes of step i enter its input at
  step i + 1.  The neuron's ``a_in`` sums both ports (int32).

So, per layer k, with ``s_{-1}`` the source (column i sent at step i + 1, i.e. integrated at index i + 1)::

    a_k[i] = wrap32( sum_d shift(W_d s_{k-1}[i - 1 - d]) + shift(W_rec s_k[i - 1]) )

then the LIF step (:mod:`loihic.deploy.emulator.lif`).  Timing:

* stream (``stream=True``): L = T, nothing reset; the output is the sink's record at steps 1..T;
* aligned (the default for LIF): each sample runs from a FRESH network with netx's resets (``reset_interval=T``,
  ``reset_offset=1``: layer k's u and v are zeroed at the start of every Lava step s with
  ``s % T == (k + 2) % T``), over L = T + K steps (K neuron layers, the input followed by K zero columns), and
  layer k's output is its steps k + 2 .. k + 1 + T, the window the feed-forward aligned run reads.  A reset
  clears u and v but neither the delay buffers nor the recurrent synapse's in-flight spikes (Lava resets only
  the neuron), so one network running many samples would carry state from one sample into the next:
  :func:`loihic.deploy.lava.run.run_lava` runs such files one sample per network in both timings.

The layers run layer-major like the feed-forward path (one matmul per delay value over all B*L rows), a
recurrent layer stepping through time inside its scan (numba kernel on CPU, torch steps elsewhere).
"""

from __future__ import annotations

import numpy as np
import torch

from loihic.deploy.emulator import kernels as kern
from loihic.deploy.emulator import lif, synapse
from loihic.deploy.emulator.layer_major import _synapse
from loihic.deploy.lava import timing


def lava_steps(emu, steps: int) -> int:  # noqa: ANN001
    """L: the Lava steps one sample runs for (T, or T + K aligned)."""
    return steps if emu.stream else steps + timing.output_delay(len(emu._synaptic))


def reset_steps(emu, k: int, steps: int, total: int) -> list[int]:  # noqa: ANN001
    """The indices i (Lava step i + 1) at whose start netx's LIFReset zeroes layer k's u and v (aligned timing;
    ``hdf5.py _create``: reset_offset = user offset 1 + 1 + k; ``lif/models.py`` PyLifResetModelBitAcc)."""
    if emu.stream:
        return []
    phase = (timing.reset_offset(False) + 1 + k) % steps
    return [i for i in range(total) if (i + 1) % steps == phase]


def window(emu, k: int) -> int:  # noqa: ANN001
    """First index of layer k's output: 0 in stream timing, k + 1 aligned (run.py ``_block_delays``)."""
    return 0 if emu.stream else k + 1


def feed_forward_input(emu, j: int, kind: str, params, s: torch.Tensor, in_shape, counts) -> torch.Tensor:  # noqa: ANN001, PLR0913
    """a (B, L, n_out) int64: layer j's synaptic input from the layer below over L steps (module doc), one step of
    synapse latency plus each synapse's delay; its int32 wraps counted in ``counts[:, 2]``."""
    nb, nl = s.shape[0], s.shape[1]
    delay = emu.delays[j]
    graded = emu.graded_in[j]
    x = s if graded else (s != 0).to(s.dtype)
    n_out = emu._synaptic[j][2].size
    total = torch.zeros((nb, nl, n_out), dtype=torch.int64, device=s.device)
    if delay is None:
        acc = _synapse(kind, params, x, in_shape, torch.empty((nb, nl, n_out), dtype=params[0].dtype, device=s.device))
        wexp = params[1] if kind == "dense" else 0
        a, shifted = synapse.synaptic(acc.to(torch.int64), int(wexp), kind == "conv", graded)
        if counts is not None:  # every step's sum, as the step-major path counts it (synapse.synaptic)
            counts[:, 2] += (a != shifted).reshape(nb, -1).sum(1)
        total[:, 1:] = a[:, :-1]
        return total
    w, wexp = params  # dense, (n_in, n_out) float
    unwrapped = torch.zeros_like(total)
    for d, wd in delay:
        if d + 1 >= nl:
            continue
        acc = torch.matmul(x[:, : nl - 1 - d].reshape(-1, x.shape[-1]), wd).reshape(nb, nl - 1 - d, n_out)
        acc = acc.to(torch.int64)
        shifted = synapse.weight_exp(acc, int(wexp))
        if graded:  # the int32 weights.dot of a graded input wraps before the shift (synapse.synaptic)
            shifted = synapse.weight_exp(synapse.wrap(acc, 32), int(wexp))
        unwrapped[:, 1 + d :] += shifted
    total = synapse.wrap(unwrapped, 32)
    if counts is not None:
        counts[:, 2] += (total != unwrapped).reshape(nb, -1).sum(1)
    return total


def rec_scan_torch(a, w_rec, wexp, graded, pop, u, v, sprev, spikes, vtrace, counts, lo: int, hi: int) -> None:  # noqa: ANN001, PLR0913
    """A recurrent LIF layer over steps [lo, hi) of ``a`` (B, L, n) int64: each step adds the recurrent synapse's
    ``shift(W_rec s[i-1])`` (``sprev``, (B, n) carried across calls and resets) and runs the LIF step."""
    for t in range(lo, hi):
        acc = torch.matmul(sprev.to(torch.float64), w_rec).round().to(torch.int64)  # exact: |sum| < 2^53
        ar, shifted = synapse.synaptic(acc, wexp, False, graded)
        tot = synapse.wrap(a[:, t] + ar, 32)
        uu, vv, s, u_wrapped, v_clipped = lif.step(u, v, lif.current_input(tot), pop.du, pop.dv, pop.bias6, pop.vth)
        if counts is not None:
            counts[:, 0] += u_wrapped.sum(1)
            counts[:, 1] += v_clipped.sum(1)
            counts[:, 2] += (tot != a[:, t] + shifted).sum(1)
        u.copy_(uu)
        v.copy_(vv)
        sprev.copy_(s)
        spikes[:, t] = s
        if vtrace is not None:
            vtrace[:, t] = vv


def _scan_segment(emu, j, a, state, out, vtrace, counts, lo, hi) -> None:  # noqa: ANN001, PLR0913
    pop = emu._synaptic[j][2]
    w_rec = emu.rec[j]
    seg = lambda t: None if t is None else t[:, lo:hi]  # noqa: E731
    if w_rec is None:
        fn = kern.scan_numba if emu.backend == "numba" else kern.scan_torch
        # ``a`` is already the synaptic input: wexp 0, no conv, binary path (wrap32 is idempotent on it)
        fn(seg(a), 0, False, pop.du, pop.dv, pop.vth, pop.bias6, state[0], state[1], seg(out), seg(vtrace), counts)
        return
    wexp, graded = int(emu._synaptic[j][1][1]), bool(emu.graded_in[j])
    if emu.backend == "numba":
        kern.rec_scan_numba(a, w_rec[0], wexp, graded, pop, state[0], state[1], state[2], out, vtrace, counts, lo, hi)
    else:
        rec_scan_torch(a, w_rec[1], wexp, graded, pop, state[0], state[1], state[2], out, vtrace, counts, lo, hi)


def run_temporal(emu, x, record_layers: bool, record_v: bool, monitor: bool) -> dict:  # noqa: ANN001, PLR0915
    """Run ``x`` (B, *input_shape, T) through a network with recurrent or delayed layers (module doc): the fields
    of an EmulatorResult plus ``counts``, in the emulator's time base (aligned or stream)."""
    batch, steps = int(x.shape[0]), int(x.shape[-1])
    lifs, dev = emu.lifs, emu.device
    nl = lava_steps(emu, steps)
    last = len(lifs) - 1
    rec = [
        np.empty((batch, lif.size, steps), lif.record_dtype) if (record_layers or k == last) else None
        for k, lif in enumerate(lifs)
    ]
    vtrace_out = np.empty((batch, lifs[-1].size, steps), np.int64) if record_v else None
    output_v = np.empty((batch, lifs[-1].size), np.int64)
    totals = [np.zeros(3, np.int64) for _ in lifs]
    xs = torch.as_tensor(np.asarray(x) if isinstance(x, np.ndarray) else x).reshape(batch, -1, steps)
    per_sample = nl * max(lif.size for lif in lifs) * 8 * 6
    bc = max(1, min(batch, int(emu.memory_mb * (1 << 20)) // max(per_sample, 1)))
    for b0 in range(0, batch, bc):
        nb = min(bc, batch - b0)
        first = emu._synaptic[0][1][0].dtype
        s = torch.zeros((nb, nl, xs.shape[1]), dtype=first, device=dev)
        xb = xs[b0 : b0 + nb].to(dev).permute(0, 2, 1)
        s[:, :steps] = xb.to(first) if emu.graded else (xb != 0).to(first)
        in_shape = emu.input_shape
        for j, (kind, params, pop) in enumerate(emu._synaptic):
            counts = torch.zeros((nb, 3), dtype=torch.int64, device=dev) if monitor else None
            a = feed_forward_input(emu, j, kind, params, s, in_shape, counts)
            state = pop.new_state(nb, dev) + [torch.zeros((nb, pop.size), dtype=torch.int64, device=dev)]
            out = torch.empty((nb, nl, pop.size), dtype=torch.uint8, device=dev)
            vt = torch.empty((nb, nl, pop.size), dtype=torch.int64, device=dev) if (record_v and j == last) else None
            cuts = [0, *[r for r in reset_steps(emu, j, steps, nl) if r > 0], nl]
            for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
                if lo > 0 or not emu.stream:  # a reset at lo (or the fresh start): u = v = 0, synapses untouched
                    state[0].zero_()
                    state[1].zero_()
                _scan_segment(emu, j, a, state, out, vt, counts, lo, hi)
            w0 = window(emu, j)
            if rec[j] is not None:
                rec[j][b0 : b0 + nb] = out[:, w0 : w0 + steps].permute(0, 2, 1).cpu().numpy()
            if vt is not None:
                vtrace_out[b0 : b0 + nb] = vt[:, w0 : w0 + steps].permute(0, 2, 1).cpu().numpy()
            if j == last:
                output_v[b0 : b0 + nb] = state[1].cpu().numpy()
            if counts is not None:
                totals[j] += counts.sum(0).cpu().numpy()
            nxt = emu._synaptic[j + 1][1][0].dtype if j < last else torch.float32
            s = out.to(nxt)
            in_shape = pop.shape

    def shaped(arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return arr.reshape(batch, *shape, *arr.shape[2:])

    out_shape = lifs[-1].shape
    return {
        "output_spikes": shaped(rec[-1], out_shape),
        "output_v": shaped(output_v, out_shape),
        "layer_spikes": [shaped(r, lif.shape) for r, lif in zip(rec, lifs, strict=True)] if record_layers else None,
        "output_v_trace": shaped(vtrace_out, out_shape) if record_v else None,
        "counts": totals if monitor else None,
    }
