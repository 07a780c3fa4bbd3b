"""Noise-based single-step SNN training (Jiang & Zhang, sections 2.1-2.3 and 3), its T=N stages, and what
the deployed network runs.  ``../shared/reference/method-notes.md`` ("Noise-based training") settles the
ambiguities; equation numbers below are the paper's.

Neuron (eqs. 1-3): ``H(t) = lambda V(t-1) + sum_i w_i S_i(t)``, ``S(t) = H(t) > V_th``, ``V(t) = H(t)(1 - S(t))``
(hard reset to V_reset = 0), lambda = :data:`LEAK` = 0.5, V_th = 1 in every synaptic layer, the output
layer included (it spikes; the prediction is the argmax of its spike counts, ties to the lowest index).
This is exactly Lava's LIF with vDecay = round(4096 (1 - lambda)) = 2048 and iDecay = 4096: the checkpoint
says ``leak = 0.5, reset = "hard", output = "spiking"`` and ``compiler/load/checkpoint.py`` maps it 1:1.

Input: the analogue image is fed as the input current at every step ("the input is fed N times", sec. 2.3),
our ``direct`` encoding (``compiler/encoding.py``, graded 8-bit ``round(255 x) / 255``).  Training sees the
same 8-bit values, so the trained and the deployed first layer receive identical inputs.

Stage 1 (:func:`train_noise`, eqs. 5-6): T = 1, ``H = N_noise + sum_i w_i S_i``, ``S = H > 1``; N_noise is
drawn fresh for every iteration, independently per layer, sample and neuron (:class:`NoiseConfig`):

- ``gaussian`` (default): mean 0.5, std 1/6, clipped to ``[mean - 3 std, mean + 3 std]`` = [0, 1] (the
  method notes' reading of "N_noise in the range [0, 1]"); clipping is an option;
- ``uniform``: uniform on the same range ``[mean - 3 std, mean + 3 std]``, so ``std`` sets the range of
  both types (the paper's sec. 3.4 compares the two at the same range).

Backward: the surrogate derivative of eq. 4, ``dS/dH = a / (2 (1 + (pi a (H - V_th) / 2)^2))``, a = 3.  Loss:
MSE between the output spikes and one-hot targets; Adam, lr 1e-4, cosine annealing with warm restarts
every ``t_max`` = 100 epochs (sec. 3, stepped once per epoch as its Fig. 3 describes).

Evaluation at T = N (:func:`noise_outputs`, :func:`evaluate_noise`), ``stage``:

- ``"2"`` (stage 2): the T = 1 network run N times, ``H(t) = N_noise(t) + I(t)`` with fresh noise each step
  and no state; the output is averaged over steps (we sum spike counts: same argmax).
- ``"3"`` (stage 3, eqs. 7-10): ``H(t) = N(lambda V(t-1)) + N'(t) + I(t)``, ``V(t) = H(t)(1 - S(t))``, where
  per layer, sample and step ``A = lambda V(t-1)`` (eq. 8), ``A_hat = (A - mean A) / std A`` over the
  layer's neurons of that sample (eq. 9; population std; A_hat = 0 where std A = 0, e.g. at t = 0), and
  ``N(lambda V(t-1)) = A_hat / (alpha max|A_hat|) + beta`` (eq. 10; = beta where max|A_hat| = 0), which lies
  in [beta - 1/alpha, beta + 1/alpha].  The residual noise is ``N' = k (N_noise - mean)`` with
  ``k = max(0, 1 - 2 / (alpha R))``, R = 6 std the width of N_noise's range: zero-mean, of range
  [-(R/2 - 1/alpha), R/2 - 1/alpha], so ``N + N'`` keeps N_noise's range when beta = mean (the method
  notes' "N' chosen so the sum keeps N_noise's mean and range").  alpha = 2 (R = 1) removes N'
  (sec. 3.3); alpha -> inf gives k = 1 and N = beta, i.e. stage 2.
- ``"lif"``: the plain LIF network of eqs. 1-3 without any noise: what the compiled network runs on Lava.
  Equal, spike for spike, to :func:`loihic.training.snn.evaluate_snn` on the same checkpoint.
- ``"lif+mean"``: eqs. 1-3 plus a constant current ``c`` in every layer, every step (``offset``; default
  :func:`steady_offset` ``= beta (1 - lambda) = 0.25``, see below).  Deployable: :func:`with_offset` folds
  c into the layers' bias.
- ``"lif+noise"``: eqs. 1-3 plus ``c + N'(t)``: the plain LIF with stage 3's residual noise injected.

What the deployed network runs, and why
---------------------------------------
Lava's LIF is deterministic and has no layer-wide operation, so two parts of stage 3 cannot run on it as
such: the normalisation of eqs. 9-10 (mean, std and max over a whole layer, every step) and the random
residual N'.  What it runs exactly is the LIF of eqs. 1-3, the neuron stage 3 claims to approximate ("to
keep the formal consistency with Equation (1)"), optionally with a constant bias current.  So:

0. Wide first layers fed 8-bit graded pixels (Fashion-MNIST ap2-512fc: 784 inputs after the pooling fold)
   leave the 24-bit current too little room for weight resolution; compile them with ``--input-bits 4``
   (compiler/passes/input_bits.py): measured 49.2% -> 87.9% compiled at T = 10, float 88.2%.
1. ``loihic compile noise.pt`` deploys mode ``"lif"`` as is (thresholds 1, vDecay 2048, iDecay 4096, spiking
   output read by spike counts).  The emulator and Lava run the float model of ``training.snn.evaluate_snn``
   up to 8-bit weight quantization, and stay spike-identical to each other.
2. Plain LIF loses the noise's mean: training always added ~0.5 to H, the deployed neuron at t = 0 adds
   nothing (at T = 1 nothing fires: 10% on digits).  The deterministic part of stage 3's noise terms is a
   constant current: :func:`with_offset` folds ``c`` into the bias, which Loihi runs exactly.  ``c = beta``
   matches stage 3 at t = 0 (best at T = 1) but accumulates to ``c / (1 - lambda) = 2 beta`` = the threshold
   for a silent neuron; ``c = beta (1 - lambda)`` matches stage 3's mean beta at the steady state (best at
   T >= 5).  A per-step offset (beta at t = 0, then beta (1 - lambda)) would match both but needs a
   time-varying current: not a bias (it would take an extra input channel).
3. The residual noise N' is NOT injected.  Measured (``bench/noise_digits.py``, digits, ap2-512fc seeds 0
   and 1 and mlp, c = 0.25 and 0.5, 3 noise draws): "lif+noise" minus "lif+mean" at the same c is -8.7
   to +0.3 points at T = 5 and 10, and -0.4 to +2.2 points at T = 1 (where c = 0.5 gives the best deployed
   result: +1.7, +0.3, -0.4).  The noise buys nothing on the deterministic LIF, while delivering it would
   cost: pre-drawn currents as extra graded input channels for every
   first-layer neuron (input bandwidth roughly doubled for ap2-512fc) and, for every deeper layer, relay
   neurons carrying the noise bits through the layers before it (weights > threshold, bit-weighted synapses,
   a binary approximation of a graded current; impossible to route through average pooling into a conv
   layer), plus an input format that ``loihic evaluate``/``verify`` do not have.  It would keep emulator ==
   Lava (same integer inputs), but for no accuracy gain; the gap between stage 3 and the deployed network
   is the accumulated-potential normalisation, not the noise.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from loihic.compiler.encoding import DIRECT_LEVELS, input_scale
from loihic.compiler.errors import InputError
from loihic.training.checkpoint import CREATED_BY, FORMAT, FORMAT_VERSION, validate_checkpoint
from loihic.training.data import dataset_info, load_dataset, subset
from loihic.training.distributed import world
from loihic.training.models import (
    MODELS as ANN_MODELS,
)
from loihic.training.models import (
    SYNAPTIC_TYPES,
    build_model,
    check_convertible,
    make_arch,
    output_shapes,
)
from loihic.training.snn import Stage, encode_chunks, fire, integrate, split_stages

LEAK = 0.5  # lambda of eq. 1; Lava vDecay = round(4096 * (1 - 0.5)) = 2048
THRESHOLD = 1.0  # V_th of eq. 2
ENCODING = "direct"  # the analogue input fed at every step (sec. 2.3)
NOISE_TYPES = ("gaussian", "uniform")
NOISE_MODELS = ("ap2-512fc", "mnist-cnn")
MODELS = (*NOISE_MODELS, *ANN_MODELS)
STAGES = ("2", "3", "lif", "lif+mean", "lif+noise")  # evaluation modes (module docstring)
# Adam learning rate when none is given: the paper's 1e-4, except on digits (23 batches per epoch), where
# 1e-4 reaches 58% (stage 2, T = 1) after 200 epochs and 1e-3 reaches 78% after 100 (ap2-512fc, seed 0).
DEFAULT_LR = 1e-4
DATASET_LR = {"digits": 1e-3}
RANGE_STDS = 3.0  # N_noise's range is [mean - 3 std, mean + 3 std] ([0, 1] at the defaults)


# --- options ---------------------------------------------------------------------------------------------
def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class NoiseConfig:
    """N_noise of eq. 6: ``kind`` gaussian (mean, std, clipped to mean +- 3 std if ``clip``) or uniform on
    [mean - 3 std, mean + 3 std]."""

    kind: str = "gaussian"
    mean: float = 0.5
    std: float = 1.0 / 6.0
    clip: bool = True

    def __post_init__(self) -> None:
        if self.kind not in NOISE_TYPES:
            raise InputError(f"--noise {self.kind!r}: unknown noise type; expected one of {', '.join(NOISE_TYPES)}")
        if not _finite(self.mean):
            raise InputError(f"--noise-mean {self.mean!r}: the noise mean must be a finite number")
        if not _finite(self.std) or self.std < 0:
            raise InputError(f"--noise-std {self.std!r}: the noise scale must be a finite number >= 0")
        if not isinstance(self.clip, bool):
            raise InputError(f"--noise-clip {self.clip!r}: expected true or false")

    @property
    def low(self) -> float:
        return float(self.mean - RANGE_STDS * self.std)

    @property
    def high(self) -> float:
        return float(self.mean + RANGE_STDS * self.std)

    @property
    def width(self) -> float:
        """R, the width of N_noise's range (6 std)."""
        return float(2 * RANGE_STDS * self.std)

    def sample(self, shape: Sequence[int], gen: torch.Generator) -> torch.Tensor:
        """A fresh draw of N_noise with ``shape``, float32, from ``gen``."""
        if self.kind == "gaussian":
            n = torch.randn(tuple(shape), generator=gen) * self.std + self.mean
            return n.clamp(self.low, self.high) if self.clip else n
        return torch.rand(tuple(shape), generator=gen) * (self.high - self.low) + self.low

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, "mean": float(self.mean), "std": float(self.std), "clip": self.clip}

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any]) -> NoiseConfig:
        d = ckpt["snn"].get("noise")
        if not isinstance(d, Mapping):
            raise InputError(
                f"checkpoint ({ckpt.get('model')} on {ckpt.get('dataset')}) records no noise "
                f"options: not trained with --method noise"
            )
        return cls(str(d["type"]), float(d["mean"]), float(d["std"]), bool(d["clip"]))


