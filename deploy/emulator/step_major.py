"""The step-major emulator (``Emulator(..., mode="step")``): every layer once per time step.

This is the emulator as it was before the layer-major path (:mod:`loihic.deploy.emulator.network`): kept as the
reference the layer-major path is tested against (sim_tests/unit/test_emulator_layer_major.py), and
because it needs no memory proportional to T.  Same integer arithmetic, the functions of
:mod:`loihic.deploy.emulator.synapse` and :mod:`loihic.deploy.emulator.lif` on int64 (B, *shape) tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from loihic.deploy.emulator import lif as lif_kind
from loihic.deploy.emulator import synapse as syn


@dataclass
class _LifState:
    u: torch.Tensor
    v: torch.Tensor
    counts: torch.Tensor | None  # (3,) int64: u wraps, v clips, synapse wraps (overflow monitor)


def lif_step(lif, st: _LifState, a: torch.Tensor) -> torch.Tensor:  # noqa: ANN001 - emulator._Lif
    """One step of a LIF population ``lif`` (emulator._Lif constants) on synaptic input ``a``
    (:func:`loihic.deploy.emulator.lif.step`)."""
    st.u, st.v, s, u_wrapped, v_clipped = lif_kind.step(
        st.u, st.v, lif_kind.current_input(a), lif.du, lif.dv, lif.bias, lif.vth
    )
    if st.counts is not None:
        st.counts[0] += u_wrapped.sum()
        st.counts[1] += v_clipped.sum()
    return s


def synapse(
    kind: str, params: object, s: torch.Tensor, graded_first: bool, counts: torch.Tensor | None
) -> torch.Tensor:
    """The synaptic input ``a`` of one step (:func:`loihic.deploy.emulator.synapse.synaptic`): dense
    ``wrap32(shift(W @ s))``, conv ``wrap24(int32(conv(s)))``."""
    w = params[0]  # type: ignore[index]
    x = s.to(w.dtype) if graded_first else (s != 0).to(w.dtype)
    if kind == "dense":
        w, wexp = params  # type: ignore[misc]
        acc = torch.matmul(x.reshape(x.shape[0], -1), w)
    else:
        w, layer = params  # type: ignore[misc]
        wexp = 0  # Lava's conv ignores weight_exp
        acc = F.conv2d(x, w, stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)
    out, shifted = syn.synaptic(acc.round().to(torch.int64), wexp, kind == "conv")
    if counts is not None:
        counts[2] += (out != shifted).sum()
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
    pending: dict[int, torch.Tensor] = {}  # stream timing: each synapse's input of the previous step
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
            if emu.stream:  # the synapse's one-step latency (spec 2.7): it delivers last step's input
                s, pending[k] = pending.get(k, torch.zeros_like(s)), s
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
