"""The one compile driver: a network and options in, a written netx file and a :class:`CompileResult` out.

Every road to a netx file goes through :func:`compile_source`: the CLI's ``loihic compile``, the Python API's
``loihic.compile``, the benches and the tests.  A front end hands it a :class:`Source`, the IR plus what the
front end knows about where the network came from (``provenance``, recorded in the file's metadata) and what
it has to tell the user (``notes``, ``warnings``):

- an IR network built in Python: ``Source(net)``;
- a NIR graph file: :func:`nir_source` (compiler/load/nir.py discretises it at ``dt``);
- a loihic SNN checkpoint: ``training/deployment.py``'s ``checkpoint_source`` (the noise-offset policy and the
  hard-reset measurement need the float SNN, which is training's).

The driver runs the pass pipeline (compiler/pipeline.py), builds the per-layer rows (compiler/report.py),
adds the driver's own notes (automatic input width, a first layer whose weight SQNR is limited by the input
width), writes the metadata in one place, and writes the file atomically (compiler/netx/write.py).  It never
prints: the CLI turns notes and warnings into stderr lines, the Python API turns warnings into
:class:`~loihic.compiler.errors.LoihicWarning`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loihic.compiler import ir
from loihic.compiler.config import CompileConfig
from loihic.compiler.encoding import direct_bits
from loihic.compiler.errors import InputError
from loihic.compiler.fileio import check_output, file_sha256
from loihic.compiler.netx import schema
from loihic.compiler.netx.write import write_netx
from loihic.compiler.pipeline import compile_network
from loihic.compiler.report import layer_report
from loihic.version import __version__

LOW_SQNR_DB = 20.0  # below this a layer's quantized weights are a poor copy (about 10% rms error)


@dataclass(frozen=True)
class Source:
    """What a front end hands the driver: the float IR and what it knows about the network's origin."""

    network: ir.Network
    provenance: Mapping[str, Any] = field(default_factory=dict)  # metadata keys of this front end (JSON values)
    notes: tuple[str, ...] = ()  # what the user should know (the CLI prints "loihic: NOTE")
    warnings: tuple[str, ...] = ()  # what may cost accuracy (the CLI prints "loihic: warning: WARNING")


@dataclass(frozen=True)
class CompileResult:
    """A written netx file: per-layer rows (compiler/report.py), notes, warnings and the recorded metadata."""

    path: Path
    layers: list[dict[str, Any]]
    notes: tuple[str, ...]
    warnings: tuple[str, ...]
    meta: dict[str, Any]
    network: ir.Network | None = None  # the compiled IR the file was written from (scales, integers)


