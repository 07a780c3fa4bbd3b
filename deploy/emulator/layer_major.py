"""Layer-major execution of a feed-forward netx network (``Emulator(..., mode="layer")``, the default).

For a block of samples (and steps), layer by layer: the layer's whole synaptic input, one matmul (dense)
or conv2d (conv) over all B*T rows in the exact float dtype, then the LIF recurrence over T
(:func:`~loihic.deploy.emulator.kernels.scan_numba` on CPU, :func:`~...scan_torch` elsewhere; for sigma-delta
populations ``sd_scan_numba`` / ``sd_scan_torch``), whose
spikes, written in the dtype the next layer's matmul reads, are that layer's input.  Tensors are
(B, T, n) (sample, step, neuron), so a sample's steps are consecutive GEMM rows and each step's neurons
are contiguous.  u and v are carried from one time block to the next, so blocks in time give the same
integers as one block.

Memory: :func:`plan_blocks` sizes the blocks so that the estimated working memory (the block's input,
one layer's accumulator and its spikes, the next layer's input; on the torch backend also the int64
synaptic term) stays within ``Emulator.memory_mb`` (and, on CPU, within a cache-sized 32 MB whenever one
sample fits).  The buffers are kept by the emulator (:class:`Workspace`) for its next block and run.
The results (recorded spikes, voltage traces) are allocated once for the whole batch and come on top;
so does the caller's ``x``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from loihic.deploy.emulator import kernels as kern

_MB = 1 << 20
# Working set of one block on CPU.  Measured with one thread (bench/emulator_speed.py networks, T=100):
# 32 MB blocks run the LeNet-5-sized conv net 2.2x faster than 1 GB blocks (3.5 vs 7.7 ms per sample:
# conv1's accumulator and spikes stay in cache) and the MLP 10% faster (0.32 vs 0.36 ms per sample).
CPU_BLOCK_MB = 32


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _out_dtypes(emu) -> list[torch.dtype]:  # noqa: ANN001 - emulator.Emulator
    """The dtype each neuron layer writes its output in: the next matmul's float dtype; at the end uint8
    (spikes) or int32 (sigma-delta messages)."""
    following = [op[1][0].dtype for op in emu._synaptic]  # type: ignore[index]
    if emu.input_lif is None:
        following = following[1:]
    return [*following, torch.int32 if emu.lifs[-1].graded_out else torch.uint8]


def step_bytes(emu) -> int:  # noqa: ANN001
    """Estimated working memory per (sample, step) of the layer-major path: the largest, over the neuron
    layers, of its input + its accumulator (counted twice for conv: the library may reorder both) + its
    spikes (+ the int64 synaptic term on the torch backend), plus the raw input step."""
    outs = _out_dtypes(emu)
    n_in = int(np.prod(emu.input_shape))
    raw = n_in * 8
    if emu.input_lif is not None:
        first_in = n_in * 8
    else:
        first_in = n_in * _itemsize(emu._synaptic[0][1][0].dtype)
    peaks, inp, k = [], first_in, 0
    if emu.input_lif is not None:
        peaks.append(inp + n_in * 8 + n_in * _itemsize(outs[0]))
        inp, k = n_in * _itemsize(outs[0]), 1
    for kind, params, lif in emu._synaptic:
        acc = lif.size * _itemsize(params[0].dtype)
        extra = lif.size * 8 if emu.backend == "torch" else 0
        factor = 2 if kind == "conv" else 1
        out = lif.size * _itemsize(outs[k])
        peaks.append(factor * (inp + acc) + out + extra)
        inp, k = out, k + 1
    return raw + max(peaks)


def plan_blocks(emu, batch: int, steps: int) -> tuple[int, int]:  # noqa: ANN001
    """(samples, steps) per block.  On CPU, as many samples (all steps) as fit :data:`CPU_BLOCK_MB`, so
    that a layer's accumulator and spikes stay in cache between the GEMM/conv and the recurrence; on a
    GPU as many as fit ``emu.memory_mb``.  A sample larger than that gets a block of its own, and one
    larger than ``emu.memory_mb`` is cut in time (as many steps per block as fit)."""
    budget = int(emu.memory_mb * _MB)
    target = min(budget, CPU_BLOCK_MB * _MB) if emu.device.type == "cpu" else budget
    per_step = step_bytes(emu)
    per_sample = per_step * steps
    if per_sample <= target:
        return max(1, min(batch, target // per_sample)), steps
    if per_sample <= budget:
        return 1, steps
    return 1, max(1, min(steps, budget // per_step))


class Workspace:
    """Buffers reused from block to block and run to run (a fresh large tensor costs its page faults, about
    as much as writing it): one flat buffer per role, grown when a block needs more."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._bufs: dict[object, torch.Tensor] = {}

    def get(self, key: object, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        n = int(np.prod(shape))
        buf = self._bufs.get(key)
        if buf is None or buf.dtype != dtype or buf.numel() < n:
            self._bufs.pop(key, None)  # release before allocating the larger one
            buf = self._bufs[key] = torch.empty(n, dtype=dtype, device=self.device)
        return buf[:n].view(shape)


def _scan(emu, acc, wexp, conv, graded, pop, state, out, vtrace, counts) -> None:  # noqa: ANN001, PLR0913
    """One population over a block: its synaptic input from the accumulator ``acc`` (``graded=None``: ``acc``
    is what the source drives an input population with, no synapse), then its kind's recurrence."""
    if pop.kind == "lif":
        fn = kern.scan_numba if emu.backend == "numba" else kern.scan_torch
        fn(acc, wexp, conv, pop.du, pop.dv, pop.vth, pop.bias6, state[0], state[1], out, vtrace, counts, bool(graded))
        return
    pop.scan(emu.backend, acc, wexp, conv, graded, state, out, vtrace, counts)


def _synapse(kind: str, params: object, s: torch.Tensor, in_shape: tuple[int, ...], out: torch.Tensor) -> torch.Tensor:
    """The accumulator (B, T, n_out) of one layer over a (B, T, n_in) block of spikes (dense: into ``out``)."""
    nb, nt = s.shape[0], s.shape[1]
    w = params[0]  # type: ignore[index]
    if kind == "dense":
        acc = torch.matmul(s.reshape(nb * nt, -1), w, out=out.view(nb * nt, -1))
    else:
        layer = params[1]  # type: ignore[index]
        acc = F.conv2d(
            s.reshape(nb * nt, *in_shape),
            w,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=layer.groups,
        )
    return acc.reshape(nb, nt, -1)


def _delayed(s: torch.Tensor, carry: dict[int, torch.Tensor], k: int) -> torch.Tensor:
    """Stream timing: layer ``k``'s synapse sees the layer below one step late (spec 2.7, the synapse's a_buff),
    so this block's input is shifted by one step, its first column the previous block's last (zero at a
    sample's start), and its last column carried into the next block."""
    prev = carry.get(k)
    carry[k] = s[:, -1:].clone()
    return torch.cat([torch.zeros_like(s[:, :1]) if prev is None else prev, s[:, :-1]], dim=1)


def _block(emu, xb: torch.Tensor, state, counts, rec, vtrace, b0: int, t0: int, carry) -> None:  # noqa: ANN001, PLR0913
    """Run one block ``xb`` (nb, n_in, nt) through every layer; write its results into ``rec``/``vtrace``.
    ``carry``: stream timing's per-layer last input column (a dict, empty at a sample block's start), or None."""
    nb, nt = xb.shape[0], xb.shape[-1]
    outs, last, ws = _out_dtypes(emu), len(emu.lifs) - 1, emu.workspace

    def record(k: int, s: torch.Tensor, vt: torch.Tensor | None) -> None:
        if rec[k] is not None:
            kern.to_bnt(s, rec[k][b0 : b0 + nb, :, t0 : t0 + nt])
        if vt is not None:
            kern.to_bnt(vt, vtrace[b0 : b0 + nb, :, t0 : t0 + nt])

    def trace(k: int, n: int) -> torch.Tensor | None:
        return ws.get("vtrace", (nb, nt, n), torch.int64) if (vtrace is not None and k == last) else None

    k, in_shape = 0, emu.input_shape
    if emu.input_lif is not None:  # the source drives the input neuron's a_in with the raw values
        lif = emu.input_lif
        acc = ws.get("input", (nb, nt, lif.size), torch.int64)
        kern.to_btn(xb, acc, binary=False)
        s = ws.get(("spikes", 0), (nb, nt, lif.size), outs[0])
        vt = trace(0, lif.size)
        _scan(
            emu,
            acc,
            0,
            False,
            None if lif.graded_out else False,
            lif,
            state[0],
            s,
            vt,
            None if counts is None else counts[0],
        )
        record(0, s, vt)
        k = 1
    else:
        first = emu._synaptic[0][1][0].dtype
        s = ws.get("input", (nb, nt, xb.shape[1]), first)
        kern.to_btn(xb, s, binary=not emu.graded)
    for j, (kind, params, lif) in enumerate(emu._synaptic):
        if carry is not None:
            s = _delayed(s, carry, k)
        acc = _synapse(kind, params, s, in_shape, ws.get(("acc", k), (nb, nt, lif.size), params[0].dtype))  # type: ignore[index]
        wexp = params[1] if kind == "dense" else 0  # type: ignore[index]
        s = ws.get(("spikes", k), (nb, nt, lif.size), outs[k])
        vt = trace(k, lif.size)
        graded = emu.graded_in[j]
        _scan(emu, acc, int(wexp), kind == "conv", graded, lif, state[k], s, vt, None if counts is None else counts[k])
        del acc
        record(k, s, vt)
        in_shape, k = lif.shape, k + 1


def run_layer_major(emu, x, record_layers: bool, record_v: bool, monitor: bool) -> dict:  # noqa: ANN001
    """Run ``x`` (B, *input_shape, T) on ``emu``; the fields of an EmulatorResult plus ``counts``."""
    batch, steps = int(x.shape[0]), int(x.shape[-1])
    lifs, dev = emu.lifs, emu.device
    last = len(lifs) - 1
    rec = [
        np.empty((batch, lif.size, steps), lif.record_dtype) if (record_layers or k == last) else None
        for k, lif in enumerate(lifs)
    ]
    vtrace = np.empty((batch, lifs[-1].size, steps), np.int64) if record_v else None
    output_v = np.empty((batch, lifs[-1].size), np.int64)
    totals = [np.zeros(3, np.int64) for _ in lifs]
    xs = torch.as_tensor(np.asarray(x) if isinstance(x, np.ndarray) else x)
    xs = xs.reshape(batch, -1, steps)
    if xs.dtype == torch.bool:
        xs = xs.to(torch.uint8)
    bc, tc = plan_blocks(emu, batch, steps)
    for b0 in range(0, batch, bc):
        nb = min(bc, batch - b0)
        state = [lif.new_state(nb, dev) for lif in lifs]
        counts = [torch.zeros((nb, 3), dtype=torch.int64, device=dev) for _ in lifs] if monitor else None
        carry: dict[int, torch.Tensor] | None = {} if emu.stream else None  # fresh network per sample block
        for t0 in range(0, steps, tc):
            xb = xs[b0 : b0 + nb, :, t0 : t0 + tc]
            xb = xb.to(dev) if dev.type != "cpu" else xb
            _block(emu, xb, state, counts, rec, vtrace, b0, t0, carry)
        output_v[b0 : b0 + nb] = lifs[-1].readout(state[-1]).cpu().numpy()
        if counts is not None:
            for k, c in enumerate(counts):
                totals[k] += c.sum(0).cpu().numpy()

    def shaped(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return a.reshape(batch, *shape, *a.shape[2:])

    out_shape = lifs[-1].shape
    return {
        "output_spikes": shaped(rec[-1], out_shape),
        "output_v": shaped(output_v, out_shape),
        "layer_spikes": [shaped(r, lif.shape) for r, lif in zip(rec, lifs, strict=True)] if record_layers else None,
        "output_v_trace": shaped(vtrace, out_shape) if record_v else None,
        "counts": totals if monitor else None,
    }
