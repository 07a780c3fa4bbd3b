"""``loihic convert`` (an ANN -> an SNN checkpoint by threshold balancing, Datta et al. Fig. 3, or a sigma-delta
one, deploy/sdnn_convert.py) and ``loihic
compile`` (an SNN checkpoint or a NIR graph -> netx HDF5 through the compile driver, compiler/driver.py; with
--target loihi2 the hardware notes become an error)."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from loihic.compiler.config import CompileConfig
from loihic.compiler.driver import compile_source, nir_source
from loihic.compiler.errors import InputError
from loihic.compiler.fileio import check_output, file_sha256, publish
from loihic.compiler.load.nir import is_nir
from loihic.compiler.netx.read import read_netx
from loihic.compiler.report import format_report
from loihic.compiler.resources import HW_DECAY_MAX, LIMITS_SOURCE, hardware_notes, layer_resources
from loihic.deploy.cli.common import check_options, emit, note
from loihic.deploy.sdnn_convert import DEFAULT_BUDGET, SDNN_KEYS, convert_sdnn
from loihic.deploy.verification.accuracy import emulator_accuracy
from loihic.training.checkpoint import save_checkpoint
from loihic.training.convert import convert
from loihic.training.data import load_dataset, load_inputs, test_split
from loihic.training.deployment import checkpoint_source
from loihic.training.imported import load_ann


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

    check_options(args)
    out = check_output(args.output, args.force)
    mean, std = parse_floats(args.input_mean, "--input-mean"), parse_floats(args.input_std, "--input-std")
    ann = load_ann(args.checkpoint, mean, std)
    if ann.get("kind") != "ann":
        raise InputError(f"{args.checkpoint}: is a '{ann.get('kind')}' checkpoint; convert needs an ANN")
    x_train = calibration_data(ann, args.calib, args.dataset, args.checkpoint)
    if args.neuron == "sdnn":
        return _convert_sdnn(args, ann, x_train, out)
    sdnn_only = [
        opt
        for opt, v in (
            ("--sdnn-budget", args.sdnn_budget),
            ("--thresholds", args.thresholds),
            ("--sdnn-pooling", args.sdnn_pooling),
        )
        if v is not None
    ]
    if sdnn_only:
        raise InputError(f"{sdnn_only[0]} applies to --neuron sdnn (sigma-delta), not to threshold balancing")
    timesteps = 64 if args.timesteps is None else args.timesteps
    snn = convert(
        ann,
        x_train,
        timesteps,
        norm=args.norm or "max",
        reset=args.reset or "hard",
        leak=1.0 if args.leak is None else args.leak,
        encoding=args.encoding or "poisson",
        seed=args.seed,
        calib_samples=args.calib_samples,
        source_sha256=file_sha256(args.checkpoint),
    )
    save_checkpoint(out, snn, force=args.force)
    th = snn["snn"]["thresholds"]
    norm = args.norm or "max"
    res = {"output": str(out), "thresholds": th, "timesteps": timesteps, "norm": norm, "seed": args.seed}
    emit(args, res, f"{out}: thresholds {', '.join(f'{t:.4g}' for t in th if t is not None)} at T={timesteps}")
    return 0


LIF_ONLY = ("norm", "reset", "leak", "encoding")  # convert options of threshold balancing


def _convert_sdnn(args: argparse.Namespace, ann: dict[str, Any], x_train: np.ndarray, out: Path) -> int:
    """``--neuron sdnn``: deploy/sdnn_convert.py, then one line per threshold trial (messages vs error)."""
    lif = [f"--{k}" for k in LIF_ONLY if getattr(args, k) is not None]
    if lif:
        raise InputError(
            f"{', '.join(lif)}: appl{'ies' if len(lif) == 1 else 'y'} to --neuron lif (rate coding), "
            "not to a sigma-delta network"
        )
    if args.thresholds is not None and args.sdnn_budget is not None:
        raise InputError("--thresholds and --sdnn-budget are alternatives: set the thresholds, or a budget for them")
    budget = DEFAULT_BUDGET if args.sdnn_budget is None else args.sdnn_budget
    sd = convert_sdnn(
        ann,
        x_train,
        budget,
        args.thresholds,
        args.timesteps,
        seed=args.seed,
        calib_samples=args.calib_samples,
        source_sha256=file_sha256(args.checkpoint),
        pooling=args.sdnn_pooling or "layer",
    )
    save_checkpoint(out, sd, force=args.force)
    snn = sd["snn"]
    res = {"output": str(out), "neuron": "sdnn", "seed": args.seed, **{k: snn[k] for k in SDNN_KEYS}}
    lines = [
        f"{'fraction':>9}{'messages':>10}{'error':>9}  (thresholds = fraction x activation std; error: settled "
        f"read-out vs thresholds 0, / its largest value, on {snn['calib_samples']} calibration samples)"
    ]
    lines += [
        f"{t['fraction']:>9.3g}{t['messages']:>10.1f}{t['error']:>9.2g}" + ("  <- chosen" if t["chosen"] else "")
        for t in snn["threshold_trials"]
    ]
    how = "set by --thresholds" if snn["budget"] is None else f"chosen for budget {snn['budget']:g}"
    ths = ", ".join(f"{t:.3g}" for t in [snn["input_delta"], *snn["thresholds"][:-1]])
    check = snn["calibration_check"]
    lines = lines if snn["threshold_trials"] else []
    lines.append(
        f"compiled and run on the emulator: argmax agrees with the float ANN on {100 * check['argmax_agreement']:.1f}% "
        f"of {check['samples']} calibration samples; synaptic sums wrapped {check['synapse_wraps']} times"
    )
    lines.append(f"{out}: sigma-delta, delta thresholds (input, hidden) {ths} ({how}), T={snn['timesteps']}")
    emit(args, res, "\n".join(lines))
    return 0


def load_calibration(path: str) -> np.ndarray:
    """``--calib X.npy``: a numpy array file (read without pickle: no code from the file runs)."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"--calib {path}: not a readable .npy array ({exc})") from None


