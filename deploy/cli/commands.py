"""Implementations of the ``loihic`` sub-commands (the Python API the CLI wraps)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from loihic import __version__
from loihic.compiler.config import CompileConfig
from loihic.compiler.errors import InputError, NetxFormatError, NetxInputShapeError, OutputExistsError
from loihic.compiler.fileio import publish
from loihic.compiler.load.checkpoint import network_from_checkpoint
from loihic.compiler.netx.read import NetxModel, read_netx
from loihic.compiler.netx.write import write_netx
from loihic.compiler.pipeline import compile_network
from loihic.compiler.report import format_report, layer_report
from loihic.deploy.emulator.network import DEFAULT_MEMORY_MB, Emulator, LayerOverflow, format_overflow, merge_overflow, predict
from loihic.compiler.encoding import direct_bits


# --- small shared helpers -----------------------------------------------------------------------------
def check_output(path: str | os.PathLike, force: bool) -> Path:
    """Fail before any work if ``path`` exists and --force was not given."""
    p = Path(path)
    if p.exists() and not force:
        raise OutputExistsError(f"{p}: already exists (use --force to overwrite)")
    if p.is_dir():
        raise OutputExistsError(f"{p}: is a directory")
    return p


def emit(args: argparse.Namespace, result: dict[str, Any], text: str) -> None:
    """``--json``: one JSON object on stdout; otherwise the human-readable text."""
    if getattr(args, "json", False):
        print(json.dumps(result, default=_jsonable, sort_keys=True))
    else:
        print(text)


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def write_atomically(path: Path, write: Callable[[str], None], suffix: str) -> Path:
    """``write(tmp)`` into a temp file next to ``path``, then publish it as ``path`` (all or nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)  # as write_netx and save_checkpoint do
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent or ".")
    os.close(fd)
    try:
        write(tmp)
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_npy(path: Path, array: np.ndarray) -> None:
    write_atomically(path, lambda tmp: np.save(tmp, array), ".npy")


def is_netx(path: str) -> bool:
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected a checkpoint or netx file")
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    return h5py.is_hdf5(p)


def check_options(args: argparse.Namespace) -> None:
    """Refuse counts below 1 and a --device torch cannot use, before any work (0 would mean 'default')."""
    for dest in ("timesteps", "samples", "calib_samples", "workers"):
        value = getattr(args, dest, None)
        if value is not None and value < 1:
            raise InputError(f"--{dest.replace('_', '-')} must be >= 1, got {value}")
    memory = getattr(args, "emulator_memory", None)
    if memory is not None and not (memory > 0 and np.isfinite(memory)):
        raise InputError(f"--emulator-memory must be a number of MB > 0, got {memory}")
    name = getattr(args, "device", None)
    if name is None:
        return
    import torch

    try:
        dev = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name!r} is not a torch device (expected cpu or cuda[:N])") from None
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"--device {name!r}: only cpu and cuda[:N] are supported")
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise InputError(f"--device {name!r}: no such CUDA device on this machine (use --device cpu)")


def message_bits(model: NetxModel, override: int | None = None) -> int:
    if override is not None:
        if not 0 <= override <= 24:
            raise InputError(f"--input-message-bits {override} outside [0, 24]")
        return override
    return direct_bits(str(model.meta.get("encoding", "poisson")))


def netx_run_settings(model: NetxModel, dataset: str | None, timesteps: int | None) -> tuple[str | None, int, str]:
    """Data set (None when neither given nor recorded), T and encoding for a netx file: options first,
    then the file's loihic metadata."""
    ds = dataset or model.meta.get("dataset") or None
    steps = timesteps or model.meta.get("timesteps")
    if not steps or steps < 1:
        raise InputError(f"{model.path}: records no timesteps; pass --timesteps T >= 1")
    compiled_t = model.meta.get("timesteps")
    if compiled_t and steps > compiled_t:
        print(f"loihic: warning: running {steps} steps; range checks assumed T={compiled_t}", file=sys.stderr)
    return ds, int(steps), str(model.meta.get("encoding", "poisson"))


def encoded(x: np.ndarray, steps: int, encoding: str, seed: int) -> np.ndarray:
    from loihic.training.snn import encode_chunks

    return np.concatenate([s for _, s in encode_chunks(x, steps, encoding, seed)])


def emulator_accuracy(
    model: NetxModel,
    x: np.ndarray,
    y: np.ndarray,
    steps: int,
    encoding: str,
    seed: int,
    device: str | None = None,
    progress: bool = True,
    memory_mb: float = DEFAULT_MEMORY_MB,
    overflow_out: list[LayerOverflow] | None = None,
) -> float:
    """Accuracy of the netx model on the emulator, encoding with the shared chunk rule.  With a list as
    ``overflow_out``, the overflow monitor runs and the list receives its per-layer totals."""
    from tqdm import tqdm

    from loihic.training.snn import encode_chunks

    emu = Emulator(model, device=device, input_message_bits=message_bits(model), memory_mb=memory_mb)
    correct, totals = 0, None
    bar = tqdm(total=len(x), desc="emulator", unit="sample", disable=not progress, leave=False)
    for start, spikes in encode_chunks(x, steps, encoding, seed):
        res = emu.run(spikes, check_overflow=overflow_out is not None)
        totals = merge_overflow(totals, res.overflow)
        pred = predict(res.output_spikes, res.output_v, emu.output_spiking)
        correct += int((pred == y[start : start + len(spikes)]).sum())
        bar.update(len(spikes))
    bar.close()
    if overflow_out is not None:
        overflow_out[:] = totals or []
    return correct / len(x)


