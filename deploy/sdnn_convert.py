"""ANN -> sigma-delta network (SDNN) checkpoint: ``loihic convert MODEL --calib X.npy --neuron sdnn``.

The ANN (a loihic ANN checkpoint, or an imported ``.pt2`` / ``nn.Module``) is lowered as the compiler would
(dropout dropped, BatchNorm folded, average pooling a layer of its own or folded into the next synapse:
``pooling``), so the checkpoint stores exactly the ReLU network the sigma-delta file computes.  Every hidden
ReLU layer becomes a Lava ``SigmaDelta``, the last layer a ``Sigma`` read-out (its running sum), and images enter
a ``Delta`` input as graded 8-bit values (compiler/ir.py ``SigmaDelta``, compiler/passes/quantize_sdnn.py).

**Read-out bias.**  Lava's Sigma takes no bias.  A last layer with a bias gets it from a *bias unit*: one more
neuron in the layer before (a dense row, or a conv channel, of zero weights and bias ``c``,
:func:`bias_unit_value`), so ``relu(c) = c`` and the read-out's column for it is
``b / c``; the float network computes the same outputs exactly.  The unit sends its value once, while the
pipeline fills.

**Activation ranges and thresholds.**  ``act_max`` of every layer is the largest |pre-activation| on the
calibration data (deploy/sdnn_thresholds.py ``calibrate``).  The delta thresholds are either given (the input
Delta's in pixel units, then each hidden layer's in its activation units) or chosen for an accuracy ``budget``
(:func:`~loihic.deploy.sdnn_thresholds.choose_thresholds`): thresholds ``f * std`` of each layer's calibration
activations, the largest ``f`` whose settled read-out on the calibration data differs from the
zero-threshold network's by at most ``budget * max |read-out|``.  ``budget = 0.01``: at most 1% of the
read-out's range, so predictions change only where two classes were within that margin.

**Average pooling** (``pooling``): ``"fold"`` (as for LIF networks) folds it into the next synaptic
layer, which widens that layer's kernel (a 2x2 pool before a k x k conv gives a (2k) x (2k) kernel at stride 2):
no extra layer, but every message of the layer before the pool reaches k^2 times four positions' worth of
weights, about four times the ANN's MACs for that layer.  ``"layer"`` makes each pool a layer of its own: a
depthwise conv (groups = channels) of weights ``1 / (kh kw)`` and no bias, whose neurons are SigmaDelta with ReLU
(the identity here: its inputs are ReLU outputs, >= 0).  It computes the same ANN exactly and costs one more
synaptic layer (one more step before the read-out settles) and a delta threshold of its own, but a message of
the pooled layer then reaches only ``k^2 C_out`` weights (:func:`pools_as_layers`).  ``"layer"`` is the default: on
the MNIST CNN of bench/user_pytorch_mnist.py it costs 0.63x the ANN's MACs per image against fold's 1.82x, at
98.73% against 98.57% (bench/sdnn_mnist_cnn.py), for two more steps.

**Timing.**  K synaptic layers settle at sink index K (deploy/sdnn_thresholds.py ``settle_index``), so the
default sample length is T = K + 1 steps (the read-out is read at the last step).

The checkpoint is an SNN checkpoint (kind ``snn``) whose ``snn`` block says ``"neuron": "sdnn"`` and records
``thresholds`` (one per synaptic layer, None for the read-out), ``input_delta``, ``act_max``, ``budget`` (None
when the thresholds were given) and the trials of the automatic choice (training/checkpoint.py validates it).
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from loihic.compiler import ir
from loihic.compiler.config import CompileConfig
from loihic.compiler.driver import compile_source
from loihic.compiler.errors import CheckpointError, InputError, LoihicWarning, UnsupportedLayerError
from loihic.compiler.fileio import file_sha256
from loihic.compiler.load.checkpoint import SDNN, ann_network, network_data, sdnn_network
from loihic.compiler.passes.drop_dropout import drop_dropout
from loihic.compiler.passes.fold_batchnorm import fold_batchnorm
from loihic.compiler.passes.lower_avgpool import lower_avgpool
from loihic.deploy import sdnn_thresholds as st
from loihic.training.checkpoint import CREATED_BY, load_checkpoint, validate_checkpoint
from loihic.training.convert import calibration_subset
from loihic.training.models import check_convertible, state_dict_from_network, with_module_names

SDNN_KEYS = ("thresholds", "input_delta", "act_max", "budget", "bias_unit", "timesteps", "threshold_trials")
SDNN_KEYS += ("calibration_check", "pooling")
DEFAULT_BUDGET = 0.01  # of the read-out's range on the calibration data (module docstring)


POOLING = ("fold", "layer")  # average pooling folded into the next layer, or a depthwise-conv layer of its own


def pools_as_layers(net: ir.Network) -> ir.Network:
    """Every average pooling of ``net`` as a depthwise conv layer (module docstring, ``pooling="layer"``): weights
    ``1 / (kh kw)`` per channel, groups = channels, stride the pool's, no bias, a ReLU neuron."""
    shapes = ir.infer_shapes(net)
    layers: list[ir.Layer] = []
    for i, lay in enumerate(net.layers):
        if not isinstance(lay, ir.AvgPool):
            layers.append(lay)
            continue
        c = int((net.input.shape if i == 0 else shapes[i - 1])[0])
        kh, kw = lay.kernel
        w = np.full((c, 1, kh, kw), 1.0 / (kh * kw))
        layers.append(ir.Conv(lay.name, w, None, ir.RELU, stride=tuple(lay.stride), groups=c))
    return net.replace(layers=layers)


