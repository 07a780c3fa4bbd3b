"""The deployment stage: a short fine-tuning of a noise-trained network as the deterministic LIF Loihi runs.

Stage 3 (eqs. 7-10) evaluates the noise-trained network at T = N with the training noise still injected; Lava's
LIF has no noise and no layer-wide normalisation, so loihic deploys the plain LIF of eqs. 1-3 with the noise
mean as a bias (``evaluate.py`` :func:`~loihic.training.noise.evaluate.with_offset`).  That network never saw
training: on Fashion-MNIST (AP2-512FC, 2 epochs, seed 1) it is ~3 points below stage 3.  This stage trains it:

- the network: the noise-trained weights with ``c = beta (1 - lambda)`` (:func:`steady_offset`) folded into
  every synaptic layer's bias, run as eqs. 1-3 at T = ``timesteps`` with hard reset ``V = H (1 - S)``, the
  thresholds (V_th = 1) and leak (lambda = 0.5) the compiler maps 1:1 onto Lava's LIF, and the B-bit graded
  input the compiler will deploy (B: :func:`compiler_input_bits`, the compiler's own ``--input-bits auto``
  choice for this network; recorded as the checkpoint's encoding ``direct<B>``, which ``loihic compile``
  keeps);
- trained: weights and biases (the bias starts at the noise mean and may move per neuron), Adam at ``lr``,
  MSE of the output spike counts / T against one-hot targets (the method's loss), the eq. 4 surrogate;
- the gradient (``through_time``): by default ``V(t-1)`` is detached, so every step's spikes get their
  gradient from that step's loss share and no error travels back along the membrane's recursion: in the
  method's BPTT-free spirit (its stage 1 trains at T = 1).  ``through_time=True`` is full BPTT (the
  baseline's ``_forward_bptt``); bench/noise_deploy.py measures both.

The result is a checkpoint whose plain LIF (stage "lif") IS the network ``loihic compile`` deploys:
``snn.deploy_offset`` says the noise mean is already in the biases (compile adds no further offset), and
``snn.deploy_stage`` records the options and the seed.  Its noise stages (2, 3) no longer describe it: the
noise-trained network's stage-3 accuracy at T is kept in ``metrics`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from loihic.compiler.config import CompileConfig
from loihic.compiler.encoding import direct_bits, input_scale
from loihic.compiler.errors import InputError
from loihic.compiler.load.checkpoint import ann_network, network_from_checkpoint
from loihic.compiler.passes.input_bits import input_bits as input_bits_pass
from loihic.compiler.pipeline import PASSES
from loihic.training.checkpoint import validate_checkpoint, with_input_bits
from loihic.training.data import load_dataset, subset
from loihic.training.noise.evaluate import evaluate_noise, steady_offset, with_offset
from loihic.training.noise.options import _finite, check_timesteps
from loihic.training.noise.train import _fit, _forward_bptt, _Setup
from loihic.training.snn import Stage

DEPLOY_EPOCHS = 1  # `loihic train --method noise` default: one epoch (measured in bench/noise_deploy.py)
DEPLOY_LR = 1e-3
DEPLOY_TIMESTEPS = 5  # T of the stage when `loihic train` is not given --timesteps (the paper's T = 5)


def compiler_input_bits(ckpt: Mapping[str, Any]) -> int:
    """The graded input width ``loihic compile --input-bits auto`` chooses for this (offset-folded) SNN
    checkpoint: the compiler's passes up to and including ``input_bits`` (compiler/passes/input_bits.py)."""
    net = network_from_checkpoint(ckpt, f"<{ckpt.get('model')} checkpoint>")
    cfg = CompileConfig()
    for p in PASSES[: PASSES.index(input_bits_pass) + 1]:
        net = p(net, cfg)
    return direct_bits(net.encoding)


