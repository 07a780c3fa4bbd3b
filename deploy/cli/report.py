"""``loihic report`` (float-vs-Loihi parity per layer, resources, hardware notes; deploy/verification/report.py)
and ``loihic export-nir`` (a netx file as a NIR graph in integer units; compiler/netx/nir_export.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from loihic.compiler.errors import OutputExistsError
from loihic.compiler.netx.nir_export import export_nir
from loihic.compiler.netx.read import read_netx
from loihic.deploy.cli.common import check_options, emit, run_data
from loihic.deploy.netx_run import append_always_on, netx_run_settings, user_input_shape
from loihic.deploy.verification.report import write_report


def cmd_report(args: argparse.Namespace) -> int:
    """``loihic report MODEL.net --reference SNN.pt``: float-vs-Loihi parity, resources, hardware notes."""
    check_options(args)
    out = Path(args.output)
    if out.exists() and not args.force:
        raise OutputExistsError(f"{out}: already exists (use --force to overwrite)")
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: is a file; the report is a folder")
    model = read_netx(args.net)
    dataset, steps, encoding = netx_run_settings(model, args.dataset, args.timesteps)
    x, y, what = run_data(args, args.net, user_input_shape(model), model.output_shape[0], dataset, need_labels=False)
    x = append_always_on(model, x)
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


def cmd_export_nir(args: argparse.Namespace) -> int:
    out = export_nir(args.net, args.output, args.dt, args.force)
    emit(
        args,
        {"output": str(out), "net": args.net, "dt": args.dt},
        f"wrote {out} (NIR, integer units, dt {args.dt:g} s)",
    )
    return 0