def run_data(
    args: argparse.Namespace,
    where: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    dataset: str | None,
    need_labels: bool = True,
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """``(x, y, what)`` for evaluate / verify: ``--data X.npy [--labels Y.npy]`` or a named data set's test
    split (``--dataset``, else the one ``where`` records), first ``--samples`` only."""
    from loihic.training.data import load_inputs, load_labels

    samples = getattr(args, "samples", None)
    data, labels = getattr(args, "data", None), getattr(args, "labels", None)
    if data is None:
        if labels is not None:
            raise InputError("--labels needs --data X.npy (the inputs they label)")
        if not dataset:
            raise InputError(f"{where}: records no data set; pass --dataset NAME or --data X.npy --labels Y.npy")
        x, y = _test_set(dataset, samples)
        if tuple(x.shape[1:]) != tuple(input_shape):
            raise InputError(f"--dataset {dataset}: inputs of shape {x.shape[1:]}, {where} takes {input_shape}")
        return x, y, dataset
    if getattr(args, "dataset", None):
        raise InputError("--data and --dataset are alternatives; pass one")
    if need_labels and labels is None:
        raise InputError("--data needs --labels Y.npy (integer class labels, one per sample)")
    x = load_inputs(data, tuple(input_shape))
    y = None if labels is None else load_labels(labels, len(x), num_classes)
    if samples is not None:
        x, y = x[:samples], (None if y is None else y[:samples])
    return x, y, str(data)


def netx_accuracy(
    model: NetxModel,
    x: np.ndarray,
    y: np.ndarray,
    steps: int,
    encoding: str,
    seed: int,
    backend: str = "emulator",
    workers: int = 1,
    device: str | None = None,
    ray_address: str | None = None,
    memory_mb: float = DEFAULT_MEMORY_MB,
    overflow_out: list[LayerOverflow] | None = None,
) -> float:
    """Accuracy of a netx file on real inputs ``x`` (encoded with the shared chunk rule) on the emulator or
    Lava (``ray_address``: sharded over Ray, deploy/scale/ray_lava.py).  ``overflow_out``: emulator only,
    see :func:`emulator_accuracy`."""
    if backend == "emulator":
        if ray_address is not None:
            raise InputError("--ray shards Lava runs; use it with --backend lava-sim")
        return emulator_accuracy(
            model, x, y, steps, encoding, seed, device, memory_mb=memory_mb, overflow_out=overflow_out
        )
    if overflow_out is not None:
        raise InputError("--check-overflow counts on the emulator; use --backend emulator")
    from loihic.deploy.lava.run import run_lava_parallel

    run = run_lava_parallel
    if ray_address is not None:
        from loihic.deploy.scale.ray_lava import run_lava_ray

        run = lambda p, xs, workers, **kw: run_lava_ray(p, xs, address=ray_address, **kw)  # noqa: E731
    emu = Emulator(model, device="cpu", input_message_bits=message_bits(model))
    res = run(
        model.path,
        encoded(x, steps, encoding, seed),
        workers=workers,
        backend=backend,
        input_message_bits=message_bits(model),
        read_v=not emu.output_spiking,
        model=model,
    )
    return float((predict(res.output_spikes, res.output_v, emu.output_spiking) == y).mean())


def _test_set(dataset: str, samples: int | None) -> tuple[np.ndarray, np.ndarray]:
    from loihic.training.data import load_dataset

    x, y = load_dataset(dataset, "test")
    if samples is not None:
        if samples < 1:
            raise InputError(f"--samples must be >= 1, got {samples}")
        x, y = x[:samples], y[:samples]
    return x, y


# --- train / convert / compile ---------------------------------------------------------------------
def cmd_train_stdb(args: argparse.Namespace) -> int:
    """``loihic train --method stdb --init snn.pt``: STDB fine-tuning (training/stdb.py)."""
    from loihic.training.stdb import train_stdb_on_dataset

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
        from loihic.training.checkpoint import load_checkpoint
        from loihic.training.data import load_inputs, load_labels
        from loihic.training.stdb import train_stdb

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
    from loihic.training.distributed import world

    return world().main


def _train_and_save(
    args: argparse.Namespace, train: Callable[[], dict[str, Any]], extra: dict[str, Any], what: Callable[[float], str]
) -> int:
    """What every from-scratch ``loihic train`` method does around its trainer: refuse an existing output
    and a bad epoch count before training, save the checkpoint, report accuracy and time."""
    from loihic.training.checkpoint import save_checkpoint

    out = check_output(args.output, args.force)
    if args.epochs < 1:
        raise InputError(f"--epochs must be >= 1, got {args.epochs}")
    t0 = time.perf_counter()
    ckpt = train()
    if not _main_rank():  # torchrun: rank 0 writes the checkpoint and reports (training/distributed.py)
        return 0
    save_checkpoint(out, ckpt, force=args.force)
    acc = ckpt["metrics"]["test_accuracy"]
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
    """``loihic train --method noise``: T=1 training with noise (training/noise.py)."""
    from loihic.training.noise import train_noise

    def train() -> dict[str, Any]:
        return train_noise(
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
            timesteps=args.timesteps or 1,
            limit_train=args.limit_train,
        )

    return _train_and_save(
        args, train, {}, lambda acc: f"noise-trained {args.model}, test accuracy {acc:.2f}% (stage 2, T=1)"
    )


def cmd_train_bptt(args: argparse.Namespace) -> int:
    """``loihic train --method bptt``: direct surrogate-gradient BPTT at T steps, the noise method's baseline;
    training.noise.train_bptt checks T."""
    from loihic.training.noise import train_bptt

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


def cmd_train(args: argparse.Namespace) -> int:
    """``loihic train``; under torchrun one rank of a data-parallel job (training/distributed.py)."""
    from loihic.training.distributed import finish, world

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
    from loihic.training.ann import train_ann

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


def parse_floats(text: str | None, option: str) -> list[float] | None:
    """``"0.1307"`` or ``"0.485,0.456,0.406"`` -> floats (for --input-mean / --input-std)."""
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"{option} {text!r}: expected a number or comma-separated numbers, one per channel") from None


