"""Conformance: random netx networks, spike-identical on Lava's CPU simulator and on the emulator (issue 10.3).

Cases come from :mod:`sim_tests.conformance.generator` (what they cover is listed there), each a pure function
of ``(seed, index)``; :mod:`sim_tests.conformance.harness` runs one on both sides and compares every layer and
the final voltages.  A failing case is saved under ``runs/conformance/failures/seed<S>-case<I>/`` (net.net,
input.npy, case.json with the divergence and the replay commands).

- ``make conformance`` (marker ``slow``): ``LOIHIC_CONFORMANCE_COUNT`` cases (the Makefile sets 1000) with seed
  ``LOIHIC_CONFORMANCE_SEED`` (default :data:`SEED`); a summary (count, seed, time, failures, how many cases
  wrapped u / clipped v) goes to ``runs/conformance/summary-seed<S>.json``.
- the normal suite (marker ``lava``): the first ``LOIHIC_CONFORMANCE_SUBSET`` (default 30) cases of the same
  seed, which hold every topology x input layer x binary/graded combination, and the first
  :data:`STREAM_SUBSET` of them again in stream timing (a plain netx run per sample; ``--stream``).  The full run
  also checks every :data:`STREAM_EVERY`-th case in stream timing.
- sigma-delta (netx 'SDNN') networks, :func:`generator.make_sdnn_case`, in their own index space (the LIF cases
  above are unchanged): the normal suite runs the first :data:`SDNN_SUBSET` (marker ``lava``), the full run
  (marker ``slow``) ``LOIHIC_CONFORMANCE_SDNN_COUNT`` of them, by default ``LOIHIC_CONFORMANCE_COUNT`` (1000 in
  ``make conformance``), summary in ``runs/conformance/summary-sdnn-seed<S>.json``.  Stream
  timing only (their only timing); every layer's int32 messages and the last layer's final sigma compared.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

from loihic.compiler.errors import NetxFormatError
from loihic.compiler.netx.read import read_netx
from sim_tests.conformance import generator as gen
from sim_tests.conformance.harness import REPO, emulate, run_case

SEED = 1010
ENV_SEED, ENV_COUNT, ENV_SUBSET = "LOIHIC_CONFORMANCE_SEED", "LOIHIC_CONFORMANCE_COUNT", "LOIHIC_CONFORMANCE_SUBSET"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def seed() -> int:
    return _env_int(ENV_SEED, SEED)


def subset() -> int:
    return _env_int(ENV_SUBSET, 30)


ENV_SDNN_COUNT = "LOIHIC_CONFORMANCE_SDNN_COUNT"
SDNN_SUBSET = 8  # SDNN cases of the normal suite (0..7: dense, conv, conv+dense, flatten+dense; Delta / binary)
STREAM_SUBSET = 8  # cases of the suite also run in stream timing (Lava builds one network per sample there)
STREAM_EVERY = 3  # the full run also checks every third case in stream timing


@pytest.fixture(autouse=True)
def _quiet_netx():
    """netx prints a warning for every clipped weight matrix and divides by a zero max weight (its own
    arithmetic, mirrored by read_netx); both are expected for the weight styles drawn here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning, message="divide by zero")
        # netx's int() of the input layer's 1-element 'weight' / 'bias' (hdf5.py create_input), as in tiny.net
        warnings.filterwarnings("ignore", category=DeprecationWarning, message="Conversion of an array with ndim")
        yield


# --- the generator covers what the issue lists (no Lava) -----------------------------------------------------
def test_generator_covers_the_space():
    specs = [gen.make_case(seed(), i).spec for i in range(400)]
    layers = [lay for s in specs for lay in s["layers"]]
    synaptic = [lay for lay in layers if lay["type"] != "flatten"]
    neurons = [lay["neuron"] for lay in synaptic if lay["neuron"]] + [
        s["input_neuron"] for s in specs if s["input_neuron"]
    ]
    convs = [lay for lay in synaptic if lay["type"] == "conv"]
    assert {s["topology"] for s in specs} == set(gen.TOPOLOGIES)
    assert {s["input_mode"] for s in specs} == set(gen.INPUT_MODES)
    assert {sum(lay["type"] != "flatten" for lay in s["layers"]) for s in specs} == {1, 2, 3, 4, 5}
    for key in ("iDecay", "vDecay"):
        values = {n[key] for n in neurons}
        assert set(gen.DECAY_EDGES) <= values and len(values) > 100, key
    assert {0, 1, gen.VTH_NEVER - 1, gen.VTH_NEVER} <= {n["vThMant"] for n in neurons}
    assert any(c["groups"] > 1 for c in convs) and any(max(c["stride"]) > 1 for c in convs)
    assert any(max(c["padding"]) > 0 for c in convs) and any(max(c["dilation"]) > 1 for c in convs)
    assert any(c["weight"]["shape"][2] != c["weight"]["shape"][3] for c in convs)
    assert any(s["input_shape"][1] != s["input_shape"][2] for s in specs if len(s["input_shape"]) == 3)
    assert {lay.get("bias_kind") for lay in synaptic} == {None, "channel", "neuron"}
    assert {s["input_message_bits"] for s in specs} >= {0, 1, 8, 24}
    assert any(s["readout"] for s in specs) and any(lay["neuron"] is None for lay in synaptic)
    assert {lay["weight_style"] for lay in synaptic} >= {"even", "odd", "small", "excit", "inhib", "clipped", "large"}


