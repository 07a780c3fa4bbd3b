"""``loihic train``: ann (constrained ANN), noise (T=1 with noise, Jiang & Zhang), bptt (surrogate-gradient BPTT
at T, the noise method's baseline) and stdb (Datta et al.'s hybrid fine-tuning of a converted SNN); under
torchrun, one rank of a data-parallel job (training/distributed.py)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from loihic.compiler.errors import InputError
from loihic.compiler.fileio import check_output
from loihic.deploy.cli.common import emit
from loihic.training.ann import train_ann
from loihic.training.checkpoint import load_checkpoint, save_checkpoint
from loihic.training.data import load_inputs, load_labels
from loihic.training.distributed import finish, world
from loihic.training.noise import train_bptt, train_noise
from loihic.training.noise.deploy import DEPLOY_TIMESTEPS, check_deploy_options, deploy_stage
from loihic.training.stdb import train_stdb, train_stdb_on_dataset


def cmd_train(args: argparse.Namespace) -> int:
    """``loihic train``; under torchrun one rank of a data-parallel job (training/distributed.py)."""
    world(getattr(args, "device", None))
    try:
        return _cmd_train(args)
    finally:
        finish()


def _cmd_train(args: argparse.Namespace) -> int:
    if args.method == "stdb":
        return cmd_train_stdb(args)
    if args.method == "noise":
        return cmd_train_noise(args)
    if args.method == "bptt":
        return cmd_train_bptt(args)

    dataset = args.dataset or "digits"

    def train() -> dict[str, Any]:
        return train_ann(
            args.model,
            dataset,
            args.epochs,
            args.seed,
            lr=args.lr,
            batch_size=args.batch_size,
            hidden=args.hidden,
            bias=args.bias,
            limit_train=args.limit_train,
        )

    return _train_and_save(
        args,
        train,
        {"dataset": dataset, "epochs": args.epochs},
        lambda acc: f"{args.model} on {dataset}, test accuracy {acc:.2f}%",
    )


def cmd_train_stdb(args: argparse.Namespace) -> int:
    """``loihic train --method stdb --init snn.pt``: STDB fine-tuning (training/stdb/)."""
    if not args.init:
        raise InputError("--method stdb needs --init SNN.pt (a 'loihic convert' output)")
    if args.timesteps is None or args.timesteps < 1:
        raise InputError(f"--timesteps must be >= 1 for --method stdb, got {args.timesteps}")
    if args.epochs < 1:
        raise InputError(f"--epochs must be >= 1, got {args.epochs}")
    out = check_output(args.output, args.force)
    t0 = time.perf_counter()
    train_fn: Any = train_stdb_on_dataset
    data_args: dict[str, Any] = {"dataset": args.dataset, "limit_train": args.limit_train}
    if args.data is not None or args.labels is not None:  # the user's own training data
        if args.data is None or args.labels is None or args.dataset is not None:
            raise InputError("--method stdb: pass --data X.npy with --labels Y.npy, or --dataset NAME, not both")
        init = load_checkpoint(args.init, "snn")
        x_tr = load_inputs(args.data, tuple(init["input_shape"]), "training inputs")
        y_tr = load_labels(args.labels, len(x_tr), init["num_classes"])

        held = np.random.default_rng(args.seed).permutation(len(x_tr))  # seeded 90/10 split for the report
        cut = len(held) - max(1, len(held) // 10)
        if cut < 1:
            raise InputError(f"{args.data}: {len(x_tr)} samples; STDB needs at least 2 (10% are held out)")

        def train_fn(path, steps, epochs, seed, **kw):  # noqa: ANN001, ANN202
            tr, te = held[:cut], held[cut:]
            return train_stdb(path, x_tr[tr], y_tr[tr], steps, epochs, seed, x_test=x_tr[te], y_test=y_tr[te], **kw)

        data_args = {}
    ckpt = train_fn(
        args.init,
        args.timesteps,
        args.epochs,
        args.seed,
        **data_args,
        lr=args.lr,
        alpha=args.alpha,
        beta=args.beta,
        reset=args.reset,
        batch_size=args.batch_size,
        threshold_scale=args.threshold_scale,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        resume=args.resume,
        device=args.device,
        checkpoint_path=out,
    )  # saved after every epoch
    if not _main_rank():
        return 0
    st = ckpt["stdb"]
    res = {
        "output": str(out),
        "timesteps": args.timesteps,
        "epochs": args.epochs,
        "seed": args.seed,
        "test_accuracy_init": st["test_accuracy_init"],
        "test_accuracy": st["history"]["test_accuracy"][-1],
        "seconds_per_epoch": st["history"]["seconds"],
        "seconds": time.perf_counter() - t0,
    }
    emit(
        args,
        res,
        f"{out}: STDB T={args.timesteps}, test accuracy {100 * st['test_accuracy_init']:.2f}% -> "
        f"{100 * res['test_accuracy']:.2f}%",
    )
    return 0


def _main_rank() -> bool:

    return world().main


def _train_and_save(
    args: argparse.Namespace,
    train: Callable[[], dict[str, Any]],
    extra: dict[str, Any],
    what: Callable[[float], str],
    seconds: dict[str, float] | None = None,
) -> int:
    """What every from-scratch ``loihic train`` method does around its trainer: refuse an existing output
    and a bad epoch count before training, save the checkpoint, report accuracy and time."""

    out = check_output(args.output, args.force)
    if args.epochs < 1:
        raise InputError(f"--epochs must be >= 1, got {args.epochs}")
    t0 = time.perf_counter()
    ckpt = train()
    if not _main_rank():  # torchrun: rank 0 writes the checkpoint and reports (training/distributed.py)
        return 0
    save_checkpoint(out, ckpt, force=args.force)
    acc = ckpt["metrics"]["test_accuracy"]
    for key in ("test_accuracy_before", "test_accuracy_stage3"):  # the noise method's deployment stage
        if key in ckpt["metrics"]:
            extra[key] = ckpt["metrics"][key]
    extra.update(seconds or {})
    res = {
        "output": str(out),
        "model": args.model,
        **extra,
        "seed": args.seed,
        "test_accuracy": acc,
        "seconds": time.perf_counter() - t0,
    }
    emit(args, res, f"{out}: {what(100 * acc)}")
    return 0


def cmd_train_noise(args: argparse.Namespace) -> int:
    """``loihic train --method noise``: T=1 training with noise (training/noise/), then, unless
    ``--deploy-epochs 0``, the deployment stage at ``--timesteps`` (training/noise/deploy.py)."""
    deploy = args.deploy_epochs
    if deploy < 0:
        raise InputError(f"--deploy-epochs {deploy}: must be an integer >= 0 (0: no deployment stage)")
    if deploy:
        check_deploy_options(deploy, args.deploy_lr, args.batch_size)
    steps = args.timesteps if args.timesteps is not None else (DEPLOY_TIMESTEPS if deploy else 1)
    seconds: dict[str, float] = {}

    def train() -> dict[str, Any]:
        t0 = time.perf_counter()
        ckpt = train_noise(
            args.model,
            args.dataset or "digits",
            args.epochs,
            args.seed,
            noise=args.noise,
            noise_mean=args.noise_mean,
            noise_std=args.noise_std,
            noise_clip=not args.no_noise_clip,
            lr=args.lr,
            t_max=args.t_max,
            surrogate_a=args.surrogate_a,
            batch_size=args.batch_size,
            hidden=args.hidden if args.hidden != 128 else None,
            bias=args.bias,
            timesteps=steps,
            limit_train=args.limit_train,
        )
        seconds["noise_seconds"] = time.perf_counter() - t0
        if deploy:
            t0 = time.perf_counter()
            ckpt = deploy_stage(
                ckpt, deploy, args.seed, steps, args.deploy_lr, args.batch_size, limit_train=args.limit_train
            )
            seconds["deploy_seconds"] = time.perf_counter() - t0
        return ckpt

    def what(acc: float) -> str:
        if not deploy:
            return f"noise-trained {args.model}, test accuracy {acc:.2f}% (stage 2, T=1)"
        return (
            f"noise-trained {args.model} + deployment stage ({deploy} epoch(s) at T={steps}): deterministic LIF "
            f"test accuracy {acc:.2f}% (before the stage {100 * extra['test_accuracy_before']:.2f}%; the noise "
            f"network's stage 3 at T={steps}: {100 * extra['test_accuracy_stage3']:.2f}%)"
        )

    extra: dict[str, Any] = {"timesteps": steps, "deploy_epochs": deploy}
    return _train_and_save(args, train, extra, what, seconds)


def cmd_train_bptt(args: argparse.Namespace) -> int:
    """``loihic train --method bptt``: direct surrogate-gradient BPTT at T steps, the noise method's baseline;
    training.noise.train_bptt checks T."""

    steps = 10 if args.timesteps is None else args.timesteps

    def train() -> dict[str, Any]:
        return train_bptt(
            args.model,
            args.dataset or "digits",
            args.epochs,
            args.seed,
            timesteps=steps,
            lr=args.lr,
            t_max=args.t_max,
            surrogate_a=args.surrogate_a,
            batch_size=args.batch_size,
            hidden=args.hidden if args.hidden != 128 else None,
            bias=args.bias,
            limit_train=args.limit_train,
        )

    return _train_and_save(
        args,
        train,
        {"timesteps": steps},
        lambda acc: f"BPTT-trained {args.model} at T={steps}, test accuracy {acc:.2f}% (plain LIF)",
    )