def calibration_data(ann: dict[str, Any], calib: str | None, dataset: str | None, source: str) -> np.ndarray:
    """Conversion inputs: the user's ``--calib X.npy`` or a named data set's training split."""
    from loihic.training.data import load_dataset, load_inputs

    shape = tuple(ann["input_shape"])
    if calib is not None:
        if dataset is not None:
            raise InputError("--calib and --dataset are alternatives; pass one")
        return load_inputs(calib, shape, "calibration inputs")
    name = dataset or ann.get("dataset")
    if not name:
        raise InputError(
            f"{source}: needs calibration data: --calib X.npy (inputs of shape (N, {', '.join(map(str, shape))}) "
            "in [0, 1], e.g. a few hundred training samples) or --dataset NAME"
        )
    x, _ = load_dataset(name, "train")
    if tuple(x.shape[1:]) != shape:
        raise InputError(f"--dataset {name}: inputs of shape {x.shape[1:]}, the model takes {shape}")
    return x


def cmd_convert(args: argparse.Namespace) -> int:
    from loihic.training.checkpoint import file_sha256, save_checkpoint
    from loihic.training.convert import convert
    from loihic.training.imported import load_ann

    check_options(args)
    out = check_output(args.output, args.force)
    mean, std = parse_floats(args.input_mean, "--input-mean"), parse_floats(args.input_std, "--input-std")
    ann = load_ann(args.checkpoint, mean, std)
    if ann.get("kind") != "ann":
        raise InputError(f"{args.checkpoint}: is a '{ann.get('kind')}' checkpoint; convert needs an ANN")
    x_train = calibration_data(ann, args.calib, args.dataset, args.checkpoint)

    snn = convert(
        ann,
        x_train,
        args.timesteps,
        norm=args.norm,
        reset=args.reset,
        leak=args.leak,
        encoding=args.encoding,
        seed=args.seed,
        calib_samples=args.calib_samples,
        source_sha256=file_sha256(args.checkpoint),
    )
    save_checkpoint(out, snn, force=args.force)
    th = snn["snn"]["thresholds"]
    res = {"output": str(out), "thresholds": th, "timesteps": args.timesteps, "norm": args.norm, "seed": args.seed}
    emit(args, res, f"{out}: thresholds {', '.join(f'{t:.4g}' for t in th if t is not None)} at T={args.timesteps}")
    return 0


def hard_reset_effect(ckpt: dict[str, Any], samples: int, seed: int) -> dict[str, Any]:
    """Float accuracy of a soft-reset SNN as trained and as Loihi runs it (hard reset), same spikes."""
    from loihic.training.snn import evaluate_snn

    x, y = _test_set(ckpt["dataset"], samples)
    hard = {**ckpt, "snn": {**ckpt["snn"], "reset": "hard"}}
    return {
        "samples": int(len(x)),
        "seed": seed,
        "accuracy_soft": evaluate_snn(ckpt, x, y, seed=seed),
        "accuracy_hard": evaluate_snn(hard, x, y, seed=seed),
    }


LOW_SQNR_DB = 20.0  # below this a layer's quantized weights are a poor copy (about 10% rms error)


