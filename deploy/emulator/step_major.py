"""The step-major emulator (``Emulator(..., mode="step")``): every layer once per time step.

This is the emulator as it was before the layer-major path (:mod:`loihic.deploy.emulator.network`): kept as the
reference the layer-major path is tested against (sim_tests/unit/test_emulator_layer_major.py), and
because it needs no memory proportional to T.  Same integer arithmetic, the functions of
:mod:`loihic.deploy.emulator.synapse` and :mod:`loihic.deploy.emulator.lif` on int64 (B, *shape) tensors.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from loihic.deploy.emulator import synapse as syn
from loihic.deploy.emulator.populations import SigmaDeltaState, _LifState, lif_step  # noqa: F401 - lif_step: API


def synapse(kind: str, params: object, s: torch.Tensor, graded: bool, counts: torch.Tensor | None) -> torch.Tensor:
    """The synaptic input ``a`` of one step (:func:`loihic.deploy.emulator.synapse.synaptic`): dense
    ``wrap32(shift(W @ s))``, conv ``wrap24(int32(conv(s)))``; ``graded``: ``s`` holds values (a graded source,
    sigma-delta messages), else any nonzero is one spike."""
    w = params[0]  # type: ignore[index]
    x = s.to(w.dtype) if graded else (s != 0).to(w.dtype)
    if kind == "dense":
        w, wexp = params  # type: ignore[misc]
        acc = torch.matmul(x.reshape(x.shape[0], -1), w)
    else:
        w, layer = params  # type: ignore[misc]
        wexp = 0  # Lava's conv ignores weight_exp
        acc = F.conv2d(x, w, stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)
    out, shifted = syn.synaptic(acc.round().to(torch.int64), wexp, kind == "conv", graded)
    if counts is not None:
        counts[2] += (out != shifted).sum()
    return out


def run_step_major(emu, xt: torch.Tensor, record_layers: bool, record_v: bool, monitor: bool) -> dict:  # noqa: ANN001
    """Run ``xt`` (B, *input_shape, T) int64 on ``emu`` (an :class:`~loihic.deploy.emulator.network.Emulator`)
    step by step.  Returns the fields of an EmulatorResult plus ``counts`` (per neuron layer (3,))."""
    batch, steps = xt.shape[0], xt.shape[-1]
    lifs = emu.lifs
    zero = torch.zeros(3, dtype=torch.int64, device=emu.device)
    states: list = []
    for lif in lifs:
        counts = zero.clone() if monitor else None
        if lif.kind == "lif":
            z = torch.zeros((batch, *lif.shape), dtype=torch.int64, device=emu.device)
            states.append(_LifState(z, z.clone(), counts))
        else:
            states.append(SigmaDeltaState(lif.new_state(batch, emu.device), counts))

    def readout(st) -> torch.Tensor:  # noqa: ANN001
        return st.v if isinstance(st, _LifState) else lifs[-1].readout(st.values).reshape(batch, *lifs[-1].shape)

    rec: list[list[torch.Tensor]] = [[] for _ in lifs]
    vtrace: list[torch.Tensor] = []
    last = len(lifs) - 1
    pending: dict[int, torch.Tensor] = {}  # stream timing: each synapse's input of the previous step
    for t in range(steps):
        s = xt[..., t]
        k = 0
        if emu.input_lif:
            s = emu.input_lif.step(states[0], s)
            rec[0].append(s) if (record_layers or last == 0) else None
            k = 1
        j = 0
        for kind, params, lif in emu.ops:
            if kind == "flatten":
                s = s.reshape(batch, -1)
                continue
            if emu.stream:  # the synapse's one-step latency (spec 2.7): it delivers last step's input
                s, pending[k] = pending.get(k, torch.zeros_like(s)), s
            a = synapse(kind, params, s, emu.graded_in[j], states[k].counts)
            j += 1
            s = lif.step(states[k], a)
            if record_layers or k == last:
                rec[k].append(s)
            k += 1
        if record_v:
            vtrace.append(readout(states[-1]).clone())

    def stack(ts: list[torch.Tensor], dtype: np.dtype) -> np.ndarray:
        return torch.stack(ts, dim=-1).cpu().numpy().astype(dtype)

    return {
        "output_spikes": stack(rec[-1], lifs[-1].record_dtype),
        "output_v": readout(states[-1]).cpu().numpy(),
        "layer_spikes": [stack(r, lif.record_dtype) for r, lif in zip(rec, lifs, strict=True)]
        if record_layers
        else None,
        "output_v_trace": torch.stack(vtrace, -1).cpu().numpy() if record_v else None,
        "counts": [st.counts.cpu().numpy() for st in states] if monitor else None,
    }


def run_step_major_temporal(emu, xt: torch.Tensor, record_layers: bool, record_v: bool, monitor: bool) -> dict:  # noqa: ANN001, PLR0915
    """A network with recurrent or delayed layers, step by step as Lava runs it (the reference for
    :mod:`loihic.deploy.emulator.temporal`): per Lava step, every synapse sends its buffer of the step before and
    takes this step's input (a DelayDense its ring ``a_buff`` of 63 columns: send column 0, zero it, roll left,
    add each delay value's shifted sum into its column; ``proc/dense/models.py`` PyDelayDenseModelBitAcc), every
    LIF takes the sum of its ports, netx's resets zero u and v (aligned timing), and a recurrent synapse takes
    the layer's own spikes.  Same time bases and results as the layer-major path."""
    from loihic.deploy.emulator import temporal

    batch, steps = xt.shape[0], xt.shape[-1]
    lifs, dev = emu.lifs, emu.device
    nl = temporal.lava_steps(emu, steps)
    zero3 = torch.zeros(3, dtype=torch.int64, device=dev)
    states = [
        _LifState(*(torch.zeros((batch, *p.shape), dtype=torch.int64, device=dev) for _ in "uv"), None) for p in lifs
    ]
    for st in states:
        st.counts = zero3.clone() if monitor else None
    resets = [set(temporal.reset_steps(emu, k, steps, nl)) for k in range(len(lifs))]
    buffers: list[torch.Tensor] = []
    for (_, _, pop), delay in zip(emu._synaptic, emu.delays, strict=True):
        cols = 63 if delay is not None else 1  # DelayDense(max_delay=62): a_buff has max_delay + 1 columns
        buffers.append(torch.zeros((batch, pop.size, cols), dtype=torch.int64, device=dev))
    # the recurrent synapse's buffer (its int32 value, and the shifted sum before the wrap: the monitor)
    rec_buf = [[torch.zeros((batch, p.size), dtype=torch.int64, device=dev) for _ in "as"] for p in lifs]
    x = xt.reshape(batch, -1, steps)
    rec: list[list[torch.Tensor]] = [[] for _ in lifs]
    vtrace: list[torch.Tensor] = []
    for i in range(nl):
        s = x[..., i] if i < steps else torch.zeros_like(x[..., 0])
        for j, (kind, params, pop) in enumerate(emu._synaptic):
            st = states[j]
            sent = buffers[j][..., 0].clone()
            graded = emu.graded_in[j]
            if emu.delays[j] is None:
                shape = (batch, *(emu.input_shape if j == 0 else emu._synaptic[j - 1][2].shape))
                buffers[j][..., 0] = synapse(kind, params, s.reshape(shape), graded, st.counts).reshape(batch, -1)
            else:
                w, wexp = params  # type: ignore[misc]
                xin = (s if graded else (s != 0)).reshape(batch, -1).to(w.dtype)
                buffers[j][..., 0] = 0
                buffers[j] = torch.roll(buffers[j], -1, dims=-1)
                for d, wd in emu.delays[j]:
                    acc = torch.matmul(xin, wd).round().to(torch.int64)
                    if graded:
                        acc = syn.wrap(acc, 32)
                    # kept unwrapped here (the monitor counts the wrap when it is sent): Lava's int32 a_buff
                    # wraps at every add, which gives the same value modulo 2^32
                    buffers[j][..., d] += syn.weight_exp(acc, int(wexp))
                wrapped = syn.wrap(sent, 32)
                if st.counts is not None:
                    st.counts[2] += (wrapped != sent).sum()
                sent = wrapped
            a = sent
            if emu.rec[j] is not None:  # the recurrent synapse's buffer: shift(W_rec s) of the step before
                a = syn.wrap(sent + rec_buf[j][0], 32)
                if st.counts is not None:
                    st.counts[2] += (a != sent + rec_buf[j][1]).sum()
            if i in resets[j]:  # LIFReset: u = v = 0 before integrating (lif/models.py PyLifResetModelBitAcc)
                st.u = torch.zeros_like(st.u)
                st.v = torch.zeros_like(st.v)
            s = pop.step(st, a.reshape(batch, *pop.shape)).reshape(batch, -1)
            if emu.rec[j] is not None:
                acc = torch.matmul(s.to(torch.float64), emu.rec[j][1]).round().to(torch.int64)
                rec_buf[j] = list(syn.synaptic(acc, int(params[1]), False, graded))  # type: ignore[index]
            if record_layers or j == len(lifs) - 1:
                rec[j].append(s.to(torch.uint8))
        if record_v:
            vtrace.append(states[-1].v.clone())

    def windowed(ts: list[torch.Tensor], k: int) -> np.ndarray:
        w0 = temporal.window(emu, k)
        return torch.stack(ts[w0 : w0 + steps], dim=-1).cpu().numpy().reshape(batch, *lifs[k].shape, steps)

    last = len(lifs) - 1
    return {
        "output_spikes": windowed(rec[last], last),
        "output_v": states[-1].v.cpu().numpy(),
        "layer_spikes": [windowed(rec[k], k) for k in range(len(lifs))] if record_layers else None,
        "output_v_trace": (
            torch.stack(vtrace[temporal.window(emu, last) :][:steps], -1)
            .cpu()
            .numpy()
            .reshape(batch, *lifs[-1].shape, steps)
            if record_v
            else None
        ),
        "counts": [st.counts.cpu().numpy() for st in states] if monitor else None,
    }
