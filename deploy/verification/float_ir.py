"""The float network of any IR (``compiler/ir.py``), run step by step: the reference of a file compiled from a
front end that has no SNN checkpoint of its own (a NIR graph).

It computes the IR's neuron equations in float64, unquantized, on the IR after the two exact float passes
(``fold_batchnorm``, ``lower_avgpool``)::

    u[t] = (1 - current_decay) u[t-1] + W s[t]     (+ W_rec s_self[t-1], + per synapse s_j[t - delay_ij])
    v[t] = (1 - voltage_decay) v[t-1] + u[t] + bias ;  s[t] = v[t] > threshold, then v <- 0 (hard) / v - th (soft)

with the input divided by the encoding's integer scale (``training/encoding.input_scale``), as
:class:`loihic.training.snn.SNNModel` does, and returns the same :class:`~loihic.training.snn.SNNRun`: the
read-out's ``v`` after the last step (a non-spiking read-out) or the output spike counts, and per spiking layer
its spikes (B, *shape, T).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from loihic.compiler import ir
from loihic.compiler.config import CompileConfig
from loihic.compiler.encoding import input_scale
from loihic.compiler.errors import InputError
from loihic.compiler.passes.drop_dropout import drop_dropout
from loihic.compiler.passes.fold_batchnorm import fold_batchnorm
from loihic.compiler.passes.lower_avgpool import lower_avgpool
from loihic.training.snn import SNNRun


class IRModel:
    """``IRModel(net).simulate(spikes (B, *input_shape, T), record=True)`` -> :class:`SNNRun`."""

    def __init__(self, net: ir.Network) -> None:
        cfg = CompileConfig()
        self.net = lower_avgpool(fold_batchnorm(drop_dropout(net, cfg), cfg), cfg)
        self.input_shape = tuple(self.net.input.shape)
        self.scale = float(input_scale(self.net.encoding))
        self._t = {}  # layer index -> (weight, bias) as float64 tensors
        for i, layer in enumerate(self.net.layers):
            if isinstance(layer, ir.Dense | ir.Conv):
                w = torch.from_numpy(np.array(layer.weight, dtype=np.float64))
                b = None if layer.bias is None else torch.from_numpy(np.array(layer.bias, dtype=np.float64))
                self._t[i] = (w, b)
            elif not isinstance(layer, ir.Flatten | ir.AvgPool):
                raise InputError(f"{layer.name}: {type(layer).__name__} is not simulated in float")

    def _synapse(self, i: int, layer: ir.Dense | ir.Conv, h: torch.Tensor, past: list | None = None) -> torch.Tensor:
        w, _ = self._t[i]
        if isinstance(layer, ir.Dense) and layer.delay is not None:  # past[d]: the input of d steps ago
            past.insert(0, h.reshape(len(h), -1))
            del past[int(layer.delay.max()) + 1 :]
            return sum(
                past[d] @ torch.where(torch.from_numpy(layer.delay.T == d), w.T, 0.0)
                for d in np.unique(layer.delay)
                if d < len(past)
            )
        if isinstance(layer, ir.Dense):
            return h.reshape(len(h), -1) @ w.T
        return F.conv2d(h, w, None, layer.stride, layer.padding, layer.dilation, layer.groups)

    @torch.no_grad()
    def simulate(self, spikes: torch.Tensor | np.ndarray, record: bool = False) -> SNNRun:
        x = torch.as_tensor(np.asarray(spikes)).to(torch.float64) / self.scale
        if x.ndim != len(self.input_shape) + 2 or tuple(x.shape[1:-1]) != self.input_shape:
            dims = ", ".join(map(str, self.input_shape))
            raise InputError(f"spikes have shape {tuple(x.shape)}, expected (B, {dims}, T)")
        if x.shape[-1] == 0:
            raise InputError("spikes have no time steps (T = 0)")
        layers = list(self.net.layers)
        syn = [i for i, lay in enumerate(layers) if isinstance(lay, ir.Dense | ir.Conv)]
        state: dict[int, list[torch.Tensor | float]] = {i: [0.0, 0.0] for i in syn}
        past: dict[int, list[torch.Tensor]] = {i: [] for i in syn}  # delayed layers' input history
        s_prev: dict[int, torch.Tensor | None] = {i: None for i in syn}  # recurrent layers' spikes of t - 1
        rec: dict[int, list[torch.Tensor]] = {i: [] for i in syn if layers[i].neuron.spiking}
        counts: torch.Tensor | float = 0.0
        v_last: torch.Tensor | None = None
        for t in range(x.shape[-1]):
            h = x[..., t]
            for i, layer in enumerate(layers):
                if isinstance(layer, ir.Flatten):
                    h = h.reshape(len(h), -1)
                    continue
                if isinstance(layer, ir.AvgPool):
                    h = F.avg_pool2d(h, layer.kernel, layer.stride)
                    continue
                n = layer.neuron
                u, v = state[i]
                u = (1.0 - n.current_decay) * u + self._synapse(i, layer, h, past[i])
                if getattr(layer, "weight_rec", None) is not None and s_prev[i] is not None:
                    u = u + s_prev[i] @ torch.from_numpy(np.array(layer.weight_rec, dtype=np.float64)).T
                bias = self._t[i][1]
                if bias is not None:
                    bias = bias.reshape(1, -1, 1, 1) if isinstance(layer, ir.Conv) else bias
                v = (1.0 - n.voltage_decay) * v + u + (0.0 if bias is None else bias)
                if n.spiking:
                    s = v > n.threshold
                    v = torch.where(s, torch.zeros_like(v), v) if n.reset == "hard" else v - n.threshold * s
                    if record:
                        rec[i].append(s)
                    h = s.to(torch.float64)
                    s_prev[i] = h
                    if i == syn[-1]:
                        counts = counts + h
                state[i] = [u, v]
                if i == syn[-1]:
                    v_last = v
        last = layers[syn[-1]]
        out = counts if last.neuron.spiking else v_last
        trains = tuple(torch.stack(rec[i], dim=-1) for i in rec) if record else ()
        return SNNRun(out.reshape(len(x), -1).to(torch.float32), trains)