def _input_width_notes(compiled: ir.Network, rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The input-width note of ``--input-bits auto``, or a warning when the first layer's weight SQNR is limited
    by the 24-bit current range of a wide graded input (compiler/passes/input_bits.py, quantize.py)."""
    first, bits = rows[0], direct_bits(compiled.encoding)
    if compiled.meta.get("input_bits_auto"):
        note = f"input bits: {bits} (auto: the smallest first-layer quantisation error; --input-bits B forces one)"
        return [note], []
    if bits > 1 and first["scale_limited_by"] == "current range" and first["sqnr_db"] < LOW_SQNR_DB:
        return [], [
            f"layer {first['index']} ('{first['layer']}'): weight SQNR {first['sqnr_db']:.1f} dB, its scale limited "
            f"by the 24-bit current range of {bits}-bit graded input x fan-in {first['fan_in']}; fewer input bits "
            f"free weight bits (try --input-bits {min(4, bits - 1)} and compare with 'loihic evaluate')"
        ]
    return [], []


def _calibration_notes(compiled: ir.Network) -> list[str]:
    """One note per calibrated layer (compiler/calib.py): its threshold mantissa, the range searched, and how many
    weights the chosen scale clips."""
    cal = compiled.meta.get("calibration")
    if not cal:
        return []
    notes = []
    for lay in compiled.synaptic():
        rec = cal.get(lay.name)
        if rec is None:
            continue
        w = lay.weight if getattr(lay, "weight_rec", None) is None else np.hstack([lay.weight, lay.weight_rec])
        clipped = int((np.abs(lay.quant.scale * w) > schema.WEIGHT_MAX + 1).sum())
        span = f" (searched {rec['candidates'][0]}..{rec['candidates'][-1]})" if rec["candidates"] else ""
        notes.append(
            f"layer '{lay.name}': rounding calibrated on {cal['samples']} samples: vThMant "
            f"{lay.quant.v_th_mant}{span}, {clipped} of {w.size} weights clipped to the 8-bit range"
        )
    return notes


def _sdnn_meta(compiled: ir.Network) -> dict[str, Any]:
    """What a reader of a sigma-delta file needs to read its output: the read-out in activation units is the Sigma
    value / ``readout_divisor`` (4096 S_L), settled from sink index ``settle_index`` (K synaptic layers) with the
    input held; and every layer's activation scale (compiler/passes/quantize_sdnn.py)."""
    if not compiled.sigma_delta:
        return {}
    syn = compiled.synaptic()
    return {
        "sdnn": {
            "input_v_th_mant": compiled.meta["sdnn_delta"]["v_th_mant"],
            "input_scale": compiled.meta["sdnn_delta"]["act_scale"],
            "act_scales": {lay.name: lay.quant.act_scale for lay in syn},
            "readout_divisor": float(1 << schema.SDNN_SCALE_BITS) * syn[-1].quant.act_scale,
            "settle_index": len(syn),
            "weight_rho": compiled.meta.get("sdnn_weight_rho"),
        }
    }


def compile_source(
    source: Source | ir.Network, output: str | os.PathLike, config: CompileConfig | None = None, force: bool = False
) -> CompileResult:
    """Compile ``source`` with ``config`` and write the netx file ``output`` (refused if it exists, unless
    ``force``).  Returns the :class:`CompileResult`; prints nothing."""
    src = source if isinstance(source, Source) else Source(source)
    out = check_output(output, force)
    compiled = compile_network(src.network, config or CompileConfig())
    rows = layer_report(compiled)
    notes, warns = _input_width_notes(compiled, rows)
    notes += _calibration_notes(compiled)
    meta = {
        "loihic_version": __version__,
        "timesteps": compiled.timesteps,
        "encoding": compiled.encoding,
        "input_shape": list(compiled.input.shape),
        "input_message_bits": direct_bits(compiled.encoding),
        "input_bits": compiled.meta.get("input_bits"),
        "input_bits_auto": compiled.meta.get("input_bits_auto", False),
        "input_bits_error": compiled.meta.get("input_bits_error"),
        "l4": compiled.meta.get("l4"),
        "layer_scales": {r["layer"]: r["scale"] for r in rows},
        "report": rows,
        **_sdnn_meta(compiled),
        **({"calibration": compiled.meta["calibration"]} if compiled.meta.get("calibration") else {}),
        **src.provenance,
    }
    write_netx(compiled, out, meta, force=force)
    return CompileResult(out, rows, (*src.notes, *notes), (*src.warnings, *warns), meta, compiled)


def nir_source(
    path: str | os.PathLike,
    timesteps: int | None,
    dt: float | None,
    bias: str = "exact",
    convention: str = "nir",
) -> Source:
    """A NIR graph file as a :class:`Source`: T and dt from the options, else from what ``loihic export-nir``
    recorded in the graph (compiler/load/nir.py).  ``bias``: how CubaLIF synapse biases are deployed ("exact":
    always-on sources, "steady": steady-state voltage biases); the notes say what was done.  A file whose
    input gained always-on channels records ``always_on_inputs`` and the graph's own ``graph_input_shape``:
    loihic's tools append the channels (deploy/netx_run.py: ``append_always_on``).  ``convention`` "norse": a
    graph from Norse's ``to_nir`` (compiler/load/nir.py), ``dt`` Norse's step (default 1e-3)."""
    from loihic.compiler.load.nir import DEFAULT_DT, NORSE_DT, graph_meta, network_from_nir, read_nir

    graph = read_nir(path)
    recorded = graph_meta(graph)  # loihic export-nir records T, dt and the encoding
    timesteps = timesteps or int(recorded.get("loihic_timesteps") or 0) or None
    if timesteps is None:
        raise InputError(f"{path}: a NIR graph records no sample length; pass --timesteps T (steps per sample)")
    default_dt = NORSE_DT if convention == "norse" else DEFAULT_DT
    step = float(dt if dt is not None else recorded.get("dt", default_dt))
    encoding = str(recorded.get("loihic_encoding", "poisson"))
    net = network_from_nir(graph, timesteps, step, str(path), encoding, bias, convention)
    spiking_out = net.synaptic()[-1].neuron.spiking
    provenance = {
        "source_nir": str(path),
        "source_sha256": file_sha256(path),
        "front_end": "nir",
        "dt": step,
        "readout": "spike counts of the last layer, argmax"
        if spiking_out
        else "v of the last layer (non-spiking), argmax",
        "method": "nir",
        "nir_bias": bias,
        "nir_convention": convention,
    }
    if net.meta.get("always_on_inputs"):
        provenance["always_on_inputs"] = int(net.meta["always_on_inputs"])
        provenance["graph_input_shape"] = list(net.meta["graph_input_shape"])
    return Source(net, provenance, notes=tuple(net.meta.get("nir_notes", ())))
