"""STDB training: checks, derived seeds, the learning-rate schedule, resumable epochs."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from loihic.compiler.encoding import encode
from loihic.compiler.errors import CheckpointError, InputError
from loihic.compiler.fileio import file_sha256
from loihic.compiler.ir import RESETS
from loihic.compiler.load.checkpoint import ann_network
from loihic.training.checkpoint import CREATED_BY, load_checkpoint, save_checkpoint, validate_checkpoint
from loihic.training.distributed import world
from loihic.training.snn import evaluate_snn
from loihic.training.stdb.network import (
    _SEED_TAG,
    DATASET_LR,
    DEFAULT_ALPHA,
    DEFAULT_BATCH_SIZE,
    DEFAULT_BETA,
    DEFAULT_LR,
    DEFAULT_WEIGHT_DECAY,
    LAST_SPIKE_INIT,
    SCHEDULES,
    STEP_MILESTONES,
    STDBNetwork,
)


# --- checks -------------------------------------------------------------------------------------------
def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise InputError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def _load_init(init: Mapping[str, Any] | Path | str) -> tuple[dict[str, Any], str, str | None]:
    """``(checkpoint, where, sha256 or None)``; raises CheckpointError unless it is a converted SNN."""
    if isinstance(init, (str, Path)):
        ckpt, where, sha = load_checkpoint(init), str(init), file_sha256(init)
    elif isinstance(init, Mapping):
        where = f"init checkpoint ({init.get('model')} on {init.get('dataset')})"
        ckpt, sha = validate_checkpoint(dict(init), where), None
    else:
        raise InputError(f"init checkpoint must be a path or a checkpoint dict, got {type(init).__name__}")
    if ckpt["kind"] == "snn" and ckpt["snn"].get("neuron") == "sdnn":
        raise CheckpointError(f"{where}: is a sigma-delta checkpoint; STDB fine-tunes a rate-coded LIF SNN")
    if ckpt["kind"] != "snn":
        raise CheckpointError(
            f"{where}: is an {ckpt['kind'].upper()} checkpoint; STDB fine-tunes a converted "
            f"SNN (run 'loihic convert' first)"
        )
    snn = ckpt["snn"]
    if snn.get("output", "integrator") != "integrator":
        raise CheckpointError(
            f"{where}: has a spiking output layer; STDB needs a converted SNN with the "
            f"integrator readout (Datta et al. eq. 5)"
        )
    if "norm" not in snn:
        raise CheckpointError(
            f"{where}: is not a converted SNN (no threshold-balancing record 'norm', method "
            f"{snn.get('method', '?')!r}); STDB starts from 'loihic convert' output"
        )
    return ckpt, where, sha


def _check_data(x: np.ndarray, y: np.ndarray, ckpt: Mapping[str, Any], what: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y)
    shape = tuple(ckpt["input_shape"])
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape or len(x) == 0 or len(y) != len(x):
        raise InputError(
            f"{what} data has shape {x.shape} with {len(y)} labels, expected (N > 0, "
            f"{', '.join(map(str, shape))}) and N labels"
        )
    if y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= ckpt["num_classes"]:
        raise InputError(f"{what} labels must be integers in [0, {ckpt['num_classes']})")
    return x, y.astype(np.int64)


# --- seeds and schedule -------------------------------------------------------------------------------
def derived_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed from ``(seed, keys...)``: independent streams per epoch / batch / purpose."""
    return int(np.random.SeedSequence([_SEED_TAG, seed, *keys]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def lr_at(schedule: str, lr: float, epochs: int, steps: int, epoch: int, step: int) -> float:
    """Learning rate for batch ``step`` of ``epoch`` (both 0-based) out of ``epochs`` x ``steps``.

    cosine: ``lr (1 + cos(pi i / n)) / 2``, i the global batch index, n = epochs x steps (as ann.py's
    CosineAnnealingLR); step: Rathi's ``lr / 10`` at the start of each epoch ``int(f * epochs)`` (1-based),
    f in :data:`STEP_MILESTONES`; constant: ``lr``.
    """
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * (epoch * steps + step) / (epochs * steps)))
    if schedule == "step":
        milestones = {int(f * epochs) for f in STEP_MILESTONES}
        return lr * 0.1 ** sum(1 for m in milestones if 1 <= m <= epoch + 1)
    return lr