def check_stage3(alpha: float, beta: float) -> None:
    if not (isinstance(alpha, (int, float)) and not isinstance(alpha, bool)) or math.isnan(alpha) or alpha <= 0:
        raise InputError(f"--alpha {alpha!r}: alpha (eq. 10) must be > 0")
    if not _finite(beta):
        raise InputError(f"--beta {beta!r}: beta (eq. 10) must be a finite number")


def check_offset(offset: Any) -> float:
    if not _finite(offset):
        raise InputError(f"--offset {offset!r}: the constant current must be a finite number")
    return float(offset)


def check_timesteps(timesteps: Any) -> int:
    if not isinstance(timesteps, (int, np.integer)) or isinstance(timesteps, bool) or timesteps < 1:
        raise InputError(f"--timesteps {timesteps!r}: T must be an integer >= 1")
    return int(timesteps)


def check_stage(stage: Any) -> str:
    m = str(stage)
    if m not in STAGES:
        raise InputError(f"--stage {stage!r}: expected one of {', '.join(STAGES)}")
    return m


def residual_gain(noise: NoiseConfig, alpha: float) -> float:
    """k of N' = k (N_noise - mean): ``max(0, 1 - 2 / (alpha R))`` (module docstring, eq. 7)."""
    if noise.width == 0:
        return 0.0
    return max(0.0, 1.0 - 2.0 / (alpha * noise.width))