def check_deploy_options(epochs: Any, lr: Any, batch_size: Any) -> None:
    """The stage's options, checked before any training (``loihic train`` calls it first)."""
    for name, value in (("--deploy-epochs", epochs), ("--batch-size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"{name} {value!r}: must be an integer >= 1")
    if not _finite(lr) or lr <= 0:
        raise InputError(f"--deploy-lr {lr!r}: must be a finite number > 0")


def deploy_stage(
    ckpt: Mapping[str, Any],
    epochs: int = DEPLOY_EPOCHS,
    seed: int = 0,
    timesteps: int = DEPLOY_TIMESTEPS,
    lr: float = DEPLOY_LR,
    batch_size: int = 64,
    through_time: bool = False,
    input_bits: int | None = None,
    limit_train: int | None = None,
    test_samples: int | None = None,
    progress: bool = True,
    data_dir: Path | str | None = None,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune a noise-trained checkpoint (``train_noise``'s) as the deterministic LIF Loihi runs, at T =
    ``timesteps`` for ``epochs`` epochs (module docstring); return the new SNN checkpoint.

    ``input_bits``: the graded input width to train with (None: :func:`compiler_input_bits`).  Training data:
    the checkpoint's data set, the same ``limit_train`` subset as its noise training unless given (then drawn
    with ``seed``).  Seeded:
    batch order from a generator seeded with ``seed`` (``_fit``); nothing else is random.  Metrics on the first
    ``test_samples`` test images (None: all): ``test_accuracy`` (the deployed float network after the stage),
    ``test_accuracy_before`` (the same network before it: noise-trained weights plus the noise mean),
    ``test_accuracy_stage3`` (the noise-trained network's stage 3 at T, the method's own figure, same seed)
    and the noise training's own metrics under ``noise_metrics``.
    """
    ckpt = validate_checkpoint(dict(ckpt), f"checkpoint ({ckpt.get('model')} on {ckpt.get('dataset')})", "snn")
    snn = ckpt["snn"]
    if snn.get("method") != "noise":
        raise InputError("the deployment stage fine-tunes noise-trained checkpoints (loihic train --method noise)")
    if "deploy_stage" in snn or "deploy_offset" in snn:
        raise InputError("checkpoint already has its noise mean folded into the biases (deployment stage or offset)")
    steps = check_timesteps(timesteps)
    check_deploy_options(epochs, lr, batch_size)
    offset = steady_offset()
    folded = with_offset(ckpt, offset)
    bits = compiler_input_bits(folded) if input_bits is None else int(input_bits)
    start = with_input_bits(folded, bits)  # validates bits
    start = {**start, "snn": {**start["snn"], "timesteps": steps}}
    dataset = str(ckpt["dataset"])
    noise_hp = dict(ckpt.get("hyperparams") or {})
    x_tr, y_tr = load_dataset(dataset, "train", data_dir)
    x_te, y_te = load_dataset(dataset, "test", data_dir)
    if limit_train is None:  # the noise training's own subset (drawn with its seed)
        limit = noise_hp.get("limit_train")
        x_tr, y_tr = subset(x_tr, y_tr, limit, int(ckpt["seed"]))
    else:
        limit = limit_train
        x_tr, y_tr = subset(x_tr, y_tr, limit, seed)
    if test_samples is not None:
        x_te, y_te = x_te[:test_samples], y_te[:test_samples]
    record = {
        "epochs": int(epochs),
        "seed": int(seed),
        "timesteps": steps,
        "lr": float(lr),
        "batch_size": int(batch_size),
        "offset_init": float(offset),
        "input_bits": bits,
        "gradient": "bptt (through time)" if through_time else "per step (V(t-1) detached, no BPTT)",
        "trained": "weights and biases",
        "loss": "mse-one-hot (output spikes averaged over T)",
        "surrogate_a": float(noise_hp.get("surrogate_a", 3.0)),
        "limit_train": limit,
        "train_samples": len(x_tr),
    }
    hyperparams = {
        "method": "noise-deploy",
        "epochs": int(epochs),
        "lr": float(lr),
        "batch_size": int(batch_size),
        "t_max": int(epochs),  # one cosine period over the stage
    }
    network = ann_network(start, weights=False)
    run = _Setup(str(ckpt["model"]), dataset, int(ckpt["num_classes"]), network, x_tr, y_tr, x_te, y_te, hyperparams)
    levels = input_scale(start["snn"]["encoding"])
    a = record["surrogate_a"]

    def forward(prefix: Sequence[nn.Module], stages: Sequence[Stage], x: torch.Tensor) -> torch.Tensor:
        return _forward_bptt(prefix, stages, x, steps, a, levels, through_time)

    def make(state: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {
            **start,
            "state_dict": state,
            "hyperparams": {**noise_hp, "deploy_stage": record},
            "metrics": {},
            "snn": {**start["snn"], "deploy_stage": record},
        }

    out, loss = _fit(run, forward, make, seed, progress, on_epoch, init_state=start["state_dict"])
    out["metrics"] = {
        "test_accuracy": evaluate_noise(out, x_te, y_te, steps, "lif", seed=seed),
        "test_accuracy_before": evaluate_noise(start, x_te, y_te, steps, "lif", seed=seed),
        "test_accuracy_stage3": evaluate_noise(ckpt, x_te, y_te, steps, "3", seed=seed),
        "train_loss": float(loss),
        "test_samples": len(x_te),
        "timesteps": steps,
        "noise_metrics": dict(ckpt.get("metrics") or {}),
    }
    return validate_checkpoint(out, f"deployment stage of {ckpt['model']} on {dataset}", "snn")