def lowered_ann(net: ir.Network, pooling: str = "fold") -> ir.Network:
    """The ANN as the compiler lowers it: dropout dropped, BatchNorm folded, average pooling folded into the next
    layer (``pooling="fold"``) or made a depthwise-conv layer (``"layer"``); ANN neurons."""
    if pooling not in POOLING:
        raise InputError(f"pooling {pooling!r}: expected one of {', '.join(POOLING)}")
    cfg = CompileConfig()
    net = fold_batchnorm(drop_dropout(net, cfg), cfg)
    if pooling == "layer":
        net = pools_as_layers(net)
    return with_module_names(lower_avgpool(net, cfg))


def with_bias_unit(net: ir.Network, c: float) -> ir.Network:
    """``net`` (lowered ANN) with the read-out's bias moved onto a bias unit of constant activation ``c > 0`` in
    the layer before (module docstring); unchanged when the read-out has no (nonzero) bias."""
    layers = list(net.layers)
    syn = [k for k, lay in enumerate(layers) if isinstance(lay, ir.SYNAPTIC)]
    last = layers[syn[-1]]
    if last.bias is None or not np.any(last.bias):
        return net.replace(layers=[*layers[: syn[-1]], dataclasses.replace(last, bias=None), *layers[syn[-1] + 1 :]])
    why = "a Sigma read-out takes no bias on Lava, and loihic carries it on a bias unit of the layer before"
    if len(syn) < 2 or not isinstance(last, ir.Dense):
        raise UnsupportedLayerError(f"layer '{last.name}': {why}, which needs a dense read-out after another layer")
    k_prev = syn[-2]
    prev = layers[k_prev]
    if isinstance(prev, ir.Conv) and prev.groups != 1:
        raise UnsupportedLayerError(f"layer '{last.name}': {why}; the layer before is a grouped conv")
    if not (math.isfinite(c) and c > 0):
        raise UnsupportedLayerError(f"layer '{prev.name}': never active on the calibration data; {why}")
    b_prev = np.zeros(prev.weight.shape[0]) if prev.bias is None else np.asarray(prev.bias, np.float64)
    w_prev = np.asarray(prev.weight, np.float64)
    unit = np.zeros((1, *w_prev.shape[1:]))
    layers[k_prev] = dataclasses.replace(prev, weight=np.concatenate([w_prev, unit]), bias=np.append(b_prev, c))
    shapes = ir.layer_shapes(net.input, layers[: k_prev + 1])
    per_unit = int(np.prod(shapes[-1][1:])) if isinstance(prev, ir.Conv) else 1  # positions of the new channel
    w = np.asarray(last.weight, np.float64)
    extra = np.zeros((w.shape[0], per_unit))
    extra[:, 0] = np.asarray(last.bias, np.float64) / c
    layers[syn[-1]] = dataclasses.replace(last, weight=np.concatenate([w, extra], axis=1), bias=None)
    return net.replace(layers=layers)


