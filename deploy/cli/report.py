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
    model = read_netx(args.net, sigma_delta=True)
    dataset, steps, encoding = netx_run_settings(model, args.dataset, args.timesteps)
    x, y, what = run_data(args, args.net, user_input_shape(model), model.output_shape[0], dataset, need_labels=False)
    x = append_always_on(model, x)
    res = write_report(args.net, args.reference, x, y, steps, encoding, args.seed, out, model)
    if model.is_sigma_delta:
        emit(args, res, _sdnn_text(res, out, what, y is not None))
        return 0
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


def _sdnn_text(res: dict, out: Path, what: str, labels: bool) -> str:
    """The summary of a sigma-delta file's report: activations against the float ANN, traffic against MACs."""
    r = res["resources"]
    acts = [(row, row.get("activation") or row.get("readout")) for row in res["layers"]]
    worst = min(
        ((row, a) for row, a in acts if a and a["correlation"] is not None),
        key=lambda p: p[1]["correlation"],
        default=None,
    )
    lines = [
        f"{out}/report.json, parity.png, weights.png{', accuracy_vs_T.png' if labels else ''}: {res['samples']} "
        f"samples of {what}, each held T={res['timesteps']} steps (sigma-delta, stream timing; the read-out has "
        f"settled from step {res['settle_index'] + 1}), prediction agreement with the float ANN "
        f"{100 * res['prediction_agreement']:.1f}%"
        + (
            f", accuracy float {100 * res['accuracy_float']:.2f}% / Loihi {100 * res['accuracy_loihi']:.2f}%"
            if labels
            else ""
        )
        + (
            f"; lowest activation correlation: layer {worst[0]['layer']} ({worst[0]['name']}) "
            f"{worst[1]['correlation']:.4f}"
            if worst
            else ""
        ),
        "layer  messages/image  synops/image    ANN MACs  synops/MAC  synops/image in a stream",
    ]
    for row in r["layers"]:
        stream = row["synops_per_image_stream"]
        msgs = row["input_messages_per_inference"] or 0
        lines.append(
            f"{row['layer']:>5}  {msgs:>14.1f}  {row['synops_per_inference']:>12.0f}  {row['ann_macs']:>10}  "
            f"{row['synops_per_ann_mac']:>10.3f}  {'-' if stream is None else f'{stream:.0f}'}"
        )
    stream = r["synops_per_image_stream"]
    lines.append(
        f"total  {r['messages_per_inference']:>14.1f}  {r['synops_per_inference']:>12.0f}  "
        f"{r['ann_macs_per_inference']:>10}  {r['synops_per_ann_mac']:>10.3f}  "
        + ("-" if stream is None else f"{stream:.0f} ({r['synops_per_ann_mac_stream']:.3f} per MAC)")
    )
    lines.append(
        "(messages/image: the messages crossing the layer's synapses, from a fresh network over T steps; a "
        f"stream: {res['stream_chain']} images back to back, the first of each chain left out)"
    )
    lines.append(
        f"resources (estimate): {r['neurons']} neurons, {r['synapses']} synapses, about "
        f"{r['loihi2_cores_estimate']} Loihi 2 cores"
    )
    lines += [f"hardware: {n['why']}" for n in res["hardware_notes"]]
    return "\n".join(lines)


def cmd_export_nir(args: argparse.Namespace) -> int:
    out = export_nir(args.net, args.output, args.dt, args.force)
    emit(
        args,
        {"output": str(out), "net": args.net, "dt": args.dt},
        f"wrote {out} (NIR, integer units, dt {args.dt:g} s)",
    )
    return 0