def compile_checkpoint(
    path: str | dict[str, Any],
    output: str | os.PathLike,
    cfg: CompileConfig,
    force: bool = False,
    effect_samples: int = 500,
    seed: int = 0,
    offset: str | None = None,
    default_offset: bool = False,
) -> tuple[Path, list[dict]]:
    """SNN checkpoint (file, or dict from the Python API) -> netx file; returns the path and the per-layer
    report.  ``default_offset`` (the CLI's and the API's default): a noise-trained SNN without ``offset``
    deploys with ``offset="auto"``."""
    from loihic.compiler.load.pt2 import is_pt2
    from loihic.training.checkpoint import file_sha256, load_checkpoint, validate_checkpoint

    out = check_output(output, force)
    if isinstance(path, dict):
        ckpt, sha = path, None
        validate_checkpoint(ckpt, "checkpoint", "snn")
        path = f"<{ckpt['model']} SNN checkpoint>"
    else:
        if Path(path).is_file() and is_pt2(path):
            raise InputError(
                f"{path}: is a torch.export program (an ANN); convert it first: "
                f"loihic convert {path} --calib X.npy -T 64 -o snn.pt"
            )
        ckpt, sha = load_checkpoint(path), file_sha256(path)
    if offset is None and default_offset and ckpt["kind"] == "snn" and ckpt["snn"].get("method") == "noise":
        offset = "auto"  # a noise-trained SNN deploys as plain LIF plus the noise mean (training/noise.py)
        print(
            "loihic: noise-trained SNN: deploying the noise mean as a bias (--offset auto; --offset 0: none)",
            file=sys.stderr,
        )
    if offset is not None:
        from loihic.training.noise import steady_offset, with_offset

        try:
            value = steady_offset() if offset == "auto" else float(offset)
        except ValueError:
            raise InputError(f"--offset {offset!r}: expected 'auto' or a number") from None
        ckpt = with_offset(ckpt, value)
    net = network_from_checkpoint(ckpt, path)
    effect = None
    if cfg.force_hard_reset and ckpt["snn"].get("reset") == "soft" and not ckpt.get("dataset"):
        print(
            "loihic: warning: soft-reset SNN deployed with Lava's hard reset (no data set recorded to measure "
            "the accuracy effect; compare with 'loihic evaluate --data')",
            file=sys.stderr,
        )
    elif cfg.force_hard_reset and ckpt["snn"].get("reset") == "soft":
        effect = hard_reset_effect(ckpt, effect_samples, seed)
        print(
            f"loihic: warning: soft-reset SNN deployed with Lava's hard reset: float accuracy "
            f"{100 * effect['accuracy_soft']:.2f}% (soft) -> {100 * effect['accuracy_hard']:.2f}% (hard) on "
            f"{effect['samples']} test samples",
            file=sys.stderr,
        )
    compiled = compile_network(net, cfg)
    rows = layer_report(compiled)
    first, bits = rows[0], direct_bits(compiled.encoding)
    if compiled.meta.get("input_bits_auto"):
        print(
            f"loihic: input bits: {bits} (auto: the smallest first-layer quantisation error; --input-bits B forces "
            "one)",
            file=sys.stderr,
        )
    elif bits > 1 and first["scale_limited_by"] == "current range" and first["sqnr_db"] < LOW_SQNR_DB:
        print(
            f"loihic: warning: layer '{first['layer']}': weight SQNR {first['sqnr_db']:.1f} dB, its scale limited by "
            f"the 24-bit current range of {bits}-bit graded input x fan-in {first['fan_in']}; fewer input bits "
            f"free weight bits (try --input-bits {min(4, bits - 1)} and compare with 'loihic evaluate')",
            file=sys.stderr,
        )
    meta = {
        "loihic_version": __version__,
        "source_checkpoint": str(path),
        "source_sha256": sha,
        "imported": ckpt.get("imported"),
        "ann_sha256": net.meta.get("source_sha256"),
        "model": net.meta.get("model"),
        "dataset": net.meta.get("dataset"),
        "train_seed": net.meta.get("seed"),
        "conversion": net.meta.get("conversion"),
        "timesteps": compiled.timesteps,
        "encoding": compiled.encoding,
        "input_shape": list(compiled.input.shape),
        "input_message_bits": direct_bits(compiled.encoding),
        "input_bits": compiled.meta.get("input_bits"),
        "input_bits_auto": compiled.meta.get("input_bits_auto", False),
        "input_bits_error": compiled.meta.get("input_bits_error"),
        "layer_scales": {r["layer"]: r["scale"] for r in rows},
        "report": rows,
        "l4": compiled.meta.get("l4"),
        "force_hard_reset": cfg.force_hard_reset,
        "hard_reset_effect": effect,
        "readout": (
            "spike counts of the last layer, argmax"
            if ckpt["snn"].get("output") == "spiking"
            else "v of the last layer (non-spiking integrator), argmax"
        ),
        "offset": offset,
        "method": ckpt["snn"].get("method", "convert"),
    }
    write_netx(compiled, out, meta, force=force)
    return out, rows


