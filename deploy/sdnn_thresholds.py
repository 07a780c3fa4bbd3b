"""Sigma-delta networks from ReLU ANNs: calibration, the output error bound, and the automatic delta thresholds.

The compiler (compiler/passes/quantize_sdnn.py) turns an IR network of :class:`~loihic.compiler.ir.SigmaDelta`
layers into Lava integers, given each layer's threshold and, from calibration, its largest |pre-activation|.
This module holds what needs data or the emulator (the compiler imports neither):

- :func:`ann_forward`: the float ReLU ANN the IR means (pre-activations per synaptic layer);
- :func:`calibrate`: ``act_max`` of every layer from calibration inputs;
- :func:`with_thresholds`: set the delta thresholds explicitly (input and per layer);
- :func:`error_bound`: the largest |Sigma read-out - float ANN output| the quantization allows, per sample
  and output, once the stream has settled (derivation in its docstring);
- :func:`run_sdnn`: a compiled file on the emulator, inputs held for T steps (stream timing), with its
  messages counted;
- :func:`choose_thresholds`: per-layer thresholds ``fraction * (layer's calibration activation std)``, the
  largest fraction whose read-out stays within an accuracy budget of the zero-threshold network on the
  calibration data, with the messages per inference of every fraction tried.

Timing (stream, Lava's: source -> Delta -> Dense 0 steps, Dense/Conv -> neuron 1 step): with K synaptic
layers and the input held from step 1, layer k's values settle at step k + 1 and nothing moves after, so the
read-out is settled from the (0-based) sink index :func:`settle_index` ``= K`` on.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from loihic.compiler import ir
from loihic.compiler.config import CompileConfig
from loihic.compiler.driver import compile_source
from loihic.compiler.encoding import input_scale
from loihic.compiler.errors import InputError
from loihic.compiler.netx.read import read_netx
from loihic.compiler.passes.fold_batchnorm import fold_batchnorm
from loihic.compiler.passes.lower_avgpool import lower_avgpool
from loihic.compiler.passes.quantize_sdnn import DELTA_META, MESSAGE_SHIFT
from loihic.deploy.emulator.network import Emulator

DEFAULT_FRACTIONS = (1.0, 0.5, 0.25, 0.1, 0.05, 0.02, 0.01, 0.0)  # of each layer's activation std, tried in order


def settle_index(net: ir.Network) -> int:
    """The first sink index (0-based step) at which the read-out of a held input has settled: K, the number of
    synaptic layers (module docstring)."""
    return len(net.synaptic())


def _lowered(net: ir.Network) -> ir.Network:
    cfg = CompileConfig()
    return lower_avgpool(fold_batchnorm(net, cfg), cfg)


def _apply(layer: ir.Dense | ir.Conv, w: np.ndarray, h: torch.Tensor) -> torch.Tensor:
    wt = torch.from_numpy(np.array(w, np.float64))
    if isinstance(layer, ir.Dense):
        return h.reshape(len(h), -1) @ wt.T
    return F.conv2d(h, wt, None, layer.stride, layer.padding, layer.dilation, layer.groups)


def _bias(layer: ir.Dense | ir.Conv, b: np.ndarray | None, z: torch.Tensor) -> torch.Tensor:
    if b is None:
        return z
    bt = torch.from_numpy(np.array(b, np.float64))
    return z + (bt if isinstance(layer, ir.Dense) else bt[:, None, None])


@torch.no_grad()
def ann_forward(net: ir.Network, x: np.ndarray) -> list[np.ndarray]:
    """Pre-activations ``z`` of every synaptic layer of the float ReLU ANN (``x``: (N, *input_shape) in [0, 1])."""
    net = _lowered(net)
    h = torch.as_tensor(np.asarray(x, np.float64))
    out = []
    for layer in net.layers:
        if isinstance(layer, ir.Flatten):
            h = h.reshape(len(h), -1)
        elif isinstance(layer, ir.SYNAPTIC):
            z = _bias(layer, layer.bias, _apply(layer, layer.weight, h))
            out.append(z.numpy())
            h = torch.relu(z)
    return out


def calibrate(net: ir.Network, x: np.ndarray) -> ir.Network:
    """``net`` with every sigma-delta layer's ``act_max`` (largest |z|) measured on the calibration inputs ``x``."""
    zs = iter(ann_forward(net, x))
    low = _lowered(net)
    maxes = {lay.name: float(np.abs(next(zs)).max()) for lay in low.synaptic()}
    return _map_neurons(net, lambda lay: dataclasses.replace(lay.neuron, act_max=maxes.get(lay.name)))


def _map_neurons(net: ir.Network, fn) -> ir.Network:  # noqa: ANN001
    layers = tuple(
        dataclasses.replace(lay, neuron=fn(lay)) if isinstance(lay, ir.SYNAPTIC) else lay for lay in net.layers
    )
    return net.replace(layers=layers)


