"""Random netx networks for the Lava-vs-emulator conformance test, written with h5py straight from the spec.

A case is a pure function of ``(seed, index)``: :func:`make_case` draws everything from
``np.random.default_rng([seed, index])``, so any one case can be regenerated on its own.  The *structure*
(topology x input layer x graded input) cycles with the index, so that every run of 24 consecutive cases
covers each combination once; everything else is random:

- topologies: ``dense`` (input (n,)), ``conv`` (conv stack on (C, H, W)), ``conv+dense`` (conv stack,
  flatten, dense stack), ``flatten+dense`` (an image flattened into dense layers); 1 to 5 synaptic layers;
- input: an ``input`` layer with only a shape, one with a CUBA neuron (Lava drives its ``a_in``), or no input
  layer at all (a conv-first file then needs ``read_netx(path, input_shape=...)`` and netx's ``input_shape``);
- conv: non-square kernels (1..4) and inputs, stride 1..3, padding 0..2, dilation 1..2, groups > 1, stored as
  scalars or (H, W) pairs; conv weights are raw integers (netx passes them unchanged, spec 2.2);
- dense weights in several styles: slayer's even [-256, 254], odd [-127, 127], small (netx's weight_exp < 0),
  excitatory-only, inhibitory-only, out of range (netx clips), sparse;
- neurons: iDecay / vDecay over 0..4096 with the edges 0, 1, 4095, 4096 drawn often, thresholds 0 .. 2^17
  (and beyond: never fires), biases per channel or per neuron (a conv's in Lava's (W, H, C) shape, the only
  per-neuron layout netx builds) up to the int16 range, read-out layers that never
  spike (threshold 2^17, or a dense layer without a ``neuron`` group: netx's default integrator);
- drive: a "hot" case biases weights positive with dense input, so u wraps at 24 bits (and a << 6 at 32) and v
  clips at +-(2^23 - 1);
- input: binary spikes, or graded integers of 1..8 bits (sometimes 12..24 bits);
- dataset dtypes as different writers store them: float32 / int64 / int16 weights, int64 / int32 / integral
  float64 neuron constants, ``type`` as slayer's S10 array or a scalar string.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from loihic.compiler.netx.model import NxSigmaDelta
from loihic.compiler.netx.write import write_sdnn_neuron

TOPOLOGIES = ("dense", "conv", "conv+dense", "flatten+dense")
INPUT_MODES = ("layer", "none", "neuron")  # 'layer': input layer with a shape only; 'neuron': with a CUBA neuron
DECAY_EDGES = (0, 1, 4095, 4096)
VTH_NEVER = 1 << 17  # (1 << 17) << 6 = 2^23 > the largest v: never fires
STRUCTURES = len(TOPOLOGIES) * len(INPUT_MODES) * 2  # the index cycles through these (x binary/graded)


@dataclass
class Case:
    """One random network and its input.  ``spec`` is JSON (everything but the arrays); ``layers`` holds
    the per-layer dicts the writer stores, arrays included; ``x`` is (N, *input_shape, T) int64."""

    spec: dict[str, Any]
    layers: list[dict[str, Any]] = field(repr=False)
    x: np.ndarray = field(repr=False)

    @property
    def sigma_delta(self) -> bool:
        """An SDNN case (:func:`make_sdnn_case`): read with ``sigma_delta=True``, run in stream timing."""
        return self.spec.get("kind") == "sdnn"

    @property
    def name(self) -> str:
        kind = {"sdnn": "sdnn", "temporal": "temporal"}.get(self.spec.get("kind", ""), "case")
        return f"seed{self.spec['seed']}-{kind}{self.spec['index']}"

    @property
    def bits(self) -> int:
        return int(self.spec["input_message_bits"])

    @property
    def read_shape(self) -> tuple[int, ...] | None:
        """What ``read_netx(path, input_shape=...)`` gets: the shape for a file without an input layer."""
        return tuple(self.spec["input_shape"]) if self.spec["input_mode"] == "none" else None


# --- parameter draws ------------------------------------------------------------------------------------
def _decay(rng: np.random.Generator) -> int:
    r = rng.random()
    if r < 0.35:
        return int(rng.choice(DECAY_EDGES))
    if r < 0.6:  # small decays (long memory), where rs0 rounding matters most
        return int(rng.integers(0, 64))
    return int(rng.integers(0, 4097))


def _threshold(rng: np.random.Generator, drive: float) -> int:
    """vThMant: mostly a fraction of ``drive`` (the typical positive input current per step, in a-units) so
    that layers fire at all, sometimes anything in 0 .. 2^17 - 1, the edges, or beyond reach."""
    r = rng.random()
    if r < 0.08:
        return int(rng.choice((0, 1, VTH_NEVER - 1)))
    if r < 0.11:
        return int(rng.integers(VTH_NEVER, 1 << 18))  # above the v clip: never fires
    if r < 0.3:
        return int(round(math.exp(rng.uniform(0.0, math.log(VTH_NEVER - 1)))))
    return int(min(VTH_NEVER - 1, round(max(drive, 1.0) * math.exp(rng.uniform(math.log(0.05), math.log(3.0))))))


def _bias(rng: np.random.Generator, n: int) -> np.ndarray:
    r = rng.random()
    if r < 0.1:
        hi = 1 << 15  # beyond loihic's 13-bit writer range, within Lava's int16 bias_mant
        b = rng.integers(-hi, hi, n)
    else:
        mag = int(rng.choice((8, 128, 1024, 4096)))
        b = rng.integers(-mag, min(mag, 4095) + 1, n)
    if rng.random() < 0.15:
        b[rng.integers(0, n)] = rng.choice((-4096, 4095))
    return b.astype(np.int64)


def _neuron(rng: np.random.Generator, readout: bool, drive: float) -> dict[str, Any]:
    return {
        "type": "CUBA" if rng.random() < 0.8 else "LOIHI",
        "vThMant": VTH_NEVER if readout else _threshold(rng, drive),
        "iDecay": _decay(rng),
        "vDecay": _decay(rng),
    }


def _sparsify(rng: np.random.Generator, w: np.ndarray) -> np.ndarray:
    if rng.random() < 0.3:
        w = w * (rng.random(w.shape) < rng.uniform(0.1, 0.9))
    if not w.any():
        w.flat[rng.integers(0, w.size)] = rng.choice((-2, 2))
    return w


def _dense_weight(rng: np.random.Generator, shape: tuple[int, int], hot: bool) -> tuple[np.ndarray, str]:
    styles = ("even", "odd", "small", "excit", "inhib", "clipped")
    style = "excit" if hot and rng.random() < 0.6 else str(rng.choice(styles, p=(0.45, 0.12, 0.12, 0.12, 0.1, 0.09)))
    if style == "even":
        lo = -64 if hot else -128
        w = rng.integers(lo, 128, shape) * 2
    elif style == "odd":
        w = rng.integers(-127, 128, shape)
    elif style == "small":
        m = int(rng.integers(1, 16))
        w = rng.integers(-m, m + 1, shape)
    elif style == "excit":
        w = rng.integers(0, 256, shape)
    elif style == "inhib":
        w = -rng.integers(0, 257, shape)
    else:  # beyond [-256, 254]: netx clips (a mixed matrix) before Lava sees it
        w = rng.integers(-400, 401, shape)
    return _sparsify(rng, w.astype(np.int64)), style


def _conv_weight(rng: np.random.Generator, shape: tuple[int, ...], hot: bool) -> tuple[np.ndarray, str]:
    style = str(rng.choice(("even", "any", "small", "large"), p=(0.5, 0.2, 0.15, 0.15)))
    if style == "even":
        w = rng.integers(-64 if hot else -128, 128, shape) * 2
    elif style == "any":
        w = rng.integers(-256, 256, shape)
    elif style == "small":
        w = rng.integers(-4, 5, shape)
    else:  # netx passes conv weights raw; Lava's conv wraps the sum at 24 bits
        w = rng.integers(-3000 if not hot else -500, 3001, shape)
    return _sparsify(rng, w.astype(np.int64)), style


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _conv_layer(rng: np.random.Generator, shape: tuple[int, int, int], hot: bool) -> dict[str, Any]:
    """One conv layer on (C, H, W) ``shape`` whose output is not empty (after 20 draws: a 1x1 kernel)."""
    c_in, h, w = shape
    for attempt in range(21):
        groups = int(rng.choice(_divisors(c_in))) if rng.random() < 0.4 else 1
        c_out = groups * int(rng.integers(1, max(2, 7 // groups) + 1))
        kernel = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4))) if rng.random() < 0.5 else (1, 1)
        padding = (int(rng.integers(0, 3)), int(rng.integers(0, 3))) if rng.random() < 0.6 else (0, 0)
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if rng.random() < 0.2 else (1, 1)
        if attempt == 20:
            kernel, stride, padding, dilation = (1, 1), (1, 1), (0, 0), (1, 1)
        out_hw = tuple(
            (s + 2 * p - d * (k - 1) - 1) // st + 1
            for s, p, d, k, st in zip((h, w), padding, dilation, kernel, stride, strict=True)
        )
        if min(out_hw) < 1:
            continue
        weight, style = _conv_weight(rng, (c_out, c_in // groups, *kernel), hot)
        return {
            "type": "conv",
            "shape": (c_out, *out_hw),
            "weight": weight,
            "weight_style": style,
            "stride": stride,
            "padding": padding,
            "dilation": dilation,
            "groups": groups,
        }
    raise AssertionError("unreachable: a 1x1 kernel always fits")


def _with_neuron(rng: np.random.Generator, layer: dict[str, Any], readout: bool, in_max: int) -> dict[str, Any]:
    """Add a neuron (and maybe a bias) to ``layer``; ``in_max`` is the largest input value (1 for spikes)."""
    n_out = int(np.prod(layer["shape"]))
    w = layer["weight"]
    drive = float(np.maximum(w.reshape(w.shape[0], -1), 0).sum(axis=1).mean()) * 0.3 * in_max
    if layer["type"] == "dense" and readout and rng.random() < 0.4:
        layer["neuron"] = None  # netx's default: iDecay 0, vDecay 4096, vThMant 1 << 17 (never fires)
    else:
        layer["neuron"] = _neuron(rng, readout, drive)
    if rng.random() < 0.5:
        per_channel = layer["type"] == "conv" and rng.random() < 0.5
        layer["bias"] = _bias(rng, layer["shape"][0] if per_channel else n_out)
        layer["bias_kind"] = "channel" if per_channel else "neuron"
    return layer


# --- the case ------------------------------------------------------------------------------------------
def structure(index: int) -> tuple[str, str, bool]:
    """(topology, input mode, graded) of case ``index``: every STRUCTURES consecutive cases hold each once."""
    k = index % STRUCTURES
    return TOPOLOGIES[k % 4], INPUT_MODES[(k // 4) % 3], bool(k // 12)


def _input_bits(rng: np.random.Generator, graded: bool) -> int:
    if not graded:
        return 0
    return int(rng.integers(1, 9)) if rng.random() < 0.8 else int(rng.choice((12, 16, 20, 24)))


def _inputs(rng: np.random.Generator, shape: tuple[int, ...], bits: int, n: int, steps: int, hot: bool) -> np.ndarray:
    density = rng.uniform(0.5, 0.95) if hot else rng.uniform(0.05, 0.9)
    on = rng.random((n, *shape, steps)) < density
    if bits == 0:
        return on.astype(np.int64)
    hi = (1 << bits) - 1
    values = rng.integers(0, hi + 1, on.shape) if rng.random() < 0.7 else np.full(on.shape, hi)
    return (values * on).astype(np.int64)


def make_case(seed: int, index: int) -> Case:
    rng = np.random.default_rng([seed, index])
    topology, mode, graded = structure(index)
    hot = rng.random() < 0.3
    n_syn = int(rng.integers(2 if topology == "conv+dense" else 1, 6))
    readout = rng.random() < 0.3
    bits = _input_bits(rng, graded)
    if topology == "dense":
        shape: tuple[int, ...] = (int(rng.integers(1, 129 if hot else 65)),)
    else:
        shape = (int(rng.integers(1, 5)), int(rng.integers(2, 10)), int(rng.integers(2, 10)))
    layers: list[dict[str, Any]] = []
    cur = shape
    n_conv = {"dense": 0, "conv": n_syn, "conv+dense": max(1, n_syn - 1), "flatten+dense": 0}[topology]
    for i in range(n_syn):
        last = i == n_syn - 1
        if i < n_conv:
            layer = _conv_layer(rng, cur, hot)  # type: ignore[arg-type]
        else:
            if len(cur) == 3:
                layers.append({"type": "flatten", "shape": (int(np.prod(cur)),)})
                cur = (int(np.prod(cur)),)
            n_out = int(rng.integers(1, 33))
            weight, style = _dense_weight(rng, (n_out, cur[0]), hot)
            layer = {"type": "dense", "shape": (n_out,), "weight": weight, "weight_style": style}
        in_max = (1 << bits) - 1 if bits and i == 0 and mode != "neuron" else 1
        layers.append(_with_neuron(rng, layer, readout and last, in_max))
        cur = tuple(layer["shape"])
    steps, samples = int(rng.integers(3, 11)), int(rng.integers(2, 6))
    spec = {
        "seed": int(seed),
        "index": int(index),
        "topology": topology,
        "input_mode": mode,
        "input_shape": list(shape),
        "input_neuron": _neuron(rng, False, 0.3 * ((1 << bits) - 1 if bits else 1)) if mode == "neuron" else None,
        "input_message_bits": bits,
        "hot": bool(hot),
        "readout": bool(readout),
        "timesteps": steps,
        "samples": samples,
        "styles": _styles(rng),
        "layers": [_layer_json(lay) for lay in layers],
    }
    x = _inputs(rng, shape, bits, samples, steps, hot)
    return Case(spec, layers, x)


def _styles(rng: np.random.Generator) -> dict[str, str]:
    """How the datasets are stored (netx reads all of these the same way)."""
    return {
        "type": str(rng.choice(("S10", "str"))),
        "weight": str(rng.choice(("float32", "int64", "int16"), p=(0.6, 0.3, 0.1))),
        "neuron": str(rng.choice(("int64", "int32", "float64"), p=(0.5, 0.25, 0.25))),
        "pairs": str(rng.choice(("pair", "scalar"))),  # conv stride / padding / dilation when H == W
        "dense_shape": str(rng.choice(("n", "n11"), p=(0.8, 0.2))),
    }


def _layer_json(layer: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in layer.items():
        if isinstance(v, np.ndarray):
            out[k] = {"shape": list(v.shape), "min": int(v.min()), "max": int(v.max())}
        else:
            out[k] = list(v) if isinstance(v, tuple) else v
    return out


# --- writing the netx file (spec 1) ----------------------------------------------------------------------
def _type(g: h5py.Group, name: str, style: str) -> None:
    if style == "S10":
        g.create_dataset("type", (1,), "S10", [name.encode("ascii")])
    else:
        g["type"] = name


def _write_neuron(g: h5py.Group, neuron: dict[str, Any], styles: dict[str, str]) -> None:
    ng = g.create_group("neuron")
    _type(ng, neuron["type"], styles["type"])
    dtype = np.dtype(styles["neuron"])
    for key in ("vThMant", "iDecay", "vDecay"):
        ng[key] = dtype.type(neuron[key])
    ng["refDelay"] = np.int64(1)  # ignored by netx, as slayer writes it


def _pair_data(v: tuple[int, int], style: str) -> np.ndarray:
    if style == "scalar" and v[0] == v[1]:
        return np.int64(v[0])
    return np.asarray(v, np.int64)


def write_case(case: Case, path: str | Path) -> Path:
    """The case as a netx HDF5 file (datasets only, layers 0..N-1; spec 1.1-1.3)."""
    path = Path(path)
    styles = case.spec["styles"]
    wdtype = np.dtype(styles["weight"])
    with h5py.File(path, "w") as f:
        lg = f.create_group("layer")
        i = 0
        if case.spec["input_mode"] != "none":
            g = lg.create_group("0")
            _type(g, "input", styles["type"])
            g["shape"] = np.asarray(case.spec["input_shape"], np.int64)
            if case.sigma_delta:
                _write_sdnn_neuron(g, case.spec["input_neuron"], styles)
            elif case.spec["input_neuron"] is not None:
                _write_neuron(g, case.spec["input_neuron"], styles)
                # netx never applies an input layer's weight / bias (spec 1.5; tiny.net has both)
                g["weight"] = np.asarray([64.0], np.float32)
                g["bias"] = np.asarray([float(case.spec["index"] % 7)], np.float32)
            i = 1
        for layer in case.layers:
            g = lg.create_group(str(i))
            i += 1
            _type(g, layer["type"], styles["type"])
            shape = tuple(layer["shape"])
            if layer["type"] == "dense" and styles["dense_shape"] == "n11":
                shape = (shape[0], 1, 1)
            g["shape"] = np.asarray(shape, np.int64)
            if layer["type"] == "flatten":
                continue
            w = layer["weight"]
            g["weight"] = w.astype(wdtype) if np.array_equal(w.astype(wdtype), w) else w
            if "weight_rec" in layer:
                wr = layer["weight_rec"]
                g["weight_rec"] = wr.astype(wdtype) if np.array_equal(wr.astype(wdtype), wr) else wr
            if "delay" in layer:  # slayer writes floor(delay) per output neuron as floats
                d = layer["delay"]
                g["delay"] = d.astype(np.float32) if layer["delay_form"] == "output" else d
            if layer["type"] == "conv":
                for key in ("stride", "padding", "dilation"):
                    g[key] = _pair_data(tuple(layer[key]), styles["pairs"])
                g["groups"] = np.int64(layer["groups"])
            if "bias" in layer:
                bias = layer["bias"].astype(np.float32)  # exact: |bias| < 2^24
                if layer.get("bias_kind") == "neuron" and layer["type"] == "conv":
                    # per neuron: an array of Lava's (W, H, C) shape (netx/blocks/process.py _neuron)
                    bias = bias.reshape(shape).transpose(2, 1, 0)
                g["bias"] = bias
            if case.sigma_delta:
                _write_sdnn_neuron(g, layer["neuron"], styles)
            elif layer["neuron"] is not None:
                _write_neuron(g, layer["neuron"], styles)
    return path


def save_case(case: Case, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """``folder``/net.net, input.npy and case.json (the spec plus ``extra``): a replayable failure."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_case(case, folder / "net.net")
    np.save(folder / "input.npy", case.x)
    (folder / "case.json").write_text(json.dumps({**case.spec, **(extra or {})}, indent=1, default=str) + "\n")
    return folder