def test_cases_are_reproducible():
    a, b = gen.make_case(seed(), 17), gen.make_case(seed(), 17)
    assert a.spec == b.spec and np.array_equal(a.x, b.x)
    assert all(
        np.array_equal(x["weight"], y["weight"]) for x, y in zip(a.layers, b.layers, strict=True) if "weight" in x
    )


def test_subset_wraps_u_and_clips_v(tmp_path):
    """The normal suite's cases reach the 24-bit u wrap and the v clip (counted on the emulator)."""
    total: Counter = Counter()
    for i in range(subset()):
        case = gen.make_case(seed(), i)
        path = gen.write_case(case, tmp_path / f"{i}.net")
        _, events = emulate(case, read_netx(path, input_shape=case.read_shape))
        total.update({k: int(v > 0) for k, v in events.items()})
    assert total["u_wrap"] >= 3 and total["v_clip"] >= 3 and total["spikes"] >= subset() // 2, dict(total)


# --- Lava against the emulator -------------------------------------------------------------------------------
@pytest.mark.lava
@pytest.mark.parametrize("index", range(subset()))
def test_conformance_subset(index):
    out = run_case(gen.make_case(seed(), index))
    assert out.ok, f"{out.name}: {out.problem} (saved in {out.saved})"


@pytest.mark.lava
@pytest.mark.parametrize("index", range(STREAM_SUBSET))
def test_conformance_subset_stream(index):
    """The same random networks in stream timing (a plain netx run per sample, biases during the fill)."""
    out = run_case(gen.make_case(seed(), index), stream=True)
    assert out.ok, f"{out.name} (stream): {out.problem} (saved in {out.saved})"


def _run_all(kind: str, count: int, one) -> None:
    """Run cases ``0..count-1`` through ``one(index) -> outcome`` (seed :func:`seed`): a line per case in
    ``runs/conformance/progress-<kind->seed<S>.log``, a summary (count, seed, time, failures, how many cases
    reached each event: u wrap, v clip, synaptic wrap, spikes/messages) in ``summary-<kind->seed<S>.json``
    (``kind`` '' for the LIF cases, 'temporal' or 'sdnn'), and a failure naming the first five that differ."""
    s, tag = seed(), f"{kind}-" if kind else ""
    log_dir = REPO / "runs" / "conformance"
    log_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    failures, reached, lava_s = [], Counter(), 0.0
    with open(log_dir / f"progress-{tag}seed{s}.log", "w") as log:
        for i in range(count):
            out = one(i)
            lava_s += out.lava_seconds
            reached.update({k: int(v > 0) for k, v in out.events.items()})
            line = f"{i} {'ok' if out.ok else 'FAIL'} {time.perf_counter() - t0:.0f}s {out.problem or ''}"
            print(line, file=log, flush=True)
            if not out.ok:
                failures.append({"case": out.name, "problem": out.problem, "saved": out.saved})
                print(f"conformance: {out.name}: {out.problem}", file=sys.stderr)
    summary = {
        **({"kind": kind} if kind else {}),
        "count": count,
        "seed": s,
        "seconds": round(time.perf_counter() - t0, 1),
        "lava_seconds": round(lava_s, 1),
        "failures": failures,
        "cases_reaching": dict(reached),  # cases with at least one u wrap / v clip / synaptic wrap / spike
    }
    (log_dir / f"summary-{tag}seed{s}.json").write_text(json.dumps(summary, indent=1) + "\n")
    assert not failures, f"{len(failures)} of {count} {tag.rstrip('-')} cases differ: {failures[:5]}"


@pytest.mark.slow
@pytest.mark.lava
def test_conformance_full():
    """``LOIHIC_CONFORMANCE_COUNT`` LIF cases in aligned timing, every :data:`STREAM_EVERY`-th also in stream."""

    def one(i):
        case = gen.make_case(seed(), i)
        out = run_case(case)
        if out.ok and i % STREAM_EVERY == STREAM_EVERY - 1:
            out = run_case(case, stream=True)
            out.name += " (stream)"
        return out

    _run_all("", _env_int(ENV_COUNT, 1000), one)