def _optimizer_state(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """Adam's state dict with string keys (checkpoints hold plain data only)."""
    sd = opt.state_dict()
    state = {
        str(k): {name: (v.detach().clone() if isinstance(v, torch.Tensor) else v) for name, v in s.items()}
        for k, s in sd["state"].items()
    }
    return {"state": state, "param_groups": [dict(g) for g in sd["param_groups"]]}


def _load_optimizer_state(opt: torch.optim.Optimizer, saved: Mapping[str, Any]) -> None:
    opt.load_state_dict(
        {
            "state": {int(k): dict(v) for k, v in saved["state"].items()},
            "param_groups": [dict(g) for g in saved["param_groups"]],
        }
    )


# --- training -----------------------------------------------------------------------------------------
_RESUME_KEYS = (
    "timesteps",
    "reset",
    "leak",
    "alpha",
    "beta",
    "lr",
    "weight_decay",
    "schedule",
    "batch_size",
    "seed",
    "epochs",
    "train_samples",
    "threshold_scale",
)


def train_stdb(
    init_ckpt: Mapping[str, Any] | Path | str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    timesteps: int,
    epochs: int,
    seed: int,
    lr: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
    reset: str = "hard",
    batch_size: int = DEFAULT_BATCH_SIZE,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    progress: bool = True,
    resume: Mapping[str, Any] | Path | str | None = None,
    *,
    threshold_scale: float = 1.0,
    leak: float | None = None,
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
    schedule: str = "cosine",
    device: str | torch.device = "cpu",
    checkpoint_path: Path | str | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune a converted SNN with STDB (module docstring) and return the new "snn" checkpoint dict.

    ``init_ckpt``: converted SNN (dict or file).  ``timesteps`` T of training (and of the result);
    ``epochs`` the total number of epochs; ``lr`` None: :data:`DATASET_LR` for the init's data set, else
    :data:`DEFAULT_LR`; ``alpha``/``beta`` of eq. 12; ``reset`` "hard" (Lava) or "soft" (the paper);
    ``leak`` lambda of eq. 2 (None: the init's); ``threshold_scale`` multiplies the init's thresholds
    (ignored on resume: the resumed thresholds are used); ``x_test``/``y_test``: evaluated (float SNN,
    ``evaluate_snn`` with ``seed``) before training and after every epoch.  ``resume``: a checkpoint this
    function wrote (e.g. ``checkpoint_path``, saved after every epoch) whose settings equal these; training
    continues after its last epoch.  ``on_epoch`` receives the checkpoint after each epoch.
    """
    init, where, init_sha = _load_init(init_ckpt)
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise InputError(f"timesteps must be an integer >= 1, got {timesteps}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InputError(f"epochs must be an integer >= 1, got {epochs}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be an integer >= 1, got {batch_size}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {seed}")
    alpha, beta = _positive("alpha", alpha), _positive("beta", beta)
    lr = _positive("lr", DATASET_LR.get(init["dataset"], DEFAULT_LR) if lr is None else lr)
    threshold_scale = _positive("threshold_scale", threshold_scale)
    if reset not in RESETS:
        raise InputError(f"reset '{reset}' is not one of {', '.join(RESETS)}")
    if schedule not in SCHEDULES:
        raise InputError(f"schedule '{schedule}' is not one of {', '.join(SCHEDULES)}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise InputError(f"weight_decay must be a finite number >= 0, got {weight_decay}")
    leak = float(init["snn"]["leak"] if leak is None else leak)
    if not (math.isfinite(leak) and 0.0 <= leak <= 1.0):
        raise InputError(f"leak {leak} is outside [0, 1]")
    x_train, y_train = _check_data(x_train, y_train, init, "training")
    if (x_test is None) != (y_test is None):
        raise InputError("give both x_test and y_test, or neither")
    if x_test is not None:
        x_test, y_test = _check_data(x_test, y_test, init, "test")

    settings = {
        "timesteps": timesteps,
        "reset": reset,
        "leak": leak,
        "alpha": alpha,
        "beta": beta,
        "lr": lr,
        "weight_decay": float(weight_decay),
        "schedule": schedule,
        "batch_size": batch_size,
        "seed": seed,
        "epochs": epochs,
        "train_samples": len(x_train),
        "threshold_scale": threshold_scale,
    }
    thresholds = [None if t is None else t * threshold_scale for t in init["snn"]["thresholds"]]
    state_dict = init["state_dict"]
    history: dict[str, list[float]] = {"loss": [], "train_accuracy": [], "test_accuracy": [], "seconds": []}
    test_init = None
    saved_opt = None
    if resume is not None:
        res, rwhere, _ = _load_init(resume)
        st = res.get("stdb")
        if res["snn"].get("method") != "stdb" or not isinstance(st, dict) or "optimizer_state" not in st:
            raise CheckpointError(f"{rwhere}: is not an STDB checkpoint with optimizer state; cannot resume")
        if res["layers"] != init["layers"] or res["input_shape"] != init["input_shape"]:
            raise CheckpointError(f"{rwhere}: its layers differ from the init checkpoint's ({where})")
        for key in _RESUME_KEYS:
            if st.get(key) != settings[key]:
                raise InputError(
                    f"cannot resume {rwhere}: {key} = {settings[key]!r} but it was trained with {key} = {st.get(key)!r}"
                )
        if not 0 < st["epochs_done"] < epochs:
            raise InputError(f"cannot resume {rwhere}: it has trained {st['epochs_done']} of {epochs} epochs")
        thresholds, state_dict = list(res["snn"]["thresholds"]), res["state_dict"]
        history = {k: list(v) for k, v in st["history"].items()}
        test_init, saved_opt = st.get("test_accuracy_init"), st["optimizer_state"]
    start_epoch = len(history["loss"])

    def checkpoint(model: STDBNetwork, opt: torch.optim.Optimizer) -> dict[str, Any]:
        snn = {
            **init["snn"],
            "thresholds": list(thresholds),
            "timesteps": timesteps,
            "reset": reset,
            "leak": leak,
            "method": "stdb",
        }
        if threshold_scale != 1.0 or "threshold_scale" in init["snn"]:
            snn["threshold_scale"] = init["snn"].get("threshold_scale", 1.0) * threshold_scale
        metrics = {k: v for k, v in init["metrics"].items() if not k.startswith("stdb_")}
        metrics["stdb_train_loss"] = history["loss"][-1] if history["loss"] else math.nan
        if history["test_accuracy"]:
            metrics["stdb_test_accuracy"] = history["test_accuracy"][-1]
        out = {k: v for k, v in init.items() if k not in ("snn", "stdb")}
        out.update(
            created_by=CREATED_BY,
            metrics=metrics,
            snn=snn,
            state_dict={k: v.detach().cpu().clone() for k, v in model.net.state_dict().items()},
            stdb={
                **settings,
                "epochs_done": len(history["loss"]),
                "init_sha256": init_sha,
                "init_timesteps": init["snn"]["timesteps"],
                "init_reset": init["snn"]["reset"],
                "init_thresholds": list(init["snn"]["thresholds"]),
                "optimizer": "adam (amsgrad)",
                "surrogate": "alpha * exp(-beta * dt) (Datta et al. eq. 12)",
                "last_spike_init": LAST_SPIKE_INIT,
                "test_accuracy_init": test_init,
                "history": {k: list(v) for k, v in history.items()},
                "optimizer_state": _optimizer_state(opt),
            },
        )
        validate_checkpoint(out, f"STDB checkpoint ({init['model']} on {init['dataset']})", "snn")
        return out

    def test_accuracy(ckpt: Mapping[str, Any]) -> float:
        return evaluate_snn(ckpt, x_test, y_test, seed=seed)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed(seed, 0))
        network = ann_network(init, weights=False, source=where)
        model = STDBNetwork(network, state_dict, thresholds, leak, reset, init["snn"]["encoding"], alpha, beta).to(
            device
        )
        w = world(device)  # torchrun: one slice of every batch per rank, gradients averaged (training/distributed.py)
        train_model = w.wrap(model)
        progress = progress and w.main
        opt = torch.optim.Adam(model.net.parameters(), lr=lr, amsgrad=True, weight_decay=weight_decay)
        if saved_opt is not None:
            _load_optimizer_state(opt, saved_opt)
        ckpt = checkpoint(model, opt)
        if x_test is not None and resume is None:
            test_init = test_accuracy(ckpt)
        steps = math.ceil(len(x_train) / batch_size)
        encoding = init["snn"]["encoding"]
        yt = torch.from_numpy(y_train)
        ebar = tqdm(
            range(start_epoch, epochs),
            desc=f"stdb {init['model']}/{init['dataset']} T={timesteps}",
            unit="epoch",
            file=sys.stderr,
            disable=not progress,
            initial=start_epoch,
            total=epochs,
        )
        for epoch in ebar:
            t0 = time.perf_counter()
            model.train()
            order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(derived_seed(seed, epoch)))
            total, correct = 0.0, 0
            bbar = tqdm(
                range(steps),
                desc=f"epoch {epoch + 1}",
                unit="batch",
                file=sys.stderr,
                leave=False,
                disable=not progress,
            )
            for b in bbar:
                idx = w.shard(order[b * batch_size : (b + 1) * batch_size])
                spikes = encode(x_train[idx.numpy()], timesteps, encoding, derived_seed(seed, epoch, b, 1))
                gen = torch.Generator().manual_seed(derived_seed(seed, epoch, b, 2))
                for group in opt.param_groups:
                    group["lr"] = lr_at(schedule, lr, epochs, steps, epoch, b)
                target = yt[idx].to(device)
                opt.zero_grad(set_to_none=True)
                out = train_model(torch.from_numpy(spikes), generator=gen)
                loss = F.cross_entropy(out, target)  # eqs. 6-8
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                correct += int((out.detach().argmax(dim=1) == target).sum())
                bbar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            bbar.close()
            history["seconds"].append(time.perf_counter() - t0)
            history["loss"].append(w.total(total) / len(x_train))
            history["train_accuracy"].append(w.total(correct) / len(x_train))
            model.eval()
            ckpt = checkpoint(model, opt)
            if x_test is not None:
                history["test_accuracy"].append(test_accuracy(ckpt))
                ckpt = checkpoint(model, opt)
            postfix = {"loss": f"{history['loss'][-1]:.4f}", "train": f"{history['train_accuracy'][-1]:.3f}"}
            if history["test_accuracy"]:
                postfix["test"] = f"{history['test_accuracy'][-1]:.3f}"
            ebar.set_postfix(postfix)
            if checkpoint_path is not None and w.main:
                save_checkpoint(checkpoint_path, ckpt, force=True)
            if on_epoch is not None:
                on_epoch(ckpt)
        ebar.close()
    return ckpt


def train_stdb_on_dataset(
    init_path: Path | str,
    timesteps: int,
    epochs: int,
    seed: int,
    dataset: str | None = None,
    limit_train: int | None = None,
    data_dir: Path | str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`train_stdb` on the training split of the init's data set, evaluated on its test split.

    ``dataset`` (the CLI's ``--dataset``), when given, must be the one the init was trained on;
    ``limit_train`` keeps a seeded random subset of the training set (``data.subset``).  Other keyword
    arguments go to :func:`train_stdb`.
    """
    from loihic.training.data import load_dataset, subset

    init, where, _ = _load_init(init_path)
    if dataset is not None and init["dataset"] and dataset != init["dataset"]:
        raise InputError(f"--dataset {dataset} differs from the data set of {where} ({init['dataset']})")
    name = init["dataset"] or dataset  # an imported model (torch.export) records none: --dataset names it
    if not name:
        raise InputError(f"{where}: records no data set; pass --dataset NAME or --data X.npy --labels Y.npy")
    x_tr, y_tr = load_dataset(name, "train", data_dir)
    x_te, y_te = load_dataset(name, "test", data_dir)
    x_tr, y_tr = subset(x_tr, y_tr, limit_train, seed)
    return train_stdb(init_path, x_tr, y_tr, timesteps, epochs, seed, x_test=x_te, y_test=y_te, **kwargs)
