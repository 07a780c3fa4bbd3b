"""``loihic demo``: the whole pipeline on scikit-learn's digits, end to end, in a few minutes on 2 cores.

train MLP -> threshold-balance to an SNN -> compile to Loihi fixed point / netx HDF5 -> accuracy of
ANN (float), SNN (float), emulator and Lava -> Lava and emulator compared spike for spike.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from loihic.compiler.config import CompileConfig
from loihic.compiler.encoding import encode_all
from loihic.compiler.fileio import check_output, file_sha256
from loihic.compiler.netx.read import read_netx
from loihic.compiler.report import format_report
from loihic.deploy.cli.common import emit, jsonable, note
from loihic.deploy.emulator.network import Emulator
from loihic.deploy.lava.install import install, require_lava
from loihic.deploy.lava.run import run_lava
from loihic.deploy.verification.accuracy import emulator_accuracy
from loihic.deploy.verification.parity import verify
from loihic.training.ann import evaluate_ann, train_ann
from loihic.training.checkpoint import save_checkpoint
from loihic.training.convert import convert
from loihic.training.data import load_dataset
from loihic.training.deployment import compile_checkpoint
from loihic.training.models import model_from_checkpoint
from loihic.training.snn import evaluate_snn

FILES = (("ann", "ann.pt"), ("snn", "snn.pt"), ("net", "model.net"), ("json", "demo.json"), ("png", "raster.png"))


def _log(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def run_demo(args: argparse.Namespace) -> int:
    """The demo; when it fails (an error, Ctrl-C) the files this run wrote are removed, so that the same
    command runs again without --force, and stderr says so."""
    work = Path(args.workdir)
    names = [name for _, name in FILES]
    before = {name: _stamp(work / name) for name in names}
    had_workdir = work.exists()
    try:
        return _run_demo(args, work)
    except BaseException:
        removed = [name for name in names if _stamp(work / name) not in (None, before[name])]
        for name in removed:
            (work / name).unlink(missing_ok=True)
        if not had_workdir and work.is_dir() and not any(work.iterdir()):
            work.rmdir()
        if removed:
            _log(f"failed: removed what this run wrote ({', '.join(removed)} in {work}); the same command runs again")
        raise


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """A file's identity and version (inode, size, mtime), or None when there is none."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _run_demo(args: argparse.Namespace, work: Path) -> int:

    paths = {key: work / name for key, name in FILES}
    for p in paths.values():
        check_output(p, args.force)

    require_lava("loihic demo (step 5 runs Lava)")  # before training, not after it
    work.mkdir(parents=True, exist_ok=True)
    x_train, _ = load_dataset("digits", "train")
    x_test, y_test = load_dataset("digits", "test")
    times: dict[str, float] = {}

    _log(f"1/5 training an MLP on digits ({len(x_train)} train / {len(x_test)} test images, seed {args.seed})")
    t = time.perf_counter()
    ann = train_ann("mlp", "digits", args.epochs, args.seed)
    save_checkpoint(paths["ann"], ann, force=args.force)
    times["train"] = time.perf_counter() - t

    _log(f"2/5 threshold balancing (max) at T={args.timesteps}, hard reset, Poisson input")
    t = time.perf_counter()
    snn = convert(
        ann, x_train, args.timesteps, norm="max", reset="hard", seed=args.seed, source_sha256=file_sha256(paths["ann"])
    )
    save_checkpoint(paths["snn"], snn, force=args.force)
    times["convert"] = time.perf_counter() - t

    _log("3/5 compiling to Loihi fixed point and netx HDF5")
    t = time.perf_counter()
    compiled = compile_checkpoint(str(paths["snn"]), str(paths["net"]), CompileConfig(), force=args.force)
    note(compiled.notes)
    note(compiled.warnings, "warning")
    rows = compiled.layers
    times["compile"] = time.perf_counter() - t
    print(format_report(rows), file=sys.stderr)
    model = read_netx(paths["net"])

    _log("4/5 accuracy on the full test set: ANN, float SNN, emulator")
    acc = {"ann_float": evaluate_ann(model_from_checkpoint(ann), x_test, y_test)}
    t = time.perf_counter()
    acc["snn_float"] = evaluate_snn(snn, x_test, y_test, seed=args.seed)
    times["snn_float"] = time.perf_counter() - t
    t = time.perf_counter()
    acc["emulator"] = emulator_accuracy(model, x_test, y_test, args.timesteps, "poisson", args.seed)
    times["emulator"] = time.perf_counter() - t

    n = min(args.lava_samples, len(x_test))
    _log(f"5/5 running {n} test samples on Lava's CPU simulator and comparing every spike")

    spikes = encode_all(x_test[:n], args.timesteps, "poisson", args.seed)
    rep = verify(str(paths["net"]), spikes, y_test[:n], model=model)
    acc["lava"] = rep.accuracy_lava
    times["lava"] = rep.lava_seconds
    # Lava's start-up (seconds of process forking) would flatter the emulator: time the same run on 2 samples
    # and compare marginal costs per sample, (t(n) - t(2)) / (n - 2) (bench/emulator_speed.py does the same)
    lava_marginal = None
    if n > 4:
        t = time.perf_counter()
        run_lava(str(paths["net"]), spikes[:2], record_layers=True, read_v=True, progress=False, model=model)
        times["lava_2_samples"] = time.perf_counter() - t
        lava_marginal = max(rep.lava_seconds - times["lava_2_samples"], 1e-9) / (n - 2)
    emu_n = emulator_accuracy(model, x_test[:n], y_test[:n], args.timesteps, "poisson", args.seed, progress=False)

    result = {
        "seed": args.seed,
        "timesteps": args.timesteps,
        "epochs": args.epochs,
        "dataset": "digits",
        "test_samples": len(x_test),
        "lava_samples": n,
        "accuracy": acc,
        "emulator_accuracy_on_lava_subset": emu_n,
        "parity": rep.to_json(),
        "seconds": times,
        "emulator_samples_per_second": len(x_test) / times["emulator"],
        "lava_samples_per_second": n / rep.lava_seconds,
        "lava_marginal_seconds_per_sample": lava_marginal,
        "emulator_seconds_per_sample": times["emulator"] / len(x_test),
        "files": {k: str(p) for k, p in paths.items()},
    }
    _raster(paths["png"], model, spikes[:1])
    paths["json"].write_text(json.dumps(result, indent=2, default=jsonable))
    table = "\n".join(
        [
            f"{'stage':<34}{'accuracy':>10}{'samples':>9}{'time s':>9}",
            f"{'ANN (float, PyTorch)':<34}{100 * acc['ann_float']:>9.2f}%{len(x_test):>9}{times['train']:>9.1f}",
            f"{'SNN (float, PyTorch, T=' + str(args.timesteps) + ')':<34}{100 * acc['snn_float']:>9.2f}%"
            f"{len(x_test):>9}{times['snn_float']:>9.1f}",
            f"{'Loihi fixed point, emulator':<34}{100 * acc['emulator']:>9.2f}%"
            f"{len(x_test):>9}{times['emulator']:>9.1f}",
            f"{'Loihi fixed point, Lava CPU sim':<34}{100 * acc['lava']:>9.2f}%{n:>9}{times['lava']:>9.1f}",
            f"{'  (emulator on the same samples)':<34}{100 * emu_n:>9.2f}%{n:>9}",
            "",
            f"Lava vs emulator: {'IDENTICAL' if rep.identical else 'MISMATCH'} - {rep.mismatches} of "
            f"{rep.spikes_compared} spikes differ; readout voltages equal: {rep.voltage_equal}",
            _speed_line(result),
            f"files: {', '.join(str(p) for p in paths.values())}",
        ]
    )
    emit(args, result, table)
    return 0 if rep.identical else 1