# --- architectures ---------------------------------------------------------------------------------------
def noise_arch(
    model: str, input_shape: Sequence[int], num_classes: int, bias: bool = False, hidden: int | None = None
) -> list[dict[str, Any]]:
    """Layer dicts (``training/models.py`` format) of the paper's Table 1 networks, or a ``make_arch`` one.

    - ``ap2-512fc`` (Fashion-MNIST): 2x2 average pooling of the input, flatten, linear -> ``hidden``
      (512), LIF, linear -> classes, LIF.
    - ``mnist-cnn`` (MNIST, Table 1 "64C3 AP2 128C3 AP2 128C3", our reading of its garbled entry, nC3 =
      3x3 conv stride 1, padding 1): conv 64, LIF, avgpool 2, conv 128, LIF, avgpool 2, conv 128, LIF,
      flatten, linear -> classes, LIF (the table omits the classifier; one linear layer is the minimum).
    - anything else: ``models.make_arch`` (``mlp``, ``lenet5``, ...), its hidden default 128.

    The last linear layer is written without a following relu (``check_convertible``): whether it spikes is
    the checkpoint's ``snn.output``, "spiking" here.  No bias by default (the paper does not say).
    """
    shape = tuple(int(s) for s in input_shape)
    lin = lambda i, o: {"type": "linear", "in": i, "out": o, "bias": bias}  # noqa: E731
    conv = lambda i, o: {  # noqa: E731
        "type": "conv",
        "in": i,
        "out": o,
        "kernel": 3,
        "stride": 1,
        "padding": 1,  # noqa: E731
        "groups": 1,
        "bias": bias,
    }
    relu, pool, flat = {"type": "relu"}, {"type": "avgpool", "kernel": 2, "stride": 2}, {"type": "flatten"}
    if model == "ap2-512fc":
        if len(shape) != 3:
            raise InputError(f"model 'ap2-512fc' needs a (C, H, W) input, got {shape}")
        feats = shape[0] * (shape[1] // 2) * (shape[2] // 2)
        arch = [pool, flat, lin(feats, hidden or 512), relu, lin(hidden or 512, num_classes)]
    elif model == "mnist-cnn":
        if len(shape) != 3:
            raise InputError(f"model 'mnist-cnn' needs a (C, H, W) input, got {shape}")
        arch = [conv(shape[0], 64), relu, pool, conv(64, 128), relu, pool, conv(128, 128), relu, flat]
        feats = output_shapes(arch, shape)[-1][0]
        arch.append(lin(feats, num_classes))
    elif model in ANN_MODELS:
        return make_arch(model, shape, num_classes, bias=bias, hidden=hidden or 128)
    else:
        raise InputError(f"--model {model!r}: unknown model; expected one of {', '.join(MODELS)}")
    arch = [dict(layer) for layer in arch]
    output_shapes(arch, shape)
    check_convertible(arch)
    return arch


# --- the network -----------------------------------------------------------------------------------------
class _Spike(torch.autograd.Function):
    """Heaviside ``S = x > 0`` (x = H - V_th, eq. 2) with the surrogate derivative of eq. 4."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, a: float) -> torch.Tensor:  # noqa: ANN401
        ctx.save_for_backward(x)
        ctx.a = a
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN401
        (x,) = ctx.saved_tensors
        a = ctx.a
        return grad * (a / (2.0 * (1.0 + (math.pi / 2.0 * a * x) ** 2))), None


def surrogate_spike(h: torch.Tensor, threshold: float = THRESHOLD, a: float = 3.0) -> torch.Tensor:
    """``S = H > threshold`` forward; eq. 4 backward."""
    return _Spike.apply(h - threshold, a)


def _quantized_input(x: torch.Tensor) -> torch.Tensor:
    """The 8-bit value the direct encoding delivers, ``round(255 x) / 255`` (same as the deployed input)."""
    return torch.round(x * DIRECT_LEVELS) / DIRECT_LEVELS


def _forward_t1(
    prefix: Sequence[nn.Module],
    stages: Sequence[Stage],
    x: torch.Tensor,
    noise: NoiseConfig,
    gen: torch.Generator,
    a: float,
) -> torch.Tensor:
    """Stage 1 forward (eq. 6) of a batch of real inputs: output spikes (B, classes), differentiable."""
    h = _quantized_input(x)
    for module in prefix:
        h = module(h)
    for stage in stages:
        current = stage.current(h)
        s = surrogate_spike(current + noise.sample(current.shape, gen), THRESHOLD, a)
        h = stage.forward_spikes(s)
    return h


def _forward_bptt(
    prefix: Sequence[nn.Module],
    stages: Sequence[Stage],
    x: torch.Tensor,
    timesteps: int,
    a: float,
) -> torch.Tensor:
    """Direct training's forward (the baseline of sec. 3.2 / Fig. 4-5): the plain LIF of eqs. 1-3 run for
    ``timesteps`` steps on the direct-encoded input, spikes through the eq. 4 surrogate, hard reset
    ``V = H (1 - S)`` differentiated as written (no detached reset); returns the output spikes averaged over
    the steps (B, classes), differentiable through time (BPTT)."""
    h0 = _quantized_input(x)
    for module in prefix:
        h0 = module(h0)
    first = stages[0].current(h0)  # the same input current every step (direct encoding)
    v: list[torch.Tensor | float] = [0.0] * len(stages)
    total: torch.Tensor | None = None
    for _ in range(timesteps):
        h = h0
        for n, stage in enumerate(stages):
            current = first if n == 0 else stage.current(h)
            hh = LEAK * v[n] + current  # eq. 1
            s = surrogate_spike(hh, THRESHOLD, a)  # eq. 2 with the eq. 4 backward
            v[n] = hh * (1.0 - s)  # eq. 3, V_reset = 0
            h = stage.forward_spikes(s)
        total = h if total is None else total + h
    return total / timesteps


def _check_training_options(epochs: int, batch_size: int, t_max: int, lr: float, surrogate_a: float) -> None:
    for name, value in (("--epochs", epochs), ("--batch-size", batch_size), ("--t-max", t_max)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"{name} {value!r}: must be an integer >= 1")
    for name, value in (("--lr", lr), ("--surrogate-a", surrogate_a)):
        if not _finite(value) or value <= 0:
            raise InputError(f"{name} {value!r}: must be a finite number > 0")


@dataclass(frozen=True)
class _Setup:
    """What both trainers prepare the same way: options checked, arch, data, shared hyperparameters."""

    model: str
    dataset: str
    num_classes: int
    arch: list[dict[str, Any]]
    x_tr: np.ndarray
    y_tr: np.ndarray
    x_te: np.ndarray
    y_te: np.ndarray
    hyperparams: dict[str, Any]


def _setup(
    method: str,
    model: str,
    dataset: str,
    epochs: int,
    seed: int,
    lr: float | None,
    t_max: int,
    surrogate_a: float,
    batch_size: int,
    hidden: int | None,
    bias: bool,
    limit_train: int | None,
    data_dir: Path | str | None,
) -> _Setup:
    lr = DATASET_LR.get(dataset, DEFAULT_LR) if lr is None else lr
    _check_training_options(epochs, batch_size, t_max, lr, surrogate_a)
    info = dataset_info(dataset)
    arch = noise_arch(model, info.input_shape, info.num_classes, bias=bias, hidden=hidden)
    x_tr, y_tr = load_dataset(dataset, "train", data_dir)
    x_te, y_te = load_dataset(dataset, "test", data_dir)
    x_tr, y_tr = subset(x_tr, y_tr, limit_train, seed)
    hyperparams = {
        "method": method,
        "epochs": int(epochs),
        "lr": float(lr),
        "batch_size": int(batch_size),
        "hidden": hidden,
        "bias": bool(bias),
        "optimizer": "adam",
        "schedule": "cosine-warm-restarts",
        "t_max": int(t_max),
        "loss": "mse-one-hot",
        "surrogate": "atan (eq. 4)",
        "surrogate_a": float(surrogate_a),
        "limit_train": limit_train,
        "train_samples": len(x_tr),
    }
    return _Setup(model, dataset, info.num_classes, arch, x_tr, y_tr, x_te, y_te, hyperparams)


def _fit(
    run: _Setup,
    forward: Callable[[Sequence[nn.Module], Sequence[Stage], torch.Tensor], torch.Tensor],
    make: Callable[[dict[str, torch.Tensor]], dict[str, Any]],
    seed: int,
    progress: bool,
    on_epoch: Callable[[int, dict[str, Any]], None] | None,
) -> tuple[dict[str, Any], float]:
    """The training loop both methods share: Adam, MSE of ``forward``'s output against one-hot targets,
    ``CosineAnnealingWarmRestarts(T_0=t_max)`` stepped per epoch (lr, epochs, batch size, t_max from
    ``run.hyperparams``).  Weight init from ``torch.manual_seed(seed)`` in a forked RNG state, batch order
    from a generator seeded with ``seed``.  ``make`` turns a state dict into a checkpoint (metrics empty);
    ``on_epoch(epoch, checkpoint)`` runs after each epoch (1-based): callers that time training subtract
    their own time.  Returns the final checkpoint and the last epoch's loss."""
    hp = run.hyperparams
    epochs, batch_size = hp["epochs"], hp["batch_size"]
    xt, yt = torch.from_numpy(run.x_tr), torch.from_numpy(run.y_tr)
    targets = nn.functional.one_hot(yt, run.num_classes).to(torch.float32)
    steps = math.ceil(len(xt) / batch_size)
    w = world()  # torchrun: one slice of every batch per rank, gradients averaged (training/distributed.py)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_model(run.arch)
        prefix, stages = split_stages(net, run.arch)
        train_forward = w.wrap(net, lambda x: forward(prefix, stages, x))
        if w.size > 1:
            hp["world_size"] = w.size  # torchrun ranks (training/distributed.py)
        opt = torch.optim.Adam(net.parameters(), lr=hp["lr"])
        sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=hp["t_max"])
        order_gen = torch.Generator().manual_seed(seed)
        loss_fn = nn.MSELoss()
        desc = f"train {hp['method']} {run.model}/{run.dataset}"
        bar = tqdm(range(epochs), desc=desc, unit="epoch", file=sys.stderr, disable=not (progress and w.main))
        epoch_loss = float("nan")
        for epoch in bar:
            net.train()
            order = torch.randperm(len(xt), generator=order_gen)
            total = 0.0
            for b in range(steps):
                idx = w.shard(order[b * batch_size : (b + 1) * batch_size])
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(train_forward(xt[idx]), targets[idx])
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            sched.step()
            epoch_loss = w.total(total) / len(xt)
            bar.set_postfix(loss=f"{epoch_loss:.4f}")
            if on_epoch is not None:
                on_epoch(epoch + 1, make({k: v.detach().clone() for k, v in net.state_dict().items()}))
        bar.close()
    return make({k: v.detach().clone() for k, v in net.state_dict().items()}), epoch_loss


