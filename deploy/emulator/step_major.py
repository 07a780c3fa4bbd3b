"""The step-major emulator (``Emulator(..., mode="step")``): every layer once per time step.

This is the emulator as it was before the layer-major path (:mod:`loihic.deploy.emulator.network`): kept as the
reference the layer-major path is tested against (sim_tests/unit/test_emulator_layer_major.py), and
because it needs no memory proportional to T.  Same integer arithmetic, in int64 torch ops on
(B, *shape) tensors; see :mod:`loihic.deploy.emulator.kernels` for the equations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from loihic.compiler.netx import schema

_U = schema.UV_LIMIT  # 2^23
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1  # Lava conv: float64 sum -> astype(int32), INT_MIN if outside
_V_MAX = schema.UV_LIMIT - 1


def _wrap(x: torch.Tensor, bits: int) -> torch.Tensor:
    half = 1 << (bits - 1)
    return ((x + half) & ((1 << bits) - 1)) - half


def _rs0(x: torch.Tensor, n: int) -> torch.Tensor:
    """Shift right toward zero, ``sign(x) * (|x| >> n)`` (lif/models.py subthr_dynamics)."""
    return torch.sign(x) * (torch.abs(x) >> n)


@dataclass
class _LifState:
    u: torch.Tensor
    v: torch.Tensor
    counts: torch.Tensor | None  # (3,) int64: u wraps, v clips, synapse wraps (overflow monitor)


def lif_step(lif, st: _LifState, a: torch.Tensor) -> torch.Tensor:  # noqa: ANN001 - emulator._Lif
    """One step of a LIF population ``lif`` (emulator._Lif constants) on synaptic input ``a``."""
    c = _wrap(_rs0(st.u * lif.du, schema.DECAY_BITS) + _wrap(a << schema.WEIGHT_SHIFT, 32), 32)
    u = torch.where(c > _U, c - 2 * _U, c)
    st.u = torch.where(u <= -_U, c + 2 * _U, u)
    w = _wrap(_rs0(st.v * lif.dv, schema.DECAY_BITS) + st.u + lif.bias, 32)
    v = torch.clamp(w, -_V_MAX, _V_MAX)
    if st.counts is not None:
        st.counts[0] += (st.u != c).sum()
        st.counts[1] += (v != w).sum()
    s = v > lif.vth
    st.v = torch.where(s, torch.zeros_like(v), v)
    return s


def synapse(
    kind: str, params: object, s: torch.Tensor, graded_first: bool, counts: torch.Tensor | None
) -> torch.Tensor:
    """The synaptic input ``a`` of one step: dense ``wrap32(shift(W @ s))``, conv ``wrap24(int32(conv(s)))``."""
    w = params[0]  # type: ignore[index]
    x = s.to(w.dtype) if graded_first else (s != 0).to(w.dtype)
    if kind == "dense":
        w, wexp = params  # type: ignore[misc]
        acc = torch.matmul(x.reshape(x.shape[0], -1), w).round().to(torch.int64)
        acc = acc << wexp if wexp > 0 else acc >> -wexp
        out = _wrap(acc, schema.CHANNEL_BITS)
    else:
        w, layer = params  # type: ignore[misc]
        acc = (
            F.conv2d(x, w, stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)
            .round()
            .to(torch.int64)
        )
        acc = torch.where((acc < _INT32_MIN) | (acc > _INT32_MAX), torch.full_like(acc, _INT32_MIN), acc)
        out = _wrap(acc, schema.CONV_ACC_BITS)
    if counts is not None:
        counts[2] += (out != acc).sum()
    return out


def run_step_major(emu, xt: torch.Tensor, record_layers: bool, record_v: bool, monitor: bool) -> dict:  # noqa: ANN001
    """Run ``xt`` (B, *input_shape, T) int64 on ``emu`` (an :class:`~loihic.deploy.emulator.network.Emulator`)
    step by step.  Returns the fields of an EmulatorResult plus ``counts`` (per neuron layer (3,))."""
    batch, steps = xt.shape[0], xt.shape[-1]
    lifs = emu.lifs
    zero = torch.zeros(3, dtype=torch.int64, device=emu.device)
    states = []
    for lif in lifs:
        z = torch.zeros((batch, *lif.shape), dtype=torch.int64, device=emu.device)
        states.append(_LifState(z, z.clone(), zero.clone() if monitor else None))
    rec: list[list[torch.Tensor]] = [[] for _ in lifs]
    vtrace: list[torch.Tensor] = []
    last = len(lifs) - 1
    for t in range(steps):
        s = xt[..., t]
        k = 0
        if emu.input_lif:
            s = emu.input_lif.step(states[0], s)
            rec[0].append(s) if (record_layers or last == 0) else None
            k = 1
        first = not emu.input_lif
        for kind, params, lif in emu.ops:
            if kind == "flatten":
                s = s.reshape(batch, -1)
                continue
            a = synapse(kind, params, s, first and emu.graded, states[k].counts)
            first = False
            s = lif.step(states[k], a)
            if record_layers or k == last:
                rec[k].append(s)
            k += 1
        if record_v:
            vtrace.append(states[-1].v.clone())

    def stack(ts: list[torch.Tensor]) -> np.ndarray:
        return torch.stack(ts, dim=-1).to(torch.uint8).cpu().numpy()

    return {
        "output_spikes": stack(rec[-1]),
        "output_v": states[-1].v.cpu().numpy(),
        "layer_spikes": [stack(r) for r in rec] if record_layers else None,
        "output_v_trace": torch.stack(vtrace, -1).cpu().numpy() if record_v else None,
        "counts": [st.counts.cpu().numpy() for st in states] if monitor else None,
    }
