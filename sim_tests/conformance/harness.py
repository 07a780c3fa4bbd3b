"""Run one conformance case on Lava's CPU simulator and on the emulator, and compare every layer.

Lava: ``run_lava(path, x, record_layers=True, read_v=True)``, all the case's samples in one runtime (netx's
per-sample resets).  Emulator: ``Emulator(read_netx(path), device='cpu', input_message_bits=B)``.  Equal means
every spike of every neuron layer (the input neuron first, when the file has one) at every step of every
sample, and the last layer's voltage at the end of every sample (for a read-out layer that never fires it is
the output; for a spiking one a stricter check), as ``deploy/verification/parity.py`` compares them.

A case that differs (or that either side refuses or fails on) is saved with :func:`generator.save_case` as
``net.net`` + ``input.npy`` + ``case.json`` under :func:`failure_root`, and can be replayed with
``python -m sim_tests.conformance.replay FOLDER`` or with ``loihic simulate`` (the commands are in the JSON).

An SDNN case (``case.sigma_delta``, :func:`generator.make_sdnn_case`) is read with ``sigma_delta=True`` and runs in
stream timing on both sides (its only timing); every layer's int32 messages must be equal at every step, and
the last layer's sigma at the end of every sample (Lava's ``sigma`` Var, the emulator's ``output_v``).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loihic.compiler import errors
from loihic.compiler.netx.read import NetxModel, read_netx
from loihic.deploy.emulator.network import Emulator
from loihic.deploy.lava.run import run_lava
from loihic.deploy.verification.parity import first_mismatch
from sim_tests.conformance.generator import Case, save_case, write_case

REPO = Path(__file__).resolve().parents[2]
ENV_FAILURES = "LOIHIC_CONFORMANCE_FAILURES"


def failure_root() -> Path:
    return Path(os.environ.get(ENV_FAILURES) or REPO / "runs" / "conformance" / "failures")


@dataclass
class Outcome:
    name: str
    ok: bool
    problem: str | None = None  # one line: the first divergence, or what failed
    events: dict[str, int] = field(default_factory=dict)  # emulator's overflow monitor: u wraps, v clips, ...
    lava_seconds: float = 0.0
    saved: str | None = None


def emulate(case: Case, model: NetxModel, stream: bool = False) -> tuple[Any, dict[str, int]]:
    """The emulator as the brief and ``verify`` use it (default mode), with its overflow monitor; the step-major
    reference mode must give the same integers.  Returns the result and the event counts of the whole case.
    ``stream``: stream timing (a plain netx run per sample) instead of aligned."""
    emu = {"device": "cpu", "input_message_bits": case.bits, "stream": stream or case.sigma_delta}
    res = Emulator(model, **emu).run(case.x, record_layers=True, check_overflow=True)
    ref = Emulator(model, mode="step", **emu).run(case.x, record_layers=True)
    for k, (a, b) in enumerate(zip(res.layer_spikes, ref.layer_spikes, strict=True)):
        if not np.array_equal(a, b):
            raise AssertionError(f"{case.name}: emulator modes 'layer' and 'step' differ at layer {k}")
    if not np.array_equal(res.output_v, ref.output_v):
        raise AssertionError(f"{case.name}: emulator modes 'layer' and 'step' differ in the final v")
    events = {
        "u_wrap": sum(o.u_wraps for o in res.overflow),
        "v_clip": sum(o.v_clips for o in res.overflow),
        "synapse_wrap": sum(o.synapse_wraps for o in res.overflow),
        "spikes": int(sum(np.count_nonzero(s) for s in res.layer_spikes)),  # sigma-delta: nonzero messages
    }
    if case.sigma_delta:  # no u / v (LIF only); the synaptic wraps by kind: dense int32 sum, conv 24-bit accumulator
        del events["u_wrap"], events["v_clip"]
        for kind in ("dense", "conv"):
            events[f"{kind}_wrap"] = sum(o.synapse_wraps for o in res.overflow if o.kind == kind)
    return res, events


def compare(emu: Any, lava: Any) -> str | None:
    """None when every layer's spikes and the final voltages agree, else the first divergence, in words."""
    e_layers, l_layers = emu.layer_spikes or [], lava.layer_spikes or []
    if len(e_layers) != len(l_layers):
        return f"{len(e_layers)} emulator layers, {len(l_layers)} Lava layers"
    for k, (a, b) in enumerate(zip(e_layers, l_layers, strict=True)):
        if a.shape != b.shape:
            return f"layer {k}: emulator spikes {a.shape}, Lava {b.shape}"
    m = first_mismatch(e_layers, l_layers)
    if m is not None:
        n = sum(int((a != b).sum()) for a, b in zip(e_layers, l_layers, strict=True))
        return (
            f"{n} spikes differ; first at layer {m.layer}, sample {m.sample}, neuron {m.neuron}, step {m.step} "
            f"(emulator {m.emulator}, Lava {m.lava})"
        )
    if lava.output_v is None or not np.array_equal(emu.output_v, lava.output_v):
        if lava.output_v is None:
            return "Lava returned no voltages"
        diff = np.argwhere(emu.output_v != lava.output_v)[0]
        return (
            f"final v of the last layer differs at sample {diff[0]}, neuron {list(diff[1:])}: emulator "
            f"{emu.output_v[tuple(diff)]}, Lava {lava.output_v[tuple(diff)]}"
        )
    return None