def snn_checkpoint(
    model: str,
    dataset: str,
    arch: list[dict[str, Any]],
    state_dict: dict[str, torch.Tensor],
    seed: int,
    timesteps: int,
    method: str,
    hyperparams: dict[str, Any],
    noise: NoiseConfig | None,
) -> dict[str, Any]:
    """The SNN checkpoint of a network with this module's neuron (eqs. 1-3): thresholds all 1.0 (output too),
    ``output = "spiking"``, leak 0.5, hard reset, direct encoding; ``noise`` recorded for noise training."""
    info = dataset_info(dataset)
    n_stages = sum(1 for layer in arch if layer["type"] in SYNAPTIC_TYPES)
    snn: dict[str, Any] = {
        "thresholds": [THRESHOLD] * n_stages,
        "timesteps": int(timesteps),
        "reset": "hard",
        "leak": LEAK,
        "encoding": ENCODING,
        "seed": int(seed),
        "output": "spiking",
        "method": method,
        # [] only because checkpoint._check_snn still reads this conversion-only key unconditionally
        "first_layer_mean_potential": [],
    }
    if noise is not None:
        snn["noise"] = noise.to_json()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": "snn",
        "model": model,
        "dataset": dataset,
        "input_shape": list(info.input_shape),
        "num_classes": info.num_classes,
        "arch": arch,
        "state_dict": state_dict,
        "seed": int(seed),
        "hyperparams": hyperparams,
        "metrics": {},
        "created_by": CREATED_BY,
        "snn": snn,
    }