def compile_nir(
    path: str | os.PathLike,
    output: str | os.PathLike,
    cfg: CompileConfig,
    timesteps: int | None,
    dt: float | None,
    force: bool = False,
) -> tuple[Path, list[dict]]:
    """NIR graph file -> netx file (compiler/load/nir.py discretises it at ``dt``)."""
    from loihic.compiler.load.nir import DEFAULT_DT, graph_meta, network_from_nir, read_nir
    from loihic.training.checkpoint import file_sha256

    out = check_output(output, force)
    graph = read_nir(path)
    recorded = graph_meta(graph)  # loihic export-nir records T, dt and the encoding
    timesteps = timesteps or int(recorded.get("loihic_timesteps") or 0) or None
    if timesteps is None:
        raise InputError(f"{path}: a NIR graph records no sample length; pass --timesteps T (steps per sample)")
    step = float(dt if dt is not None else recorded.get("dt", DEFAULT_DT))
    encoding = str(recorded.get("loihic_encoding", "poisson"))
    net = network_from_nir(graph, timesteps, step, str(path), encoding)
    compiled = compile_network(net, cfg)
    rows = layer_report(compiled)
    spiking_out = compiled.synaptic()[-1].neuron.spiking
    meta = {
        "loihic_version": __version__,
        "source_nir": str(path),
        "source_sha256": file_sha256(path),
        "front_end": "nir",
        "dt": step,
        "timesteps": compiled.timesteps,
        "encoding": compiled.encoding,
        "input_shape": list(compiled.input.shape),
        "input_message_bits": direct_bits(compiled.encoding),
        "layer_scales": {r["layer"]: r["scale"] for r in rows},
        "report": rows,
        "readout": "spike counts of the last layer, argmax"
        if spiking_out
        else "v of the last layer (non-spiking), argmax",
        "method": "nir",
    }
    write_netx(compiled, out, meta, force=force)
    return out, rows