def bias_unit_value(zs: Sequence[np.ndarray]) -> float:
    """The bias unit's activation ``c``: the largest activation of the layer before the read-out on the
    calibration data, so the unit widens neither that layer's activation range nor its delta threshold's reach
    (a smaller ``c`` lets the layer's activation scale grow, and was measured to wrap the read-out's int32
    synaptic sums while the pipeline fills)."""
    return float(np.maximum(zs[-2], 0).max()) if len(zs) > 1 else 0.0


def calibration_check(sd: ir.Network, x_cal: np.ndarray, steps: int, ann_out: np.ndarray) -> dict[str, Any]:
    """The converted network compiled and run on the emulator over the calibration inputs: how often its settled
    read-out's argmax agrees with the float ANN's, and how often a synaptic sum wrapped (0 when the activation
    scales hold; anything else is a :class:`LoihicWarning`, as it costs accuracy silently on Lava too)."""
    with tempfile.TemporaryDirectory(prefix="loihic-sdnn-") as tmp:
        res = compile_source(sd, Path(tmp) / "check.net", force=True)
        run = st.run_sdnn(res.path, res.network, x_cal, steps)
    agree = float((run.output[..., -1].argmax(1) == ann_out.argmax(1)).mean())
    if run.synapse_wraps:
        warnings.warn(
            f"the sigma-delta network's synaptic sums wrapped {run.synapse_wraps} times on the calibration data "
            f"(its argmax agrees with the float ANN on {100 * agree:.1f}% of them); lower --thresholds or report it",
            LoihicWarning,
            stacklevel=3,
        )
    return {"samples": len(x_cal), "argmax_agreement": agree, "synapse_wraps": int(run.synapse_wraps)}


def parse_thresholds(text: str | Sequence[float] | None, n_synaptic: int) -> list[float] | None:
    """``"a,b,c"`` (or a sequence): the input Delta's threshold, then each hidden layer's: K values for K synaptic
    layers (the read-out has none)."""
    if text is None:
        return None
    try:
        values = [float(v) for v in (text.split(",") if isinstance(text, str) else text)]
    except (TypeError, ValueError):
        raise InputError(f"--thresholds {text!r}: expected comma-separated numbers") from None
    if len(values) != n_synaptic:
        raise InputError(
            f"--thresholds: {len(values)} values given, this network needs {n_synaptic}: the input Delta's, then "
            f"one per hidden layer ({n_synaptic - 1}); the read-out has none"
        )
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise InputError(f"--thresholds {text!r}: every threshold must be finite and >= 0")
    return values