def cmd_compile(args: argparse.Namespace) -> int:

    bits: int | str = args.input_bits
    if bits != "auto":
        try:
            bits = int(bits)
        except ValueError:
            raise InputError(f"--input-bits {bits!r}: expected 'auto' or an integer from 1 to 8") from None
    calib = None
    if args.calib is not None:
        if not (Path(args.checkpoint).is_file() and is_nir(args.checkpoint)):
            raise InputError(f"{args.checkpoint}: --calib applies to NIR graphs")
        calib = load_calibration(args.calib)
    cfg = CompileConfig(force_hard_reset=args.force_hard_reset, l4=args.l4, l4_rs=args.rs, input_bits=bits, calib=calib)
    final = check_output(args.output, args.force)
    # compile into a hidden file next to the output; it is published only once the target's checks pass
    tmp = final.parent / f".{final.name}.{os.getpid()}.compiling"
    try:
        if Path(args.checkpoint).is_file() and is_nir(args.checkpoint):
            source = nir_source(args.checkpoint, args.timesteps, args.dt, args.nir_bias, args.nir_from)
        else:
            if args.nir_from != "nir" or args.nir_bias != "exact":
                raise InputError(f"{args.checkpoint}: --from and --nir-bias apply to NIR graphs")
            if args.timesteps is not None or args.dt is not None:
                raise InputError(
                    f"{args.checkpoint}: --timesteps and --dt apply to NIR graphs; a checkpoint records its T"
                )
            source = checkpoint_source(args.checkpoint, cfg, args.offset, True, args.effect_samples, args.seed)
        compiled = compile_source(source, tmp, cfg, force=True)
        note(compiled.notes)
        note(compiled.warnings, "warning")
        rows = compiled.layers
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

    model = read_netx(path, sigma_delta=True)
    notes = hardware_notes(model, model.meta.get("timesteps"))
    res = {"resources": layer_resources(model), "limits_source": LIMITS_SOURCE, "hardware_notes": notes}
    if target != "loihi2":
        note((f"Loihi 2 hardware: {n['why']}" for n in notes), "note")
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
            x, y = test_split(str(model.meta["dataset"]), samples)
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
