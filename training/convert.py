"""ANN -> SNN conversion by threshold balancing (Datta et al. sec. III, Fig. 3; Diehl et al. 2015).

Weights are copied unchanged.  For each spiking (hidden) synaptic layer l in order, the encoded calibration
data (T steps) is fed through the already balanced spiking layers 1..l-1, the pre-activation
``A = W x_t + b`` of layer l (after its batchnorm affine, if any) is recorded at every step, and the layer's
threshold is set from all recorded values:

- ``max``: ``v_l = max(A)`` (baseline conversion);
- ``p<q>``, e.g. ``p99.9``: the q-th percentile of A (numpy's default linear interpolation), q in (0, 100].
  Note: A is taken over all neurons, samples and steps, zeros and negatives included (snn_toolbox's
  percentile norm uses the non-zero ReLU activations instead);
- ``scaled:<k>``: ``v_l = k * max(A)`` (scaled conversion; Datta et al. use k in [0.2, 0.4] for VGG), k > 0.

Biases and BatchNorm shifts (Rueckauer et al. 2017, "Conversion of continuous-valued deep networks to
efficient event-driven networks", sec. 2.2: ``b_l -> b_l / lambda_{l-1}``).  Layer l receives spikes whose
rates approximate ``a_{l-1} / c_{l-1}``, the ANN activation divided by the product of the thresholds before
it (``c_0 = 1``: the input rates are the pixel values).  Its weights act on rates, so ``W a / c`` comes out
scaled; its bias must be scaled the same way or it outweighs the synaptic input: ``b_l <- b_l / c_{l-1}``,
and for a BatchNorm ``g (I - mean) + beta`` after it ``mean, beta <- mean / c_{l-1}, beta / c_{l-1}``.  Layer
l's current is then ``A_l / c_{l-1}`` and its threshold, balanced on that current, gives ``c_l = c_{l-1}
theta_l``.  Networks without bias or BatchNorm (Datta et al. sec. V.C) are unchanged; the applied factors
are recorded as ``snn.bias_scale``.

The same spike trains are used for every layer (:func:`~loihic.training.snn.encode_chunks` with ``seed``),
so running the layers one after the other is exactly Algorithm 1.  The readout (last synaptic layer) has
no threshold (eqs. 4-5).

While the first layer's threshold is in place, the mean pre-firing membrane potential of each of its
neurons (v after integration, eq. 2, before the reset; mean over samples and steps, and over positions for
a conv layer, i.e. one value per output channel) is recorded as ``first_layer_mean_potential``: the mu_V of
the L4-norm first-layer adjustment (Allred & Roy).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from loihic.compiler import ir
from loihic.compiler.encoding import check_encoding
from loihic.compiler.errors import CheckpointError, InputError, LoihicError
from loihic.compiler.fileio import file_sha256
from loihic.compiler.ir import RESETS
from loihic.compiler.load.checkpoint import ann_network
from loihic.training.checkpoint import CREATED_BY, load_checkpoint, validate_checkpoint
from loihic.training.data import subset
from loihic.training.models import check_convertible
from loihic.training.snn import SNNModel, encode_chunks, fire, integrate

MAX_PERCENTILE_KEEP = 50_000_000  # values kept (top-k) to compute a percentile exactly: 200 MB of float32


def parse_norm(norm: str) -> tuple[str, float]:
    """``"max"`` -> ("max", 1.0); ``"p99.9"`` -> ("percentile", 99.9); ``"scaled:0.3"`` -> ("scaled", 0.3)."""
    if norm == "max":
        return "max", 1.0
    try:
        if norm.startswith("p"):
            q = float(norm[1:])
            if math.isfinite(q) and 0.0 < q <= 100.0:
                return "percentile", q
        elif norm.startswith("scaled:"):
            k = float(norm[len("scaled:") :])
            if math.isfinite(k) and k > 0.0:
                return "scaled", k
    except ValueError:
        pass
    raise InputError(
        f"norm '{norm}' is not 'max', 'p<percentile>' with percentile in (0, 100] "
        f"(e.g. 'p99.9') or 'scaled:<k>' with k > 0 (e.g. 'scaled:0.3')"
    )


class _TopValues:
    """Exact q-th percentile (numpy 'linear') of a stream of ``total`` values, keeping only the top ones."""

    def __init__(self, q: float, total: int) -> None:
        pos = (total - 1) * q / 100.0
        self.lo, self.frac = math.floor(pos), pos - math.floor(pos)
        self.k = total - self.lo  # values at ascending ranks lo .. total-1
        if self.k > MAX_PERCENTILE_KEEP:
            raise InputError(
                f"percentile {q} of {total} calibration values needs {self.k} kept values (more "
                f"than {MAX_PERCENTILE_KEEP}): use a higher percentile or fewer calib_samples"
            )
        self.top = torch.empty(0)

    def update(self, a: torch.Tensor) -> None:
        flat = a.reshape(-1)
        if flat.numel() > self.k:
            flat = flat.topk(self.k).values
        merged = torch.cat([self.top, flat])
        self.top = merged.topk(self.k).values if merged.numel() > self.k else merged

    def value(self) -> float:
        desc = torch.sort(self.top, descending=True).values  # desc[j] is ascending rank total-1-j
        lo = float(desc[self.k - 1])
        hi = float(desc[self.k - 2]) if self.frac > 0 else lo
        return lo + self.frac * (hi - lo)


@torch.no_grad()
def _scale_bias(stage: Any, factor: float) -> None:
    """Scale a stage's bias and its BatchNorm's mean and beta by ``factor`` (module docstring), in place;
    a stage without either is left bit for bit as it was."""
    if getattr(stage.synapse, "bias", None) is not None:
        stage.synapse.bias.mul_(factor)
    if stage.norm is not None:
        stage.norm.running_mean.mul_(factor)
        if stage.norm.bias is not None:
            stage.norm.bias.mul_(factor)


def _layer_statistics(
    model: SNNModel,
    x: np.ndarray,
    layer: int,
    n_neurons: int,
    timesteps: int,
    encoding: str,
    seed: int,
    method: str,
    q: float,
) -> tuple[float, float]:
    """``(max A, percentile of A or nan)`` over all calibration samples and steps for synaptic ``layer``."""
    top = _TopValues(q, len(x) * timesteps * n_neurons) if method == "percentile" else None
    a_max = -math.inf
    for _, spikes in encode_chunks(x, timesteps, encoding, seed):
        for current in model.currents(spikes, layer):
            a_max = max(a_max, float(current.max()))
            if top is not None:
                top.update(current)
    return a_max, (top.value() if top is not None else math.nan)


def _mean_potential(model: SNNModel, x: np.ndarray, timesteps: int, encoding: str, seed: int) -> list[float]:
    """Per neuron (conv: per channel) mean of the first layer's v after integration, before reset."""
    total, count = None, 0
    for _, spikes in encode_chunks(x, timesteps, encoding, seed):
        v: torch.Tensor | float = 0.0
        for current in model.currents(spikes, 0):
            v_pre = integrate(v, current, model.leak)
            _, v = fire(v_pre, model.thresholds[0], model.reset)
            dims = [0, *range(2, v_pre.ndim)]  # batch, and positions for conv
            part = v_pre.to(torch.float64).sum(dim=dims)
            total = part if total is None else total + part
            count += v_pre.numel() // v_pre.shape[1]
    return [float(m) for m in (total / count)]