def cmd_compile(args: argparse.Namespace) -> int:
    from loihic.compiler.load.nir import is_nir

    bits: int | str = args.input_bits
    if bits != "auto":
        try:
            bits = int(bits)
        except ValueError:
            raise InputError(f"--input-bits {bits!r}: expected 'auto' or an integer from 1 to 8") from None
    cfg = CompileConfig(force_hard_reset=args.force_hard_reset, l4=args.l4, l4_rs=args.rs, input_bits=bits)
    final = check_output(args.output, args.force)
    # compile into a hidden file next to the output; it is published only once the target's checks pass
    tmp = final.parent / f".{final.name}.{os.getpid()}.compiling"
    try:
        if Path(args.checkpoint).is_file() and is_nir(args.checkpoint):
            _, rows = compile_nir(args.checkpoint, tmp, cfg, args.timesteps, args.dt, True)
        else:
            if args.timesteps is not None or args.dt is not None:
                raise InputError(
                    f"{args.checkpoint}: --timesteps and --dt apply to NIR graphs; a checkpoint records its T"
                )
            _, rows = compile_checkpoint(
                args.checkpoint, tmp, cfg, True, args.effect_samples, args.seed, args.offset, True
            )
        res = hardware_check(tmp, args.target, args.effect_samples, args.seed)
        publish(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    res.update(output=str(final), layers=rows, seed=args.seed)
    emit(args, res, f"{format_report(rows)}\nwrote {final}")
    return 0


def hardware_check(path: Path, target: str, samples: int, seed: int) -> dict[str, Any]:
    """Resources and hardware-readiness notes of a compiled file (compiler/resources.py).  ``target``
    "loihi2" turns the notes into an error naming the nearest legal settings, with the accuracy effect of
    clamping the decays to 4095 measured on the emulator when the file records a data set."""
    from loihic.compiler.resources import HW_DECAY_MAX, LIMITS_SOURCE, hardware_notes, layer_resources

    model = read_netx(path)
    notes = hardware_notes(model, model.meta.get("timesteps"))
    res = {"resources": layer_resources(model), "limits_source": LIMITS_SOURCE, "hardware_notes": notes}
    if target != "loihi2":
        for n in notes:
            print(f"loihic: note: Loihi 2 hardware: {n['why']}", file=sys.stderr)
        return res
    if not notes:
        return res
    effect = ""
    if any(n["field"] in ("iDecay", "vDecay") for n in notes) and model.meta.get("dataset"):
        clamped = path.with_name(path.name + ".hw")
        try:
            shutil.copyfile(path, clamped)
            with h5py.File(clamped, "r+") as f:
                for key in f["layer"]:
                    g = f["layer"][key]
                    for field in ("iDecay", "vDecay"):
                        if (
                            "neuron" in g
                            and field in g["neuron"]
                            and int(np.asarray(g["neuron"][field][()]).max()) > HW_DECAY_MAX
                        ):
                            g["neuron"][field][...] = np.minimum(g["neuron"][field][()], HW_DECAY_MAX)
            x, y = _test_set(str(model.meta["dataset"]), samples)
            steps, enc = int(model.meta["timesteps"]), str(model.meta.get("encoding", "poisson"))
            before = emulator_accuracy(model, x, y, steps, enc, seed, "cpu", progress=False)
            after = emulator_accuracy(read_netx(clamped), x, y, steps, enc, seed, "cpu", progress=False)
            effect = (
                f" (decays clamped to {HW_DECAY_MAX}: emulator accuracy {100 * before:.2f}% -> {100 * after:.2f}% "
                f"on {len(x)} test samples)"
            )
        finally:
            clamped.unlink(missing_ok=True)
    listed = "; ".join(f"{n['why']} (nearest legal: {n['field']} {n['nearest_legal']})" for n in notes)
    raise InputError(f"--target loihi2: {len(notes)} setting(s) Loihi 2 would reject: {listed}{effect}")


# --- simulate / verify / evaluate ----------------------------------------------------------------------
def _open_npy(path: str, what: str) -> np.ndarray:
    """A .npy array, memory-mapped: only its header is read, and its declared size checked against the file and a
    limit, before anything is allocated; one-line errors naming the file (:func:`loihic.training.data.read_npy`)."""
    from loihic.training.data import read_npy

    return read_npy(path, what)


def parse_input_shape(text: str | None) -> tuple[int, ...] | None:
    """``--input-shape C,H,W`` (or ``N`` for a dense input) as a tuple of positive integers."""
    if text is None:
        return None
    try:
        dims = tuple(int(s) for s in text.split(","))
    except ValueError:
        dims = ()
    if not dims or min(dims) < 1:
        raise InputError(f"--input-shape {text!r}: expected C,H,W (comma-separated positive integers)")
    return dims


def read_net(
    path: str, input_shape: str | None, data_shape: Callable[[], tuple[tuple[int, ...], str] | None]
) -> NetxModel:
    """:func:`read_netx` with the input shape a conv-first file without an 'input' layer needs: ``--input-shape``
    (checked against the file), else the data's (``data_shape()``: its per-sample shape and what it is, or None
    when there is no data; called only for such a file)."""
    given = parse_input_shape(input_shape)
    try:
        return read_netx(path, input_shape=given)
    except NetxInputShapeError:
        found = data_shape()
        if found is None:
            raise
    shape, source = found
    try:
        return read_netx(path, input_shape=shape)
    except NetxFormatError as exc:
        raise NetxFormatError(f"{exc} (the input shape of {source})") from None


def spike_input_shape(path: str) -> tuple[tuple[int, ...], str]:
    """Per-sample (C, H, W) of the spikes ``--input X.npy`` (N, C, H, W, T), from its header."""
    x = _open_npy(path, "input spikes")
    if x.ndim != 5:
        raise InputError(f"{path}: shape {x.shape}; a conv-first network takes spikes (N, C, H, W, T)")
    return tuple(int(s) for s in x.shape[1:-1]), f"--input {path}"


def data_input_shape(args: argparse.Namespace) -> tuple[tuple[int, ...], str] | None:
    """Per-sample (C, H, W) of verify / evaluate's data: ``--data X.npy`` (N, C, H, W), or (N, H, W) for one
    channel, from its header; else ``--dataset NAME``'s; None without either."""
    from loihic.training.data import dataset_info

    if getattr(args, "data", None) is not None:
        x = _open_npy(args.data, "inputs")
        if x.ndim not in (3, 4):
            raise InputError(f"{args.data}: shape {x.shape}; a conv-first network takes images (N, C, H, W)")
        return tuple(int(s) for s in (x.shape[1:] if x.ndim == 4 else (1, *x.shape[1:]))), f"--data {args.data}"
    if getattr(args, "dataset", None):
        return dataset_info(args.dataset).input_shape, f"--dataset {args.dataset}"
    return None


def load_spike_input(path: str, model: NetxModel, bits: int) -> np.ndarray:
    x = _open_npy(path, "input spikes")
    p = Path(path)
    if x.dtype.kind not in "iub":
        raise InputError(f"{p}: dtype {x.dtype}; expected an integer array of spikes")
    want = model.input.shape
    if x.ndim != len(want) + 2 or tuple(x.shape[1:-1]) != want or x.shape[0] < 1 or x.shape[-1] < 1:
        raise InputError(f"{p}: shape {x.shape}; expected (N, {', '.join(map(str, want))}, T)")
    if bits == 0 and ((x != 0) & (x != 1)).any():
        raise InputError(f"{p}: values other than 0/1; binary spikes expected (or set --input-message-bits)")
    if bits > 0 and (x.min() < 0 or x.max() >= (1 << bits)):
        raise InputError(f"{p}: values outside [0, {(1 << bits) - 1}] for {bits}-bit graded input")
    return np.array(x)  # read now, from the memory map whose size was checked


def cmd_simulate(args: argparse.Namespace) -> int:
    check_options(args)
    out = check_output(args.output, args.force)
    vout = check_output(args.voltage, args.force) if args.voltage else None
    if vout is not None and vout.resolve() == out.resolve():
        raise InputError(f"--voltage {vout}: same file as -o; the spikes would be overwritten")
    model = read_net(args.net, args.input_shape, lambda: spike_input_shape(args.input))
    bits = message_bits(model, args.input_message_bits)
    x = load_spike_input(args.input, model, bits)
    overflow = None
    if args.backend == "emulator":
        emu = Emulator(model, device=args.device, input_message_bits=bits, memory_mb=args.emulator_memory)
        res = emu.run(x, check_overflow=args.check_overflow)
        y, v, overflow = res.output_spikes, res.output_v, res.overflow
    else:
        if args.check_overflow:
            raise InputError("--check-overflow counts on the emulator; use --backend emulator")
        from loihic.deploy.lava.run import run_lava

        res = run_lava(args.net, x, backend=args.backend, input_message_bits=bits, read_v=vout is not None, model=model)
        y, v = res.output_spikes, res.output_v
    save_npy(out, y)
    if vout is not None:
        save_npy(vout, v)
    print(f"wrote {out} {y.shape}" + (f" and {vout}" if vout else ""), file=sys.stderr)
    if args.json or overflow is not None:
        result = {"output": str(out), "shape": list(y.shape), "voltage": None if vout is None else str(vout)}
        if overflow is not None:
            result["overflow"] = [o.to_json() for o in overflow]
        emit(args, result, format_overflow(overflow) if overflow is not None else "")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from loihic.deploy.verification.parity import verify

    check_options(args)
    model = read_net(args.net, args.input_shape, lambda: data_input_shape(args))
    dataset, steps, encoding = netx_run_settings(model, args.dataset, args.timesteps)
    x, y, dataset = run_data(args, args.net, model.input.shape, model.output_shape[0], dataset, need_labels=False)
    spikes = encoded(x, steps, encoding, args.seed)
    rep = verify(
        args.net,
        spikes,
        y,
        input_message_bits=message_bits(model),
        backend=args.backend,
        workers=args.workers,
        device=args.device,
        model=model,
        ray_address=args.ray,
        memory_mb=args.emulator_memory,
    )
    res = {**rep.to_json(), "dataset": dataset, "seed": args.seed, "encoding": encoding, "net": args.net}
    verdict = "IDENTICAL" if rep.identical else "MISMATCH"
    text = (
        f"{verdict}: {rep.samples} samples x {steps} steps, {rep.mismatches} of {rep.spikes_compared} "
        f"spikes differ"
        + ("" if rep.voltage_equal is None else f", readout v equal: {rep.voltage_equal}")
        + (
            ""
            if rep.accuracy_emulator is None
            else f"\naccuracy emulator {100 * rep.accuracy_emulator:.2f}%, Lava {100 * rep.accuracy_lava:.2f}%"
        )
        + f"\ntime emulator {rep.emulator_seconds:.2f} s, Lava {rep.lava_seconds:.2f} s"
        + ("" if rep.overflow is None else "\n" + format_overflow(rep.overflow))
    )
    emit(args, res, text)
    if not rep.identical:
        m = rep.first_mismatch
        where = (
            f"layer {m.layer}, sample {m.sample}, neuron {m.neuron}, step {m.step} "
            f"(emulator {m.emulator}, Lava {m.lava})"
            if m
            else "readout voltages"
        )
        print(f"loihic: error: emulator and Lava diverge first at {where}", file=sys.stderr)
        return 1
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from loihic.training.checkpoint import load_checkpoint

    check_options(args)
    netx = is_netx(args.target)
    backend = args.backend or ("emulator" if netx else "torch")
    t0 = time.perf_counter()
    overflow = None
    if not netx:
        if args.check_overflow:
            raise InputError(f"{args.target}: --check-overflow counts on the emulator; it runs netx files")
        if backend != "torch":
            raise InputError(f"{args.target}: backend '{backend}' runs netx files; compile the checkpoint first")
        if args.input_shape is not None:
            raise InputError(f"{args.target}: --input-shape applies to netx files; a checkpoint records its shape")
        from loihic.compiler.load.pt2 import is_pt2

        if is_pt2(args.target):
            from loihic.training.imported import import_torch

            ckpt = import_torch(args.target)
        else:
            ckpt = load_checkpoint(args.target)
        x, y, _ = run_data(
            args, args.target, tuple(ckpt["input_shape"]), ckpt["num_classes"], args.dataset or ckpt["dataset"]
        )
        steps = args.timesteps if ckpt["kind"] == "snn" else None
        is_noise = ckpt["kind"] == "snn" and ckpt["snn"].get("method") == "noise"
        if args.stage is not None and not is_noise:
            raise InputError(f"{args.target}: --stage applies to noise-trained checkpoints only")
        if is_noise:
            from loihic.training.noise import evaluate_noise

            steps = steps or int(ckpt["snn"]["timesteps"])
            acc = evaluate_noise(
                ckpt,
                x,
                y,
                timesteps=steps,
                stage=args.stage or "3",
                alpha=args.alpha,
                beta=args.beta,
                seed=args.seed,
                offset=args.offset,
                progress=True,
            )
        elif ckpt["kind"] == "snn":
            from loihic.training.snn import evaluate_snn

            steps = steps or int(ckpt["snn"]["timesteps"])
            acc = evaluate_snn(ckpt, x, y, timesteps=steps, seed=args.seed, progress=True)
        else:
            from loihic.training.ann import evaluate_ann
            from loihic.training.models import model_from_checkpoint

            acc = evaluate_ann(model_from_checkpoint(ckpt), x, y)
    else:
        if backend == "torch":
            raise InputError(f"{args.target}: is a netx file; use --backend emulator or lava-sim")
        model = read_net(args.target, args.input_shape, lambda: data_input_shape(args))
        dataset, steps, encoding = netx_run_settings(model, args.dataset, args.timesteps)
        x, y, _ = run_data(args, args.target, model.input.shape, model.output_shape[0], dataset)
        overflow = [] if args.check_overflow else None
        acc = netx_accuracy(
            model,
            x,
            y,
            steps,
            encoding,
            args.seed,
            backend,
            args.workers,
            args.device,
            args.ray,
            memory_mb=args.emulator_memory,
            overflow_out=overflow,
        )
    secs = time.perf_counter() - t0
    res = {
        "target": args.target,
        "backend": backend,
        "accuracy": acc,
        "samples": int(len(x)),
        "timesteps": steps,
        "seed": args.seed,
        "seconds": secs,
        "samples_per_second": len(x) / secs,
    }
    text = f"{args.target} [{backend}]: accuracy {100 * acc:.2f}% on {len(x)} samples ({secs:.1f} s)"
    if overflow is not None:
        res["overflow"] = [o.to_json() for o in overflow]
        text += "\n" + format_overflow(overflow)
    emit(args, res, text)
    return 0


def export_nir(net: str | os.PathLike, output: str | os.PathLike, dt: float = 1e-4, force: bool = False) -> Path:
    """netx file -> NIR graph in integer units (compiler/netx/nir_export.py), written atomically."""
    import nir

    from loihic.compiler.netx.nir_export import netx_to_nir

    out = check_output(output, force)
    if not (np.isfinite(dt) and dt > 0):
        raise InputError(f"--dt {dt}: expected a time step > 0 in seconds")
    graph = netx_to_nir(read_netx(net), dt)
    return write_atomically(out, lambda tmp: nir.write(tmp, graph), ".nir")


def cmd_export_nir(args: argparse.Namespace) -> int:
    out = export_nir(args.net, args.output, args.dt, args.force)
    emit(
        args,
        {"output": str(out), "net": args.net, "dt": args.dt},
        f"wrote {out} (NIR, integer units, dt {args.dt:g} s)",
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """``loihic report MODEL.net --reference SNN.pt``: float-vs-Loihi parity, resources, hardware notes."""
    from loihic.deploy.verification.report import write_report

    check_options(args)
    out = Path(args.output)
    if out.exists() and not args.force:
        raise OutputExistsError(f"{out}: already exists (use --force to overwrite)")
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: is a file; the report is a folder")
    model = read_netx(args.net)
    dataset, steps, encoding = netx_run_settings(model, args.dataset, args.timesteps)
    x, y, what = run_data(args, args.net, model.input.shape, model.output_shape[0], dataset, need_labels=False)
    res = write_report(args.net, args.reference, x, y, steps, encoding, args.seed, out, model)
    worst = min(
        (r for r in res["layers"] if r.get("spike_count_correlation") is not None),
        key=lambda r: r["spike_count_correlation"],
        default=None,
    )
    text = (
        f"{out}/report.json, parity.png, weights.png{', accuracy_vs_T.png' if y is not None else ''}: "
        f"{res['samples']} samples of {what}, prediction agreement {100 * res['prediction_agreement']:.1f}%"
        + (
            f", accuracy float {100 * res['accuracy_float']:.2f}% / Loihi {100 * res['accuracy_loihi']:.2f}%"
            if y is not None
            else ""
        )
        + (
            f"; lowest spike-count correlation: layer {worst['layer']} ({worst['name']}) "
            f"{worst['spike_count_correlation']:.3f}"
            if worst
            else ""
        )
        + f"\nresources (estimate): {res['resources']['neurons']} neurons, {res['resources']['synapses']} synapses, "
        f"about {res['resources']['loihi2_cores_estimate']} Loihi 2 cores; "
        f"{res['resources']['synops_per_inference']:.0f} synops per inference (ANN: "
        f"{res['resources']['ann_macs_per_inference']} MACs)"
        + "".join(f"\nhardware: {n['why']}" for n in res["hardware_notes"])
    )
    emit(args, res, text)
    return 0


def cmd_install_lava(args: argparse.Namespace) -> int:
    from loihic.deploy.lava.install import install

    install(dry_run=args.dry_run)
    if not args.dry_run:
        print("Lava installed: lava-nc 0.10.0, lava-dl 0.6.0 ('loihic demo' runs end to end now)", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from loihic.deploy.cli.demo import run_demo

    return run_demo(args)