def with_thresholds(net: ir.Network, layers: Mapping[str, float], input_delta: float | None = None) -> ir.Network:
    """``net`` with the delta thresholds set explicitly (activation units per layer; the input's in input units)."""
    unknown = set(layers) - {lay.name for lay in net.synaptic()}
    if unknown:
        raise InputError(f"thresholds for unknown layers: {sorted(unknown)}")
    net = _map_neurons(
        net, lambda lay: dataclasses.replace(lay.neuron, threshold=layers.get(lay.name, lay.neuron.threshold))
    )
    if input_delta is not None:
        net = net.replace(input=dataclasses.replace(net.input, delta=float(input_delta)))
    return net


@torch.no_grad()
def quantized_ann(compiled: ir.Network, x: np.ndarray) -> np.ndarray:
    """The output of the quantized ANN the integers stand for: input ``round(S_0 x) / S_0``, weights
    ``W_q / (64 S_l / S_{l-1})``, biases ``b_q / S_l``, in float64; what the Sigma read-out
    (``/ (4096 S_L)``) gives with every threshold 0 and no message floor."""
    low = _lowered(compiled)
    s0 = float(input_scale(compiled.encoding))
    h = torch.round(torch.from_numpy(np.array(x, np.float64)) * s0) / s0
    z = h
    for layer in low.layers:
        if isinstance(layer, ir.Flatten):
            h = h.reshape(len(h), -1)
        elif isinstance(layer, ir.SYNAPTIC):
            q = layer.quant
            b = None if q.bias is None else q.bias / q.act_scale
            z = _bias(layer, b, _apply(layer, q.weight / q.weight_scale, h))
            h = torch.relu(z)
    return z.numpy()


@torch.no_grad()
def error_bound(compiled: ir.Network, x: np.ndarray, reference: str = "quantized") -> np.ndarray:
    """Per sample and output, the largest |read-out / (4096 S_L) - reference| once the stream has settled: the
    reference is the quantized ANN (:func:`quantized_ann`; the bound is then what the thresholds and the
    message floor cost) or the float ANN (``reference="float"``: weight, bias and input rounding as well).

    ``m_l`` is the activation the next layer has seen (its messages added up, / (64 S_l)), ``a_l`` the
    reference's, and ``E_l`` a per-neuron bound on ``|m_l - a_l|``.  The Delta sends ``s = d``, a multiple of
    4096, so it loses nothing to the floor: ``E_0 = vThMant_0 / S_0`` (the residue it may hold back), plus
    ``|round(S_0 x) / S_0 - x|`` against the float ANN.  Layer l, with ``W_q / (64 S_l / S_{l-1}) = W + dW`` and
    ``b_q / S_l = b + db``::

        quantized:  |z_stream - z_hat| <= |W + dW| @ E_{l-1}                                    =: eps_l
        float:      |z_stream - z|     <= |W| @ E_{l-1} + |dW| @ (a_{l-1} + E_{l-1}) + |db|     =: eps_l
        E_l = eps_l + vThMant_l / S_l + n_l / (64 S_l)                  (ReLU is 1-Lipschitz)

    with ``n_l = l + 1`` the most messages a neuron of layer l (1-based) sends: its y changes only at steps
    1 .. l + 1 (module docstring), and each message loses less than 1 / (64 S_l) to the floor, never carried
    over.  The read-out (a Sigma: no threshold, no floor) has bound ``eps_L``.
    """
    if reference not in ("quantized", "float"):
        raise InputError(f"reference {reference!r}: expected 'quantized' or 'float'")
    low = _lowered(compiled)
    s0 = float(input_scale(compiled.encoding))
    xt = torch.from_numpy(np.array(x, np.float64))
    a = xt
    e = torch.full_like(xt, compiled.meta[DELTA_META]["v_th_mant"] / s0)
    if reference == "float":
        e = e + (torch.round(xt * s0) / s0 - xt).abs()
    syn = low.synaptic()
    k = 0
    for layer in low.layers:
        if isinstance(layer, ir.Flatten):
            a, e = a.reshape(len(a), -1), e.reshape(len(e), -1)
            continue
        if not isinstance(layer, ir.SYNAPTIC):
            continue
        k += 1
        q = layer.quant
        w_hat = q.weight / q.weight_scale
        if reference == "quantized":
            eps = _apply(layer, np.abs(w_hat), e)
        else:
            dw = np.abs(w_hat - np.asarray(layer.weight, np.float64))
            eps = _apply(layer, np.abs(layer.weight), e) + _apply(layer, dw, a + e)
            if layer.bias is not None:
                eps = _bias(layer, np.abs(q.bias / q.act_scale - layer.bias), eps)
            a = torch.relu(_bias(layer, layer.bias, _apply(layer, layer.weight, a)))
        if k == len(syn):
            return eps.numpy()
        e = eps + q.v_th_mant / q.act_scale + (k + 1) / (MESSAGE_SHIFT * q.act_scale)
    raise AssertionError("unreachable: a network has a synaptic layer")