# --- recurrent ('dense_rec') and delayed ('delay') networks --------------------------------------------------
ENV_TEMPORAL_COUNT = "LOIHIC_CONFORMANCE_TEMPORAL_COUNT"
TEMPORAL_SUBSET = 8  # cases of the normal suite (even: aligned timing, odd: stream timing)


def test_temporal_generator_covers_the_space():
    cases = [gen.make_temporal_case(seed(), i) for i in range(80)]
    layers = [lay for c in cases for lay in c.layers]
    assert {lay.get("temporal") for lay in layers} >= {"rec", "delay", "plain"}
    assert {lay.get("delay_form") for lay in layers} >= set(gen.DELAY_FORMS)
    assert max(int(lay["delay"].max()) for lay in layers if "delay" in lay) == 62
    assert {c.spec["stream"] for c in cases} == {False, True}
    assert min(c.spec["timesteps"] for c in cases) <= 2 and max(c.spec["timesteps"] for c in cases) >= 60
    assert {c.spec["input_message_bits"] > 0 for c in cases} == {False, True}
    a, b = gen.make_temporal_case(seed(), 3), gen.make_temporal_case(seed(), 3)
    assert a.spec == b.spec and np.array_equal(a.x, b.x)


@pytest.mark.lava
@pytest.mark.parametrize("index", range(TEMPORAL_SUBSET))
def test_conformance_temporal_subset(index):
    case = gen.make_temporal_case(seed(), index)
    out = run_case(case, stream=case.spec["stream"])
    assert out.ok, f"{out.name}: {out.problem} (saved in {out.saved})"


@pytest.mark.slow
@pytest.mark.lava
def test_conformance_temporal_full():
    """``LOIHIC_CONFORMANCE_TEMPORAL_COUNT`` (default ``LOIHIC_CONFORMANCE_COUNT``) recurrent / delayed cases."""

    def one(i):
        case = gen.make_temporal_case(seed(), i)
        return run_case(case, stream=case.spec["stream"])

    _run_all("temporal", _env_int(ENV_TEMPORAL_COUNT, _env_int(ENV_COUNT, 1000)), one)


# --- sigma-delta (SDNN) networks -----------------------------------------------------------------------------
def test_sdnn_generator_covers_the_space():
    specs = [gen.make_sdnn_case(seed(), i).spec for i in range(240)]
    synaptic = [lay for s in specs for lay in s["layers"] if lay["type"] != "flatten"]
    convs = [lay for lay in synaptic if lay["type"] == "conv"]
    neurons = [lay["neuron"] for lay in synaptic] + [s["input_neuron"] for s in specs if s["input_neuron"]]
    assert {s["topology"] for s in specs} == set(gen.TOPOLOGIES)
    assert {s["sdnn_input"] for s in specs} == set(gen.SDNN_INPUT_MODES)
    assert {s["input_message_bits"] for s in specs} == {0, gen.SDNN_GRADED_BITS}
    assert {sum(lay["type"] != "flatten" for lay in s["layers"]) for s in specs} == {1, 2, 3, 4}
    assert {n["kind"] for n in neurons} == {"delta", "sigma_delta", "sigma"}
    assert {s["readout"] for s in specs} == {True, False}  # the last layer a Sigma, or a SigmaDelta
    assert all(lay.get("neuron", {}).get("kind") != "sigma" for s in specs for lay in s["layers"][:-1])
    vths = {n["vThMant"] for n in neurons if n["kind"] != "sigma"}
    assert {0, 1, gen.SDNN_VTH_MAX} <= vths and any(1000 < v < gen.SDNN_VTH_MAX for v in vths) and len(vths) > 100
    assert {lay.get("bias_kind") for lay in synaptic} == {None, "channel", "neuron"}
    assert all("bias" not in lay for lay in synaptic if lay["neuron"]["kind"] == "sigma")
    assert any(c["groups"] > 1 for c in convs) and any(max(c["stride"]) > 1 for c in convs)
    assert any(max(c["padding"]) > 0 for c in convs) and any(max(c["dilation"]) > 1 for c in convs)
    styles = {s["input_style"] for s in specs if s["sdnn_input"] == "delta"}
    assert styles == {"image", "drift", "held", "wrap", "signed"}
    assert {s["styles"]["sdnn_writer"] for s in specs} == {"loihic", "bare", "int1"}
    assert min(s["samples"] for s in specs) >= 2


def test_sdnn_cases_are_reproducible_and_apart_from_the_lif_cases():
    a, b = gen.make_sdnn_case(seed(), 5), gen.make_sdnn_case(seed(), 5)
    assert a.spec == b.spec and np.array_equal(a.x, b.x) and a.name == f"seed{seed()}-sdnn5" and a.sigma_delta
    assert not gen.make_case(seed(), 5).sigma_delta