# --- stage 1: training -----------------------------------------------------------------------------------
def train_noise(
    model: str,
    dataset: str,
    epochs: int,
    seed: int,
    noise: str = "gaussian",
    noise_mean: float = 0.5,
    noise_std: float = 1.0 / 6.0,
    noise_clip: bool = True,
    lr: float | None = None,
    t_max: int = 100,
    surrogate_a: float = 3.0,
    batch_size: int = 64,
    hidden: int | None = None,
    bias: bool = False,
    timesteps: int = 1,
    limit_train: int | None = None,
    progress: bool = True,
    data_dir: Path | str | None = None,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Stage 1: train the T = 1 SNN with per-layer noise (eq. 6); return an SNN checkpoint dict.

    ``noise``/``noise_mean``/``noise_std``/``noise_clip``: :class:`NoiseConfig`.  Adam (``lr``; None:
    :data:`DEFAULT_LR` = 1e-4, the paper's, or :data:`DATASET_LR` for the tiny digits set), MSE on
    one-hot targets, ``CosineAnnealingWarmRestarts(T_0=t_max)`` stepped per epoch, surrogate eq. 4 with
    ``a = surrogate_a``.  ``timesteps`` is only the T recorded in the checkpoint (what ``evaluate`` and
    ``compile`` use when not told otherwise); training is always at T = 1.

    Seeded like ``ann.train_ann``: weight init from ``torch.manual_seed(seed)`` in a forked RNG state, batch
    order from a generator seeded with ``seed``, the noise from one seeded with ``seed + 1``.
    ``on_epoch(epoch, checkpoint)`` (metrics empty) runs after every epoch, e.g. to time accuracy.

    The checkpoint: kind "snn", thresholds all 1.0 (output too), ``output = "spiking"``, leak 0.5, hard
    reset, direct encoding, ``method = "noise"``, ``noise`` = the options; metrics: stage-2 accuracy at
    T = 1 (the training condition) and the plain LIF ("lif") accuracy at T = 1 on the test set.
    """
    cfg = NoiseConfig(noise, noise_mean, noise_std, noise_clip)
    check_timesteps(timesteps)
    run = _setup(
        "noise", model, dataset, epochs, seed, lr, t_max, surrogate_a, batch_size, hidden, bias, limit_train, data_dir
    )
    run.hyperparams["noise"] = cfg.to_json()
    noise_gen = torch.Generator().manual_seed(seed + 1)

    def forward(prefix: Sequence[nn.Module], stages: Sequence[Stage], x: torch.Tensor) -> torch.Tensor:
        return _forward_t1(prefix, stages, x, cfg, noise_gen, surrogate_a)

    def make(state: dict[str, torch.Tensor]) -> dict[str, Any]:
        return snn_checkpoint(model, dataset, run.arch, state, seed, timesteps, "noise", run.hyperparams, cfg)

    ckpt, epoch_loss = _fit(run, forward, make, seed, progress, on_epoch)
    x_te, y_te = run.x_te, run.y_te
    acc_t1 = evaluate_noise(ckpt, x_te, y_te, timesteps=1, stage="2", seed=seed)
    lif_t1 = evaluate_noise(ckpt, x_te, y_te, timesteps=1, stage="lif", seed=seed)
    ckpt["metrics"] = {
        "test_accuracy": float(acc_t1),
        "test_accuracy_lif_t1": float(lif_t1),
        "train_loss": float(epoch_loss),
        "test_samples": len(x_te),
    }
    validate_checkpoint(ckpt, f"trained noise {model} on {dataset}", "snn")
    return ckpt


# --- the baseline: direct surrogate-gradient BPTT at T = N -----------------------------------------------
def train_bptt(
    model: str,
    dataset: str,
    epochs: int,
    seed: int,
    timesteps: int = 10,
    lr: float | None = None,
    t_max: int = 100,
    surrogate_a: float = 3.0,
    batch_size: int = 64,
    hidden: int | None = None,
    bias: bool = False,
    limit_train: int | None = None,
    progress: bool = True,
    data_dir: Path | str | None = None,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Direct training, the paper's comparison (sec. 3.2, Figs. 4-5): the same network, neuron (eqs. 1-3),
    surrogate (eq. 4), loss, optimizer, schedule and seeding as :func:`train_noise`, but no noise: the
    plain LIF is unrolled over ``timesteps`` steps and trained by backpropagation through time on the
    output spikes averaged over the steps (:func:`_forward_bptt`).  The result is exactly the network the
    compiler deploys (stage "lif"; no offset needed).  Checkpoint as :func:`train_noise` with
    ``method = "bptt"`` and no ``noise``; metrics: plain-LIF test accuracy at ``timesteps``.
    """
    from loihic.training.snn import evaluate_snn

    steps = check_timesteps(timesteps)
    run = _setup(
        "bptt", model, dataset, epochs, seed, lr, t_max, surrogate_a, batch_size, hidden, bias, limit_train, data_dir
    )
    run.hyperparams.update(timesteps_train=steps, loss="mse-one-hot (output spikes averaged over T)")

    def forward(prefix: Sequence[nn.Module], stages: Sequence[Stage], x: torch.Tensor) -> torch.Tensor:
        return _forward_bptt(prefix, stages, x, steps, surrogate_a)

    def make(state: dict[str, torch.Tensor]) -> dict[str, Any]:
        return snn_checkpoint(model, dataset, run.arch, state, seed, steps, "bptt", run.hyperparams, None)

    ckpt, epoch_loss = _fit(run, forward, make, seed, progress, on_epoch)
    x_te, y_te = run.x_te, run.y_te
    ckpt["metrics"] = {
        "test_accuracy": float(evaluate_snn(ckpt, x_te, y_te, timesteps=steps, seed=seed)),
        "train_loss": float(epoch_loss),
        "test_samples": len(x_te),
    }
    validate_checkpoint(ckpt, f"trained bptt {model} on {dataset}", "snn")
    return ckpt


# --- stages 2 and 3, and the deployed LIF: evaluation ----------------------------------------------------
def chunk_generator(seed: int, chunk: int) -> torch.Generator:
    """The noise generator of sample chunk ``chunk`` (chunks of :data:`ENCODE_CHUNK`, as encode_chunks):
    noise, like the input spikes, depends only on (seed, sample position), never on batch_size."""
    state = np.random.SeedSequence([int(seed), int(chunk), 0x6E6F697365]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _normalised_potential(v: torch.Tensor, alpha: float, beta: float, leak: float) -> torch.Tensor:
    """N(lambda V(t-1)) of eqs. 8-10, per sample over the layer's neurons."""
    a = leak * v  # eq. 8
    flat = a.reshape(a.shape[0], -1)
    mu = flat.mean(dim=1, keepdim=True)
    sd = flat.std(dim=1, unbiased=False, keepdim=True)
    a_hat = torch.where(
        sd > 0, (flat - mu) / torch.where(sd > 0, sd, torch.ones_like(sd)), torch.zeros_like(flat)
    )  # eq. 9
    peak = a_hat.abs().amax(dim=1, keepdim=True)
    scaled = torch.where(
        peak > 0, a_hat / (alpha * torch.where(peak > 0, peak, torch.ones_like(peak))), torch.zeros_like(a_hat)
    )
    return (scaled + beta).reshape(a.shape)  # eq. 10


class NoiseSNN:
    """The float network of a noise checkpoint run at T steps in one of :data:`STAGES` (module docstring)."""

    def __init__(self, ckpt: Mapping[str, Any]) -> None:
        validate_checkpoint(ckpt, f"checkpoint ({ckpt.get('model')} on {ckpt.get('dataset')})", "snn")
        snn = ckpt["snn"]
        if snn.get("output", "integrator") != "spiking" or any(t is None for t in snn["thresholds"]):
            raise InputError("noise evaluation needs a spiking output layer (snn.output 'spiking')")
        self.noise = NoiseConfig.from_checkpoint(ckpt)
        self.net = build_model(ckpt["arch"])
        self.net.load_state_dict(ckpt["state_dict"])
        self.net.eval()
        self.prefix, self.stages = split_stages(self.net, ckpt["arch"])
        self.thresholds = [float(t) for t in snn["thresholds"]]
        self.leak, self.reset = float(snn["leak"]), str(snn["reset"])
        self.encoding = str(snn["encoding"])
        self.scale = float(input_scale(self.encoding))

    @torch.no_grad()
    def run(
        self,
        spikes: np.ndarray | torch.Tensor,
        stage: str,
        gen: torch.Generator | None,
        alpha: float = 4.0,
        beta: float = 0.5,
        offset: float | None = None,
    ) -> torch.Tensor:
        """Output spike counts (B, classes) for encoded inputs (B, *input_shape, T).

        ``offset`` is the constant current of stages "lif+mean"/"lif+noise" (None: :func:`steady_offset`
        ``(beta)``).  Noise is drawn from ``gen`` step by step, layer by layer, in a fixed order.
        """
        mode = check_stage(stage)
        check_stage3(alpha, beta)
        c = check_offset(steady_offset(beta, self.leak) if offset is None else offset)
        x = torch.as_tensor(spikes).to(torch.float32) / self.scale
        k = residual_gain(self.noise, alpha)
        v: list[torch.Tensor | float] = [0.0] * len(self.stages)
        counts: torch.Tensor | None = None
        for t in range(x.shape[-1]):
            h = x[..., t]
            for module in self.prefix:
                h = module(h)
            for n, stage in enumerate(self.stages):
                current = stage.current(h)
                th = self.thresholds[n]
                if mode == "lif":
                    s, v[n] = fire(integrate(v[n], current, self.leak), th, self.reset)
                elif mode == "lif+mean":
                    s, v[n] = fire(integrate(v[n], current + c, self.leak), th, self.reset)
                elif mode == "lif+noise":
                    extra = c + k * (self.noise.sample(current.shape, gen) - self.noise.mean)
                    s, v[n] = fire(integrate(v[n], current + extra, self.leak), th, self.reset)
                elif mode == "2":
                    s = (self.noise.sample(current.shape, gen) + current) > th  # eq. 6 at every step
                else:  # "3", eqs. 7-10
                    prev = v[n] if isinstance(v[n], torch.Tensor) else torch.zeros_like(current)
                    drawn = self.noise.sample(current.shape, gen)
                    hh = _normalised_potential(prev, alpha, beta, self.leak) + k * (drawn - self.noise.mean) + current
                    s, v[n] = fire(hh, th, self.reset)
                h = stage.forward_spikes(s.to(torch.float32))
            counts = h if counts is None else counts + h
        if counts is None:
            raise InputError("spikes have no time steps (T = 0)")
        return counts


def noise_outputs(
    ckpt: Mapping[str, Any],
    x: np.ndarray,
    timesteps: int | None = None,
    stage: str | int = "3",
    alpha: float = 4.0,
    beta: float = 0.5,
    seed: int = 0,
    offset: float | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Output spike counts (N, classes) of the float network at ``timesteps`` in ``stage`` (:data:`STAGES`).

    Inputs are encoded with ``snn.encode_chunks`` (chunks of 256 samples, chunk k seeded ``seed + k``) and
    each chunk's noise comes from :func:`chunk_generator` ``(seed, k)``: results depend on ``seed`` only.
    """
    mode = check_stage(stage)
    check_stage3(alpha, beta)
    if offset is not None:
        check_offset(offset)
    model = NoiseSNN(ckpt)
    steps = check_timesteps(int(ckpt["snn"]["timesteps"]) if timesteps is None else timesteps)
    out = np.zeros((len(x), ckpt["num_classes"]), dtype=np.float32)
    bar = tqdm(total=len(x), desc=f"noise {mode}", unit="sample", file=sys.stderr, disable=not progress)
    for k, (start, spikes) in enumerate(encode_chunks(x, steps, model.encoding, seed)):
        out[start : start + len(spikes)] = model.run(
            spikes, mode, chunk_generator(seed, k), alpha, beta, offset
        ).numpy()
        bar.update(len(spikes))
    bar.close()
    return out


def evaluate_noise(
    ckpt: Mapping[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    timesteps: int | None = None,
    stage: str | int = "3",
    alpha: float = 4.0,
    beta: float = 0.5,
    seed: int = 0,
    offset: float | None = None,
    progress: bool = False,
) -> float:
    """Accuracy of argmax of the output spike counts (ties to the lowest index) in ``stage``; stage "lif"
    equals ``training.snn.evaluate_snn`` on the same checkpoint, spike for spike."""
    if len(x) != len(y) or len(x) == 0:
        raise InputError(f"x has {len(x)} samples and y {len(y)}: expected the same non-zero number")
    pred = noise_outputs(ckpt, x, timesteps, stage, alpha, beta, seed, offset, progress).argmax(axis=1)
    return float((pred == np.asarray(y)).mean())


def steady_offset(beta: float = 0.5, leak: float = LEAK) -> float:
    """The constant per-step current ``c = beta (1 - lambda)`` whose LIF steady state matches stage 3's mean:
    a neuron that neither fires nor receives input settles at V = c / (1 - lambda), so its accumulated term
    plus the offset is ``lambda V + c = c / (1 - lambda) = beta``, the mean of N(lambda V(t-1)) (eq. 10)."""
    return float(beta) * (1.0 - float(leak))


def with_offset(ckpt: Mapping[str, Any], offset: float) -> dict[str, Any]:
    """A copy of a noise checkpoint whose every synaptic layer adds the constant current ``offset`` each step,
    folded into its bias (the arch gets ``bias: true`` where it had none): the plain LIF of this copy is
    stage "lif+mean" with ``offset`` of the original, and it compiles like any SNN checkpoint."""
    check_offset(offset)
    validate_checkpoint(ckpt, f"checkpoint ({ckpt.get('model')} on {ckpt.get('dataset')})", "snn")
    arch = [dict(layer) for layer in ckpt["arch"]]
    state = dict(ckpt["state_dict"])
    for i, layer in enumerate(arch):
        if layer["type"] not in ("linear", "conv"):
            continue
        if any(arch[j]["type"] == "batchnorm" for j in (i + 1,) if j < len(arch)):
            raise InputError(f"arch layer {i}: offset folding with batchnorm is not supported")
        w = state[f"{i}.weight"]
        bias = (
            state.get(f"{i}.bias", torch.zeros(w.shape[0], dtype=w.dtype))
            if layer["bias"]
            else torch.zeros(w.shape[0], dtype=w.dtype)
        )
        layer["bias"] = True
        state[f"{i}.bias"] = bias + float(offset)
    out = {**ckpt, "arch": arch, "state_dict": state, "snn": {**ckpt["snn"], "deploy_offset": float(offset)}}
    validate_checkpoint(out, "offset checkpoint", "snn")
    return out