@dataclass(frozen=True)
class SdnnRun:
    output: np.ndarray  # (N, *out_shape, T) the Sigma read-out in activation units (sigma / (4096 S_L))
    raw: np.ndarray  # (N, *out_shape, T) int32 as Lava's sink records it
    messages: np.ndarray  # (N,) nonzero messages sent by the Delta and every SigmaDelta over the T steps
    messages_per_layer: list[float]  # mean per sample, Delta first
    synapse_wraps: int  # synaptic sums that wrapped (dense int32, conv 24 bits): 0 when the scales hold


def hold(net: ir.Network, x: np.ndarray, steps: int) -> np.ndarray:
    """Images ``x`` in [0, 1] as the Delta's integers ``round(S_0 x)``, held for ``steps`` steps."""
    levels = np.rint(np.asarray(x, np.float64) * input_scale(net.encoding)).astype(np.int64)
    return np.repeat(levels[..., None], steps, axis=-1)


def run_sdnn(path: str | Path, compiled: ir.Network, x: np.ndarray, steps: int, device: str = "cpu") -> SdnnRun:
    """The compiled file ``path`` (of ``compiled``) on the emulator, ``x`` held for ``steps`` steps."""
    model = read_netx(path, sigma_delta=True)
    res = Emulator(model, device).run(hold(compiled, x, steps), record_layers=True, check_overflow=True)
    per_layer = [(r != 0).reshape(len(r), -1).sum(1) for r in res.layer_spikes[:-1]]
    last = compiled.synaptic()[-1].quant
    out = res.output_spikes.astype(np.float64) / (4096.0 * last.act_scale)
    wraps = sum(o.synapse_wraps for o in res.overflow)
    return SdnnRun(out, res.output_spikes, np.sum(per_layer, axis=0), [float(m.mean()) for m in per_layer], wraps)


@dataclass(frozen=True)
class ThresholdTrial:
    fraction: float  # thresholds = fraction * activation std, per layer (input: of the pixels)
    thresholds: dict[str, float]  # the input's ("input") and every SigmaDelta layer's
    messages: float  # mean messages per inference over the calibration samples
    error: float  # max |read-out - zero-threshold read-out| / max |zero-threshold read-out|


@dataclass(frozen=True)
class ThresholdChoice:
    network: ir.Network  # the float IR with the chosen thresholds (compile it with compile_source)
    chosen: ThresholdTrial
    trials: list[ThresholdTrial]  # every fraction tried, in order
    budget: float


def choose_thresholds(
    net: ir.Network,
    x_cal: np.ndarray,
    budget: float = 0.01,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    steps: int | None = None,
) -> ThresholdChoice:
    """Pick the largest ``fraction`` (thresholds ``fraction * std`` of each layer's calibration activations,
    the input's of its pixels) whose settled read-out on ``x_cal`` differs from the zero-threshold network's
    by at most ``budget * max |read-out|``.  The network is calibrated (``act_max``) first.  Every trial is
    compiled and run on the emulator; ``fraction = 0`` always meets the budget (it is the reference)."""
    net = calibrate(net, x_cal)
    zs = ann_forward(net, x_cal)
    names = [lay.name for lay in _lowered(net).synaptic()]
    stds = {n: float(np.maximum(z, 0).std()) for n, z in zip(names, zs, strict=True)}
    in_std = float(np.asarray(x_cal, np.float64).std())
    steps = steps or settle_index(net) + 2
    trials: list[ThresholdTrial] = []
    with tempfile.TemporaryDirectory(prefix="loihic-sdnn-") as tmp:

        def trial(f: float) -> tuple[ir.Network, np.ndarray, float]:
            """(the candidate IR, its settled read-out, its mean messages per inference)"""
            cand = with_thresholds(net, {n: f * s for n, s in stds.items()}, f * in_std)
            res = compile_source(cand, Path(tmp) / f"f{len(trials)}.net", force=True)
            run = run_sdnn(res.path, res.network, x_cal, steps)
            return cand, run.output[..., -1], float(run.messages.mean())

        _, ref, _ = trial(0.0)
        scale = max(float(np.abs(ref).max()), 1e-12)
        chosen = None
        for f in sorted(set(fractions) | {0.0}, reverse=True):
            cand, out, msgs = trial(f)
            th = {"input": f * in_std, **{n: f * s for n, s in stds.items()}}
            t = ThresholdTrial(f, th, msgs, float(np.abs(out - ref).max()) / scale)
            trials.append(t)
            if chosen is None and t.error <= budget:
                chosen = (t, cand)
    assert chosen is not None  # fraction 0 is the reference itself
    return ThresholdChoice(chosen[1], chosen[0], trials, budget)