def convert_sdnn(
    ann_ckpt: Mapping[str, Any] | Path | str,
    x_train: np.ndarray,
    budget: float = DEFAULT_BUDGET,
    thresholds: str | Sequence[float] | None = None,
    timesteps: int | None = None,
    seed: int = 0,
    calib_samples: int = 512,
    source_sha256: str | None = None,
    pooling: str = "layer",
) -> dict[str, Any]:
    """An ANN checkpoint (dict or file) -> SDNN checkpoint (module docstring).  ``thresholds`` (the input's, then
    each hidden layer's) overrides the automatic choice for ``budget``; ``timesteps`` None: K + 1; ``pooling``:
    average pooling folded into the next layer, or a layer of its own."""
    if isinstance(ann_ckpt, (str, Path)):
        source_sha256 = file_sha256(ann_ckpt) if source_sha256 is None else source_sha256
        ann, where = load_checkpoint(ann_ckpt), str(ann_ckpt)
    else:
        where = f"checkpoint ({ann_ckpt.get('model')} on {ann_ckpt.get('dataset')})"
        ann = validate_checkpoint(dict(ann_ckpt), where)
    if ann["kind"] != "ann":
        raise CheckpointError(f"{where}: is already an SNN checkpoint; convert expects an ANN checkpoint")
    if not (isinstance(budget, (int, float)) and math.isfinite(budget) and 0 <= budget <= 1):
        raise InputError(f"--sdnn-budget {budget}: expected a fraction of the read-out's range in [0, 1]")
    if calib_samples < 1:
        raise InputError(f"calib_samples must be >= 1, got {calib_samples}")
    net = ann_network(ann, weights=True, source=where)
    check_convertible(net)
    x_cal = calibration_subset(x_train, ann, calib_samples, seed)
    low = lowered_ann(net, pooling)
    n_syn = len(low.synaptic())
    given = parse_thresholds(thresholds, n_syn)
    steps = n_syn + 1 if timesteps is None else int(timesteps)
    if steps < n_syn + 1:
        raise InputError(
            f"--timesteps {steps}: a sigma-delta network of {n_syn} synaptic layers settles at step {n_syn + 1} "
            f"(sink index {n_syn}); pass T >= {n_syn + 1}"
        )
    zs = st.ann_forward(low, x_cal)
    out_bias = low.synaptic()[-1].bias
    c = bias_unit_value(zs)
    bias_unit = c if out_bias is not None and bool(np.any(out_bias)) else None
    low = with_bias_unit(low, c)
    sd = sdnn_network(low, [0.0] * n_syn, 0.0, None, steps)
    trials: list[dict[str, Any]] = []
    if given is not None:
        sd = st.calibrate(sd, x_cal)
        names = [lay.name for lay in sd.synaptic()[:-1]]
        sd = st.with_thresholds(sd, dict(zip(names, given[1:], strict=True)), given[0])
        chosen_budget = None
    else:
        choice = st.choose_thresholds(sd, x_cal, budget)
        sd, chosen_budget = choice.network, float(budget)
        trials = [
            {"fraction": t.fraction, "messages": t.messages, "error": t.error, "chosen": t is choice.chosen}
            for t in choice.trials
        ]
    check = calibration_check(sd, x_cal, steps, zs[-1])
    syn = sd.synaptic()
    snn_ckpt = {key: value for key, value in ann.items() if key != "snn"}
    snn_ckpt.update(
        kind="snn",
        layers=network_data(low.layers),
        state_dict=state_dict_from_network(low),
        num_classes=int(ir.infer_shapes(low)[-1][0]),
        created_by=CREATED_BY,
        metrics={f"ann_{k}": v for k, v in ann["metrics"].items()},
        snn={
            "neuron": SDNN,
            "thresholds": [float(lay.neuron.threshold) for lay in syn[:-1]] + [None],
            "input_delta": float(sd.input.delta),
            "act_max": [float(lay.neuron.act_max) for lay in syn],
            "budget": chosen_budget,
            "threshold_trials": trials,
            "bias_unit": bias_unit,
            "calibration_check": check,
            "timesteps": steps,
            "reset": "hard",
            "leak": 1.0,
            "encoding": "direct",
            "seed": int(seed),
            "calib_samples": len(x_cal),
            "pooling": pooling,
            "source_sha256": source_sha256,
            "method": "sdnn",
        },
    )
    return validate_checkpoint(snn_ckpt, f"converted {where}", "snn")