# --- sigma-delta (netx 'SDNN') cases -------------------------------------------------------------------
# Their own index space and random stream (``default_rng([seed, index, SDNN_STREAM])``): the LIF cases above
# stay what they were for every (seed, index).  Stream timing only (netx never resets a sigma-delta network).
SDNN_STREAM = 2  # the third entropy word that sets an SDNN case's random stream apart from a LIF case's
SDNN_INPUT_MODES = ("delta", "binary", "graded")  # an 'input' layer (Delta); none: binary or 16-bit graded
SDNN_STRUCTURES = len(TOPOLOGIES) * len(SDNN_INPUT_MODES)
SDNN_VTH_MAX = (1 << 19) - 1  # vThMant << 12 fits Lava's int32 vth (schema.SDNN_VTH_MANT_MAX)
SDNN_GRADED_BITS = 16  # netx's Network(input_message_bits=16) for a graded source without an 'input' layer


def sdnn_structure(index: int) -> tuple[str, str]:
    """(topology, input mode) of SDNN case ``index``: every SDNN_STRUCTURES consecutive cases hold each once."""
    k = index % SDNN_STRUCTURES
    return TOPOLOGIES[k % 4], SDNN_INPUT_MODES[k // 4]


def _sdnn_threshold(rng: np.random.Generator, drive: float) -> int:
    """vThMant: send iff |change| >= vThMant << 12.  ``drive``: the typical |synaptic value| per step (in
    the units sigma sums), so vThMant ~ drive / 4096 lets a fair share of changes through."""
    r = rng.random()
    if r < 0.12:
        return int(rng.choice((0, 0, 1, SDNN_VTH_MAX)))
    if r < 0.3:
        return int(round(math.exp(rng.uniform(0.0, math.log(SDNN_VTH_MAX)))))
    rel = max(drive, 1.0) / 4096 * math.exp(rng.uniform(math.log(0.02), math.log(3.0)))
    return int(min(SDNN_VTH_MAX, round(rel)))


def _sdnn_neuron(rng: np.random.Generator, layer: dict[str, Any], last: bool, in_mag: float) -> float:
    """Give ``layer`` a SigmaDelta (maybe with a bias) or, last, sometimes a Sigma; returns the typical
    |message| it sends (the next layer's ``in_mag``)."""
    w = layer["weight"]
    drive = float(np.abs(w.reshape(w.shape[0], -1)).sum(axis=1).mean()) * 0.4 * in_mag
    if last and rng.random() < 0.5:
        layer["neuron"] = {"kind": "sigma", "vThMant": 0}
        return drive
    layer["neuron"] = {"kind": "sigma_delta", "vThMant": _sdnn_threshold(rng, drive)}
    if rng.random() < 0.5:
        n_out = int(np.prod(layer["shape"]))
        per_channel = layer["type"] == "conv" and rng.random() < 0.5
        layer["bias"] = _bias(rng, layer["shape"][0] if per_channel else n_out)
        layer["bias_kind"] = "channel" if per_channel else "neuron"
    return max(drive / 64, 1.0)  # the message is the change >> 6


def _sdnn_inputs(
    rng: np.random.Generator, shape: tuple[int, ...], mode: str, n: int, steps: int, hot: bool
) -> tuple[np.ndarray, str]:
    """(N, *shape, T) int64 and how it was drawn: spikes, 16-bit graded values, or what a Delta input layer
    encodes (images, drifting values, values whose ``a << 12`` wraps int32, held frames)."""
    density = rng.uniform(0.5, 1.0) if hot else rng.uniform(0.05, 0.95)
    on = rng.random((n, *shape, steps)) < density
    if mode == "binary":
        return on.astype(np.int64), "spikes"
    if mode == "graded":
        hi = (1 << SDNN_GRADED_BITS) - 1 if hot or rng.random() < 0.3 else int(rng.choice((1, 15, 255, 4095)))
        lo = 0 if rng.random() < 0.6 else -hi
        return (rng.integers(lo, hi + 1, on.shape) * on).astype(np.int64), f"graded [{lo}, {hi}]"
    style = "wrap" if hot and rng.random() < 0.6 else str(rng.choice(("image", "drift", "held", "wrap", "signed")))
    full = (n, *shape, steps)
    if style == "image":
        x = rng.integers(0, 256, full) * on
    elif style == "drift":  # small changes around a level: the thresholds decide what is sent
        x = np.cumsum(rng.integers(-3, 4, full), axis=-1) + rng.integers(0, 300, (n, *shape, 1))
    elif style == "held":  # one frame for all steps: only the first step (and the residues) send
        x = np.repeat(rng.integers(0, 256, (n, *shape, 1)), steps, axis=-1)
    elif style == "wrap":  # a << 12 leaves int32 from |a| >= 2^19: Lava wraps it
        edge = 1 << 19
        x = rng.choice(np.asarray([edge, -edge, edge - 1, edge + 1, 3 << 18, 1 << 20, 1 << 24, 0, 1]), full)
        x = np.where(rng.random(full) < 0.5, rng.integers(-(1 << 24), 1 << 24, full), x) * on
    else:
        x = rng.integers(-4096, 4097, full) * on
    return x.astype(np.int64), style


def make_sdnn_case(seed: int, index: int) -> Case:
    """SDNN case ``index`` of ``seed``: a random sigma-delta network (every layer an 'SDNN' neuron group) and
    its inputs, a pure function of ``(seed, index)`` (independent of :func:`make_case`'s cases)."""
    rng = np.random.default_rng([seed, index, SDNN_STREAM])
    topology, mode = sdnn_structure(index)
    hot = rng.random() < 0.3
    n_syn = int(rng.integers(2 if topology == "conv+dense" else 1, 5))
    if topology == "dense":
        shape: tuple[int, ...] = (int(rng.integers(1, 161 if hot else 49)),)
    else:
        shape = (int(rng.integers(1, 5)), int(rng.integers(2, 10)), int(rng.integers(2, 10)))
    bits = SDNN_GRADED_BITS if mode == "graded" else 0
    steps, samples = int(rng.integers(4, 13)), int(rng.integers(2, 4))
    x, input_style = _sdnn_inputs(rng, shape, mode, samples, steps, hot)
    if mode == "delta":
        in_vth = _sdnn_threshold(rng, float(np.abs(np.diff(x, axis=-1)).mean() if steps > 1 else 1) * 4096)
        input_neuron: dict[str, Any] | None = {"kind": "delta", "vThMant": in_vth}
        in_mag = max(float(np.abs(x).mean()) * 64, 1.0)  # the Delta's message: the change << 12 >> 6
    else:
        input_neuron, in_mag = None, max(float(np.abs(x).mean()), 1.0)
    layers: list[dict[str, Any]] = []
    cur = shape
    n_conv = {"dense": 0, "conv": n_syn, "conv+dense": max(1, n_syn - 1), "flatten+dense": 0}[topology]
    for i in range(n_syn):
        if i < n_conv:
            layer = _conv_layer(rng, cur, hot)  # type: ignore[arg-type]
        else:
            if len(cur) == 3:
                layers.append({"type": "flatten", "shape": (int(np.prod(cur)),)})
                cur = (int(np.prod(cur)),)
            n_out = int(rng.integers(1, 33))
            weight, style = _dense_weight(rng, (n_out, cur[0]), hot)
            layer = {"type": "dense", "shape": (n_out,), "weight": weight, "weight_style": style}
        in_mag = _sdnn_neuron(rng, layer, i == n_syn - 1, in_mag)
        layers.append(layer)
        cur = tuple(layer["shape"])
    spec = {
        "seed": int(seed),
        "index": int(index),
        "kind": "sdnn",
        "topology": topology,
        "input_mode": "layer" if mode == "delta" else "none",
        "sdnn_input": mode,
        "input_style": input_style,
        "input_shape": list(shape),
        "input_neuron": input_neuron,
        "input_message_bits": bits,
        "hot": bool(hot),
        "readout": layers[-1]["neuron"]["kind"] == "sigma",
        "timesteps": steps,
        "samples": samples,
        "styles": {**_styles(rng), "sdnn_writer": str(rng.choice(("loihic", "bare", "int1")))},
        "layers": [_layer_json(lay) for lay in layers],
    }
    return Case(spec, layers, x)


def _write_sdnn_neuron(g: h5py.Group, neuron: dict[str, Any], styles: dict[str, str]) -> None:
    """An 'SDNN' neuron group: as loihic's writer (and slayer) stores it, or without the 'activation' key
    ('bare'), or with vThMant in the case's dtype and 'sigma_output' as an integer 1 ('int1')."""
    writer = styles.get("sdnn_writer", "loihic")
    if writer == "loihic":
        write_sdnn_neuron(g, NxSigmaDelta(neuron["kind"], int(neuron["vThMant"]), None))
        return
    ng = g.create_group("neuron")
    _type(ng, "SDNN", styles["type"])
    if neuron["kind"] == "sigma":
        ng["sigma_output"] = np.bool_(True) if writer == "bare" else np.int64(1)
    else:
        ng["vThMant"] = np.dtype(styles["neuron"]).type(neuron["vThMant"])


# --- recurrent ('dense_rec') and delayed ('delay') cases ----------------------------------------------------
# Their own index space and random stream (``default_rng([seed, index, TEMPORAL_STREAM])``): a LIF case of
# :func:`make_case` without an input neuron, whose dense layers become recurrent, delayed or stay plain; delays in
# every form netx reads (per synapse, per output as slayer's float floor(delay), per input, a scalar), up to 62
# steps, with long and short samples; aligned timing for even indices, stream timing for odd ones.
TEMPORAL_STREAM = 3
DELAY_FORMS = ("synapse", "output", "input", "scalar")


def _temporal_layer(rng: np.random.Generator, layer: dict[str, Any], first: bool) -> None:
    n_out, n_in = layer["weight"].shape
    kind = str(rng.choice(("rec", "delay", "plain"), p=(0.4, 0.4, 0.2)))
    if first and kind == "plain":
        kind = "delay"
    layer["temporal"] = kind
    if kind == "rec":
        style = layer["weight_style"]
        scale = 1 if style in ("small", "odd") else 2
        w_rec = rng.integers(-16 if style == "small" else -127, 128, (n_out, n_out)) * scale
        if style in ("excit", "inhib"):
            w_rec = np.abs(w_rec) * (1 if style == "excit" else -1)
        layer["type"] = "dense_rec"
        layer["weight_rec"] = _sparsify(rng, w_rec.astype(np.int64))
    elif kind == "delay":
        top = int(rng.choice((1, 5, 20, 62)))
        form = str(rng.choice(DELAY_FORMS, p=(0.55, 0.2, 0.15, 0.1)))
        size = {"synapse": (n_out, n_in), "output": (n_out,), "input": (n_in,), "scalar": ()}[form]
        layer["delay"] = rng.integers(0, top + 1, size).astype(np.int64)
        layer["delay_form"] = form


def make_temporal_case(seed: int, index: int) -> Case:
    """Recurrent / delayed case ``index`` of ``seed`` (see above), a pure function of ``(seed, index)``."""
    rng = np.random.default_rng([seed, index, TEMPORAL_STREAM])
    base_index = int(rng.integers(0, 1 << 30))
    while True:  # recurrence and delays need the source on the first synapse, and a dense layer to sit on
        base = make_case(seed + 7919, base_index)
        if base.spec["input_mode"] != "neuron" and any(lay["type"] == "dense" for lay in base.layers):
            break
        base_index += 1
    layers = [dict(lay) for lay in base.layers]
    dense = [lay for lay in layers if lay["type"] == "dense"]
    for k, lay in enumerate(dense):
        _temporal_layer(rng, lay, k == 0)
    long = rng.random() < 0.3
    steps = int(rng.integers(20, 81)) if long else int(rng.integers(1, 12))
    samples = int(rng.integers(1, 3))
    bits = int(base.spec["input_message_bits"])
    x = _inputs(rng, tuple(base.spec["input_shape"]), bits, samples, steps, bool(base.spec["hot"]))
    spec = {
        **base.spec,
        "seed": int(seed),
        "index": int(index),
        "kind": "temporal",
        "base_case": [seed + 7919, base_index],
        "stream": bool(index % 2),
        "timesteps": steps,
        "samples": samples,
        "layers": [_layer_json(lay) for lay in layers],
    }
    return Case(spec, layers, x)