def replay_commands(case: Case, folder: Path, stream: bool = False) -> list[str]:
    shape = case.read_shape
    extra = f" --input-message-bits {case.bits}" + (f" --input-shape {','.join(map(str, shape))}" if shape else "")
    extra += " --stream" if stream and not case.sigma_delta else ""  # a sigma-delta file streams anyway
    base = f"loihic simulate {folder}/net.net --input {folder}/input.npy{extra} --force"
    return [
        f"{base} --backend lava-sim -o {folder}/lava_y.npy --voltage {folder}/lava_v.npy",
        f"{base} --backend emulator -o {folder}/emu_y.npy --voltage {folder}/emu_v.npy",
        f"python -m sim_tests.conformance.replay {folder}",
    ]


def check_files(case: Case, net_path: Path, stream: bool = False) -> Outcome:
    """Read ``net_path`` (the case's file), run both sides in aligned or ``stream`` timing, compare (no saving)."""
    try:
        model = read_netx(net_path, input_shape=case.read_shape, sigma_delta=case.sigma_delta)
    except errors.LoihicError as exc:
        return Outcome(case.name, False, f"read_netx refused the file: {exc}")
    emu, events = emulate(case, model, stream)
    t0 = time.perf_counter()
    try:
        lava = run_lava(
            str(net_path),
            case.x,
            input_message_bits=case.bits,
            record_layers=True,
            read_v=True,
            progress=False,
            model=model,
            stream=stream or case.sigma_delta,
        )
    except Exception as exc:  # noqa: BLE001 - any Lava failure on a file read_netx accepted is a finding
        text = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
        return Outcome(case.name, False, f"Lava failed on a file read_netx accepts: {text}", events)
    seconds = time.perf_counter() - t0
    problem = compare(emu, lava)
    return Outcome(case.name, problem is None, problem, events, seconds)


def run_case(case: Case, save: bool = True, stream: bool = False) -> Outcome:
    """Write the case to a temporary file, check it; save a failing case under :func:`failure_root`."""
    with tempfile.TemporaryDirectory(prefix="loihic-conf-") as tmp:
        path = write_case(case, Path(tmp) / "net.net")
        out = check_files(case, path, stream)
    if not out.ok and save:
        folder = failure_root() / (case.name + ("-stream" if stream and not case.sigma_delta else ""))
        stream = stream or case.sigma_delta
        extra = {"outcome": asdict(out), "stream": stream, "replay": replay_commands(case, folder, stream)}
        save_case(case, folder, extra)
        out.saved = str(folder)
    return out
