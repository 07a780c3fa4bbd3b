"""``loihic simulate`` (spikes in, output spikes out), ``loihic verify`` (Lava against the emulator, spike for
spike) and ``loihic evaluate`` (accuracy of a checkpoint in float, or of a netx file on the emulator or Lava)."""

from __future__ import annotations

import argparse
import sys
import time

from loihic.compiler.encoding import encode_all
from loihic.compiler.errors import InputError
from loihic.compiler.fileio import check_output
from loihic.compiler.load.checkpoint import is_sdnn
from loihic.compiler.load.pt2 import is_pt2
from loihic.deploy.cli.common import (
    check_options,
    data_input_shape,
    emit,
    is_netx,
    load_spike_input,
    run_data,
    save_npy,
    spike_input_shape,
)
from loihic.deploy.emulator.network import Emulator, format_overflow
from loihic.deploy.lava.run import run_lava
from loihic.deploy.netx_run import (
    append_always_on,
    message_bits,
    netx_run_settings,
    read_net,
    sdnn_settle_index,
    user_input_shape,
)
from loihic.deploy.verification.accuracy import netx_accuracy
from loihic.deploy.verification.parity import verify
from loihic.training.ann import evaluate_ann
from loihic.training.checkpoint import load_checkpoint
from loihic.training.imported import import_torch
from loihic.training.models import model_from_checkpoint
from loihic.training.noise import evaluate_noise
from loihic.training.snn import evaluate_snn


def cmd_simulate(args: argparse.Namespace) -> int:
    check_options(args)
    out = check_output(args.output, args.force)
    vout = check_output(args.voltage, args.force) if args.voltage else None
    if vout is not None and vout.resolve() == out.resolve():
        raise InputError(f"--voltage {vout}: same file as -o; the spikes would be overwritten")
    model = read_net(args.net, args.input_shape, lambda: spike_input_shape(args.input), sigma_delta=True)
    bits = message_bits(model, args.input_message_bits)
    x = load_spike_input(args.input, model, bits)
    overflow = None
    if args.backend == "emulator":
        emu = Emulator(
            model,
            device=args.device,
            input_message_bits=bits,
            memory_mb=args.emulator_memory,
            stream=args.stream or None,
        )
        res = emu.run(x, check_overflow=args.check_overflow)
        y, v, overflow = res.output_spikes, res.output_v, res.overflow
    else:
        if args.check_overflow:
            raise InputError("--check-overflow counts on the emulator; use --backend emulator")

        res = run_lava(
            args.net,
            x,
            backend=args.backend,
            input_message_bits=bits,
            read_v=vout is not None,
            model=model,
            stream=args.stream or None,
        )
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

    check_options(args)
    model = read_net(args.net, args.input_shape, lambda: data_input_shape(args), sigma_delta=True)
    dataset, steps, encoding = netx_run_settings(model, args.dataset, args.timesteps)
    x, y, dataset = run_data(args, args.net, user_input_shape(model), model.output_shape[0], dataset, need_labels=False)
    x = append_always_on(model, x)
    spikes = encode_all(x, steps, encoding, args.seed)
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
        stream=args.stream or None,
    )
    res = {**rep.to_json(), "stream": rep.stream, "dataset": dataset, "seed": args.seed, "encoding": encoding}
    res["net"] = args.net
    verdict = "IDENTICAL" if rep.identical else "MISMATCH"
    text = (
        f"{verdict}: {rep.samples} samples x {steps} steps, {rep.mismatches} of {rep.spikes_compared} "
        f"spikes differ"
        + ("" if rep.voltage_equal is None else f", readout v equal: {rep.voltage_equal}")
        + (f"\n{rep.temporal_note}" if rep.temporal_note else "")
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

        if is_pt2(args.target):
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
            steps = steps or int(ckpt["snn"]["timesteps"])
            acc = evaluate_noise(
                ckpt,
                x,
                y,
                timesteps=steps,
                stage=args.stage or ("lif" if "deploy_offset" in ckpt["snn"] else "3"),
                alpha=args.alpha,
                beta=args.beta,
                seed=args.seed,
                offset=args.offset,
                progress=True,
            )
        elif is_sdnn(ckpt):  # the settled sigma-delta network computes its ReLU ANN: evaluated in float
            steps = None
            acc = evaluate_ann(model_from_checkpoint(ckpt), x, y)
        elif ckpt["kind"] == "snn":
            steps = steps or int(ckpt["snn"]["timesteps"])
            acc = evaluate_snn(ckpt, x, y, timesteps=steps, seed=args.seed, progress=True)
        else:
            acc = evaluate_ann(model_from_checkpoint(ckpt), x, y)
    else:
        if backend == "torch":
            raise InputError(f"{args.target}: is a netx file; use --backend emulator or lava-sim")
        model = read_net(args.target, args.input_shape, lambda: data_input_shape(args), sigma_delta=True)
        dataset, steps, encoding = netx_run_settings(model, args.dataset, args.timesteps)
        x, y, _ = run_data(args, args.target, user_input_shape(model), model.output_shape[0], dataset)
        x = append_always_on(model, x)
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
    if netx and model.is_sigma_delta:
        settle = sdnn_settle_index(model)
        res.update(sigma_delta=True, settle_index=settle, stream=True)
        text += (
            f"\nsigma-delta: each image held for T={steps} steps from a fresh state (stream timing); prediction: "
            f"argmax of the Sigma read-out at step {steps} (settled from step {settle + 1})"
        )
    if overflow is not None:
        res["overflow"] = [o.to_json() for o in overflow]
        text += "\n" + format_overflow(overflow)
    emit(args, res, text)
    return 0