def test_sdnn_subset_wraps_and_sends(tmp_path):
    """The suite's SDNN cases wrap the dense int32 sum and the conv's 24-bit accumulator, feed a Delta values
    whose ``a << 12`` leaves int32, and send messages (counted on the emulator, both modes equal)."""
    total: Counter = Counter()
    for i in range(SDNN_SUBSET):
        case = gen.make_sdnn_case(seed(), i)
        path = gen.write_case(case, tmp_path / f"{i}.net")
        _, events = emulate(case, read_netx(path, input_shape=case.read_shape, sigma_delta=True))
        total.update({k: int(v > 0) for k, v in events.items()})
        total["delta_a_wraps"] += int(case.spec["sdnn_input"] == "delta" and np.abs(case.x).max() >= 1 << 19)
    assert total["dense_wrap"] >= 1 and total["conv_wrap"] >= 1 and total["delta_a_wraps"] >= 1, dict(total)
    assert total["spikes"] == SDNN_SUBSET, dict(total)


@pytest.mark.lava
@pytest.mark.parametrize("index", range(SDNN_SUBSET))
def test_conformance_sdnn_subset(index):
    out = run_case(gen.make_sdnn_case(seed(), index))
    assert out.ok, f"{out.name}: {out.problem} (saved in {out.saved})"


@pytest.mark.slow
@pytest.mark.lava
def test_conformance_sdnn_full():
    """``LOIHIC_CONFORMANCE_SDNN_COUNT`` (default ``LOIHIC_CONFORMANCE_COUNT``) sigma-delta cases, stream timing."""
    _run_all(
        "sdnn", _env_int(ENV_SDNN_COUNT, _env_int(ENV_COUNT, 1000)), lambda i: run_case(gen.make_sdnn_case(seed(), i))
    )


# --- a file layout netx refuses (found by this generator), refused by read_netx too ---------------------
def _conv_file(path: Path, bias: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        g = f.create_group("layer/0")
        g["type"], g["shape"] = "input", np.asarray([1, 4, 3])
        g = f.create_group("layer/1")
        g["type"], g["shape"] = "conv", np.asarray([2, 4, 3])
        g["weight"] = np.full((2, 1, 1, 1), 2.0, np.float32)
        g["stride"], g["padding"], g["dilation"], g["groups"] = 1, 0, 1, 1
        g["bias"] = bias.astype(np.float32)
        n = g.create_group("neuron")
        n["type"], n["vThMant"], n["iDecay"], n["vDecay"] = "CUBA", 10, 4096, 4096
    return path


@pytest.mark.parametrize("shape", [(24,), (2, 4, 3)], ids=["flat", "torch-CHW"])
def test_per_neuron_conv_bias_netx_cannot_build_is_refused(tmp_path, shape):
    path = _conv_file(tmp_path / "b.net", np.arange(24).reshape(shape))
    with pytest.raises(NetxFormatError, match=r"conv bias of shape .*; netx takes \(2,\) per channel or Lava's"):
        read_netx(path)


# --- minimised from cases 210, 254, 426, 450 and 666 of seed 1010 (graded input into a conv) -----------------
@pytest.mark.lava
def test_conv_sum_beyond_int32_matches_lava(tmp_path):
    """A 24-bit input times weights 127 .. 254: sums from just below to far above 2^31.  Lava casts its float64
    conv sum with astype(int32) (INT_MIN when outside) before the 24-bit wrap, so those read out 0."""
    from loihic.deploy.emulator.network import Emulator
    from loihic.deploy.lava.run import run_lava

    weights = np.asarray([64, 127, 128, 200, 254], np.float32)
    path = tmp_path / "c.net"
    with h5py.File(path, "w") as f:
        g = f.create_group("layer/0")
        g["type"], g["shape"] = "input", np.asarray([1, 1, 1])
        g = f.create_group("layer/1")
        g["type"], g["shape"] = "conv", np.asarray([len(weights), 1, 1])
        g["weight"] = weights.reshape(-1, 1, 1, 1)
        g["stride"], g["padding"], g["dilation"], g["groups"] = 1, 0, 1, 1
        n = g.create_group("neuron")  # read-out: v = u = a << 6 every step
        n["type"], n["vThMant"], n["iDecay"], n["vDecay"] = "CUBA", gen.VTH_NEVER, 4096, 4096
    x = np.full((1, 1, 1, 1, 2), (1 << 24) - 1, np.int64)
    model = read_netx(path)
    emu = Emulator(model, device="cpu", input_message_bits=24).run(x)
    lava = run_lava(str(path), x, input_message_bits=24, read_v=True, progress=False, model=model)
    assert emu.output_v.ravel().tolist() == lava.output_v.ravel().tolist()
    assert emu.output_v.ravel().tolist()[-2:] == [0, 0]  # 200 and 254 times 2^24 - 1 leave int32