def _speed_line(result: dict) -> str:
    emu = result["emulator_seconds_per_sample"]
    marginal = result["lava_marginal_seconds_per_sample"]
    if marginal is None:
        whole = result["emulator_samples_per_second"] / result["lava_samples_per_second"]
        return f"speed: emulator {1e3 * emu:.2f} ms/sample; too few Lava samples to measure ({whole:.0f}x whole run)"
    return (
        f"speed per sample: emulator {1e3 * emu:.2f} ms (whole test set, every sample), Lava {1e3 * marginal:.0f} ms "
        f"marginal (t(n) - t(2) over n - 2, every layer recorded): {marginal / emu:.0f}x"
    )


def _raster(path: Path, model, spikes) -> None:  # noqa: ANN001
    """One sample: every spiking layer's raster (Lava's spikes as dots, the emulator's as rings), and the
    read-out layer's voltage (emulator trace as lines, Lava's final voltage as crosses)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    emulator = Emulator(model, device="cpu")
    emu = emulator.run(spikes, record_layers=True, record_v=True)
    readout = not emulator.output_spiking
    lava = run_lava(model.path, spikes, record_layers=True, read_v=readout, progress=False, model=model)
    layers = list(zip(emu.layer_spikes or [], lava.layer_spikes or [], strict=True))
    if readout:
        layers = layers[:-1]
    fig, axes = plt.subplots(len(layers) + readout, 1, figsize=(8, 2.4 * (len(layers) + readout)), squeeze=False)
    for k, (e, lv) in enumerate(layers):
        ax = axes[k, 0]
        ne, te = np.nonzero(e[0].reshape(-1, e.shape[-1]))
        nl, tl = np.nonzero(lv[0].reshape(-1, lv.shape[-1]))
        ax.scatter(tl, nl, s=6, c="k", label="Lava CPU sim")
        ax.scatter(te, ne, s=30, facecolors="none", edgecolors="tab:orange", label="emulator")
        ax.set_ylabel(f"layer {k}\nneuron")
        ax.set_xlabel("time step (aligned)")
    axes[0, 0].legend(loc="upper right", fontsize=7)
    if readout:
        ax = axes[-1, 0]
        trace = emu.output_v_trace[0].reshape(-1, emu.output_v_trace.shape[-1])
        steps = trace.shape[-1]
        for j, row in enumerate(trace):
            ax.plot(np.arange(steps), row, lw=1, label=f"class {j}" if j < 10 else None)
        ax.scatter(
            np.full(trace.shape[0], steps - 1),
            lava.output_v[0].reshape(-1),
            marker="x",
            c="k",
            zorder=3,
            label="Lava final v",
        )
        ax.set_ylabel("read-out v\n(integer)")
        ax.set_xlabel("time step (aligned)")
        ax.legend(loc="upper left", fontsize=6, ncol=4)
    fig.suptitle("One digits test sample: every spike and the read-out, Lava vs emulator")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cmd_demo(args: argparse.Namespace) -> int:
    """``loihic demo``: :func:`run_demo`."""
    return run_demo(args)


def cmd_install_lava(args: argparse.Namespace) -> int:
    """``loihic install-lava``: lava-nc 0.10.0 and lava-dl 0.6.0 into this environment (deploy/lava/install.py)."""
    install(dry_run=args.dry_run, on_command=lambda cmd: print(" ".join(cmd), file=sys.stderr, flush=True))
    if not args.dry_run:
        print("Lava installed: lava-nc 0.10.0, lava-dl 0.6.0 ('loihic demo' runs end to end now)", file=sys.stderr)
    return 0