def calibration_subset(x_train: np.ndarray, ann: Mapping[str, Any], calib_samples: int, seed: int) -> np.ndarray:
    """The seeded random subset of ``calib_samples`` images of ``x_train`` (float32) that calibrates a conversion;
    ``x_train`` must have the ANN checkpoint's input shape."""
    x_train = np.asarray(x_train, dtype=np.float32)
    if tuple(x_train.shape[1:]) != tuple(ann["input_shape"]) or len(x_train) == 0:
        raise InputError(
            f"calibration data has shape {x_train.shape}, expected (N > 0, {', '.join(map(str, ann['input_shape']))})"
        )
    return subset(x_train, None, calib_samples, seed)[0]


def convert(
    ann_ckpt: Mapping[str, Any] | Path | str,
    x_train: np.ndarray,
    timesteps: int,
    norm: str = "max",
    reset: str = "hard",
    leak: float = 1.0,
    encoding: str = "poisson",
    seed: int = 0,
    calib_samples: int = 512,
    progress: bool = True,
    source_sha256: str | None = None,
) -> dict[str, Any]:
    """Threshold-balance an ANN checkpoint into an SNN checkpoint (module docstring; Datta et al. Fig. 3).

    ``ann_ckpt`` is a checkpoint dict or a file path (then loaded, and ``source_sha256`` taken from the
    file).  ``x_train`` (N, *input_shape) in [0, 1]; a seeded random subset of ``calib_samples`` of it is
    encoded with ``encoding`` over ``timesteps`` steps.  ``leak`` is lambda of eq. 2 (1.0: no leak).
    """
    if isinstance(ann_ckpt, (str, Path)):
        source_sha256 = file_sha256(ann_ckpt) if source_sha256 is None else source_sha256
        ann = load_checkpoint(ann_ckpt)
        where = str(ann_ckpt)
    else:
        where = f"checkpoint ({ann_ckpt.get('model')} on {ann_ckpt.get('dataset')})"
        ann = validate_checkpoint(dict(ann_ckpt), where)
    if ann["kind"] != "ann":
        raise CheckpointError(f"{where}: is already an SNN checkpoint; convert expects an ANN checkpoint")
    if timesteps < 1:
        raise InputError(f"timesteps must be >= 1, got {timesteps}")
    if calib_samples < 1:
        raise InputError(f"calib_samples must be >= 1, got {calib_samples}")
    if reset not in RESETS:
        raise InputError(f"reset '{reset}' is not one of {', '.join(RESETS)}")
    if not (math.isfinite(leak) and 0.0 <= leak <= 1.0):
        raise InputError(f"leak {leak} is outside [0, 1]")
    check_encoding(encoding)
    method, param = parse_norm(norm)
    net = ann_network(ann, weights=False, source=where)
    check_convertible(net)
    x_cal = calibration_subset(x_train, ann, calib_samples, seed)

    shapes = ir.infer_shapes(net)
    synaptic = [k for k, layer in enumerate(net.layers) if isinstance(layer, ir.SYNAPTIC)]
    thresholds: list[float | None] = [None] * len(synaptic)
    model = SNNModel(net, ann["state_dict"], thresholds, leak, reset, encoding)
    maxima, mean_potential = [], []
    cumulative, bias_scale = 1.0, [1.0]
    bar = tqdm(
        range(len(synaptic) - 1), desc="threshold balancing", unit="layer", file=sys.stderr, disable=not progress
    )
    for layer in bar:
        n_neurons = math.prod(shapes[synaptic[layer]])
        a_max, a_pct = _layer_statistics(model, x_cal, layer, n_neurons, timesteps, encoding, seed, method, param)
        th = a_pct if method == "percentile" else param * a_max
        if not (math.isfinite(th) and th > 0):
            raise LoihicError(
                f"layer '{net.layers[synaptic[layer]].name}': threshold "
                f"{th} from norm '{norm}' is not > 0 (max pre-activation {a_max}); the layer "
                f"would never fire on the calibration data"
            )
        model.thresholds[layer] = th
        cumulative *= th
        _scale_bias(model.stages[layer + 1], 1.0 / cumulative)
        bias_scale.append(1.0 / cumulative)
        maxima.append(a_max)
        if layer == 0:
            mean_potential = _mean_potential(model, x_cal, timesteps, encoding, seed)
    bar.close()

    snn_ckpt = {key: value for key, value in ann.items() if key != "snn"}
    snn_ckpt.update(
        kind="snn",
        created_by=CREATED_BY,
        state_dict={k: v.detach().clone() for k, v in model.net.state_dict().items()},
        metrics={f"ann_{k}": v for k, v in ann["metrics"].items()},
        snn={
            "thresholds": list(model.thresholds),
            "timesteps": int(timesteps),
            "reset": reset,
            "leak": float(leak),
            "encoding": encoding,
            "norm": norm,
            "seed": int(seed),
            "calib_samples": len(x_cal),
            "source_sha256": source_sha256,
            "first_layer_mean_potential": mean_potential,
            "max_preactivation": maxima,
            "bias_scale": bias_scale,
        },
    )
    validate_checkpoint(snn_ckpt, f"converted {where}", "snn")
    return snn_ckpt
