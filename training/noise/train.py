"""Noise-based training, stage 1 (T = 1 with noise), and the T = N surrogate-gradient BPTT baseline."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from loihic.compiler import ir
from loihic.compiler.encoding import DIRECT_LEVELS
from loihic.compiler.errors import InputError
from loihic.compiler.load.checkpoint import network_data
from loihic.training.checkpoint import CREATED_BY, FORMAT, FORMAT_VERSION, validate_checkpoint
from loihic.training.data import dataset_info, load_dataset, subset
from loihic.training.distributed import world
from loihic.training.models import build_model
from loihic.training.noise.evaluate import evaluate_noise
from loihic.training.noise.options import (
    DATASET_LR,
    DEFAULT_LR,
    ENCODING,
    LEAK,
    THRESHOLD,
    NoiseConfig,
    _finite,
    check_timesteps,
    noise_network,
)
from loihic.training.snn import Stage, split_stages


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


def _quantized_input(x: torch.Tensor, levels: int = DIRECT_LEVELS) -> torch.Tensor:
    """The graded value the direct encoding delivers, ``round(levels x) / levels`` (same as the deployed input;
    ``levels`` = 2^B - 1 for B-bit input, 255 by default)."""
    return torch.round(x * levels) / levels


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
    levels: int = DIRECT_LEVELS,
    through_time: bool = True,
) -> torch.Tensor:
    """Direct training's forward (the baseline of sec. 3.2 / Fig. 4-5): the plain LIF of eqs. 1-3 run for
    ``timesteps`` steps on the direct-encoded input (``levels`` = 2^B - 1 for B-bit input), spikes through the
    eq. 4 surrogate, hard reset ``V = H (1 - S)`` differentiated as written (no detached reset); returns the
    output spikes averaged over the steps (B, classes), differentiable through time (BPTT).  The synaptic
    layers' biases (if any) are part of each step's current.  ``through_time=False`` detaches ``V(t-1)``: the
    gradient then flows through every step's spikes and currents but not back along the membrane's recursion
    (no backpropagation through time; the deployment stage, training/noise/deploy.py)."""
    h0 = _quantized_input(x, levels)
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
            if not through_time:
                v[n] = v[n].detach()
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
    """What both trainers prepare the same way: options checked, network, data, shared hyperparameters."""

    model: str
    dataset: str
    num_classes: int
    network: ir.Network  # the ANN structure (training/models.py)
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
    network = noise_network(model, info.input_shape, info.num_classes, bias=bias, hidden=hidden)
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
    return _Setup(model, dataset, info.num_classes, network, x_tr, y_tr, x_te, y_te, hyperparams)


def _fit(
    run: _Setup,
    forward: Callable[[Sequence[nn.Module], Sequence[Stage], torch.Tensor], torch.Tensor],
    make: Callable[[dict[str, torch.Tensor]], dict[str, Any]],
    seed: int,
    progress: bool,
    on_epoch: Callable[[int, dict[str, Any]], None] | None,
    init_state: dict[str, torch.Tensor] | None = None,
) -> tuple[dict[str, Any], float]:
    """The training loop both methods share: Adam, MSE of ``forward``'s output against one-hot targets,
    ``CosineAnnealingWarmRestarts(T_0=t_max)`` stepped per epoch (lr, epochs, batch size, t_max from
    ``run.hyperparams``).  Weight init from ``torch.manual_seed(seed)`` in a forked RNG state, batch order
    from a generator seeded with ``seed``.  ``make`` turns a state dict into a checkpoint (metrics empty);
    ``on_epoch(epoch, checkpoint)`` runs after each epoch (1-based): callers that time training subtract
    their own time.  ``init_state``: start from these weights instead of the seeded initialisation (the
    deployment stage).  Returns the final checkpoint and the last epoch's loss."""
    hp = run.hyperparams
    epochs, batch_size = hp["epochs"], hp["batch_size"]
    xt, yt = torch.from_numpy(run.x_tr), torch.from_numpy(run.y_tr)
    targets = nn.functional.one_hot(yt, run.num_classes).to(torch.float32)
    steps = math.ceil(len(xt) / batch_size)
    w = world()  # torchrun: one slice of every batch per rank, gradients averaged (training/distributed.py)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_model(run.network)
        if init_state is not None:
            net.load_state_dict(init_state)
        prefix, stages = split_stages(net, run.network)
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
    network: ir.Network,
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
    n_stages = len(network.synaptic())
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
        "layers": network_data(network.layers),
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
        return snn_checkpoint(model, dataset, run.network, state, seed, timesteps, "noise", run.hyperparams, cfg)

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
        return snn_checkpoint(model, dataset, run.network, state, seed, steps, "bptt", run.hyperparams, None)

    ckpt, epoch_loss = _fit(run, forward, make, seed, progress, on_epoch)
    x_te, y_te = run.x_te, run.y_te
    ckpt["metrics"] = {
        "test_accuracy": float(evaluate_snn(ckpt, x_te, y_te, timesteps=steps, seed=seed)),
        "train_loss": float(epoch_loss),
        "test_samples": len(x_te),
    }
    validate_checkpoint(ckpt, f"trained bptt {model} on {dataset}", "snn")
    return ckpt
