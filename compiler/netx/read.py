"""Read any netx HDF5 with input / dense / conv / flatten layers and CUBA (or SDNN) neurons into exact integers.

The result, :class:`NetxModel` (its types in :mod:`loihic.compiler.netx.model`), holds what Lava will
*actually* compute with: dense weights after netx's ``optimize_weight_bits`` and Lava's ``clip_weights`` /
``truncate_weights`` (spec 1.7), conv weights raw (spec 2.2), neuron constants as Lava's neurons receive
them.  The emulator runs it; so can anyone auditing a file.  Types netx would silently skip are refused
here (spec 1.2), and so is every layer type, neuron type and synapse key that Lava runs with a model loihic
does not emulate, by name.

Sigma-delta files (neuron type 'SDNN') are read only when asked (``read_netx(path, sigma_delta=True)``):
each neuron group becomes an :class:`NxSigmaDelta` of the kind netx builds (Delta for an 'input' layer,
Sigma with 'sigma_output', else SigmaDelta; hdf5.py get_neuron_params lines 164-189).  A file mixing CUBA
and SDNN neuron layers is refused.

A conv-first file without an 'input' layer (lava-dl's netx runs one when given ``input_shape``) needs
its input shape from the caller: ``read_netx(path, input_shape=(C, H, W))``, checked against the first conv.
"""

from __future__ import annotations

import json
import operator
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from loihic.compiler.errors import NetxFormatError, NetxInputShapeError
from loihic.compiler.ir import conv_out_hw
from loihic.compiler.netx import schema
from loihic.compiler.netx.model import (  # the model's types, importable from here as before
    SIGMA_DELTA_KINDS,
    NetxModel,
    NxConv,
    NxDense,
    NxFlatten,
    NxInput,
    NxLayer,
    NxNeuron,
    NxNeuronGroup,
    NxSigmaDelta,
)

__all__ = [
    "SIGMA_DELTA_KINDS",
    "NetxModel",
    "NxConv",
    "NxDense",
    "NxFlatten",
    "NxInput",
    "NxLayer",
    "NxNeuron",
    "NxNeuronGroup",
    "NxSigmaDelta",
    "optimize_weight_bits",
    "read_netx",
]


def netx_weight_bits(weight: np.ndarray) -> tuple[np.ndarray, int, int]:
    """lava-dl ``netx/utils.py optimize_weight_bits`` (lines 80-158) in numpy: (shifted int32 weights,
    num_weight_bits, weight_exp).  A 'dense_rec' layer passes ``hstack([weight, weight_rec])`` (hdf5.py
    create_dense, the rec branch): one exponent and one bit count for both synapses."""
    w = weight
    wmax, wmin = np.max(w), np.min(w)
    if wmax > 254 and wmin < 0:
        w = np.clip(w, -256, 254)
        wmax = np.max(w)
    if wmin < -256 and wmax > 0:
        w = np.clip(w, -256, 254)
        wmin = np.min(w)
    # netx's own sign mode only sets the scale: Lava re-determines it from the shifted weights (lava_weights).
    if wmax < 0:
        signed, scale = 0, -256 / wmin
    elif wmin >= 0:
        signed, scale = 0, 255 / wmax
    else:
        signed, scale = 1, min(127 / wmax, -128 / wmin)
    scale_bits = int(np.floor(np.log2(scale)) + signed)
    n = 8
    while n > 0 and np.sum(np.abs(w / 2**n - np.round(w / 2**n))) != 0:
        n -= 1
    n -= signed
    num_weight_bits = 8 - scale_bits - n
    w = np.left_shift(w.astype(np.int32), scale_bits)
    return w.astype(np.int32), num_weight_bits, -scale_bits


def lava_weights(w: np.ndarray, num_weight_bits: int) -> np.ndarray:
    """lava-nc ``Dense`` / ``DelayDense`` run_spk on netx's weights: the sign mode re-determined from THIS
    synapse's weights, then ``clip_weights`` and ``truncate_weights`` (``utils/weightutils.py``)."""
    w = w.astype(np.int32)
    lmode = "exc" if w.min() >= 0 else ("inh" if w.max() <= 0 else "mixed")
    mixed = int(lmode == "mixed")
    sign = -1 if lmode == "inh" else 1
    w = np.clip(sign * w, -(2**8) * mixed, 2**8 - 1)
    trunc = 8 - num_weight_bits + mixed
    return (sign * ((w >> trunc) << trunc)).astype(np.int64)


def optimize_weight_bits(weight: np.ndarray) -> tuple[np.ndarray, int, int]:
    """:func:`netx_weight_bits` then :func:`lava_weights`: (effective int64 weights, num_weight_bits,
    weight_exp).  Lossless for even integers in [-256, 254]; reproduces netx's clipping and zeroing for
    everything else."""
    w, bits, wexp = netx_weight_bits(weight)
    return lava_weights(w, bits), bits, wexp


def recurrent_weight_bits(weight: np.ndarray, weight_rec: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """A 'dense_rec' layer's (weight, weight_rec, weight_exp) as Lava's two synapses compute with them: netx
    stacks them for one :func:`netx_weight_bits`, splits them, and each synapse clips and truncates its own
    (RecurrentDense builds two Dense synapses with the same num_weight_bits and weight_exponent)."""
    both, bits, wexp = netx_weight_bits(np.hstack([weight, weight_rec]))
    n_in = weight.shape[1]
    return lava_weights(both[:, :n_in], bits), lava_weights(both[:, n_in:], bits), wexp


def _delay(g: h5py.Group, n_out: int, n_in: int, where: str) -> np.ndarray:
    """A dense layer's 'delay' as netx expands it to (out, in) (hdf5.py create_dense): a scalar, one per output
    (length n_out, tested first), one per input (length n_in) or one per synapse.  Refused by name: other
    shapes (netx raises), delays that are not whole steps (netx truncates them), negative ones (DelayDense
    drops those synapses silently) and ones above 62 (netx clamps them to 62 with a warning)."""
    d = _numbers(g[schema.DELAY_KEY], where, schema.DELAY_KEY)
    if d.dtype.kind == "f" and not np.array_equal(d, np.floor(d)):
        bad = d[d != np.floor(d)].ravel()[0]
        raise NetxFormatError(f"{where}: delay {bad} is not a whole number of steps (netx would truncate it)")
    if d.size and (d.min() < 0 or d.max() > schema.MAX_DELAY):
        bad = d.max() if d.max() > schema.MAX_DELAY else d.min()
        raise NetxFormatError(
            f"{where}: delay {int(bad)} steps is not supported: outside [0, {schema.MAX_DELAY}] (netx clamps "
            f"delays above {schema.MAX_DELAY}; Lava's DelayDense drops negative ones)"
        )
    d = d.astype(np.int64)
    if d.ndim == 0:
        return np.full((n_out, n_in), int(d), np.int64)
    if d.ndim == 1 and d.size == n_out:  # per output neuron (slayer's axonal delay)
        return np.repeat(d.reshape(-1, 1), n_in, axis=1)
    if d.ndim == 1 and d.size == n_in:  # per input
        return np.repeat(d.reshape(1, -1), n_out, axis=0)
    if d.shape == (n_out, n_in):
        return d
    raise NetxFormatError(
        f"{where}: delay of shape {d.shape}; netx takes a scalar, ({n_out},) per output, ({n_in},) per input or "
        f"{(n_out, n_in)} per synapse"
    )


# Sizes are checked on the datasets' declared shapes before anything is read (a file may declare 10^9 elements
# and store a few bytes), and every number is checked finite and in range before ``int()`` sees it.
MAX_ELEMENTS = 1 << 27  # per dataset (a 1 GiB int64 weight); Loihi 2's whole chip holds far fewer synapses
MAX_NEURONS = 1 << 24  # per layer; a Loihi 2 chip has about 10^6 neurons
MAX_SMALL = 64  # shape, stride, padding, dilation, groups, neuron constants, type strings
INT_LIMIT = 2**62  # netx's astype(int) is undefined beyond int64


def _dataset(node: Any, where: str, key: str, max_size: int = MAX_ELEMENTS) -> np.ndarray:
    """``node``'s values, read only after its declared size is checked."""
    if not isinstance(node, h5py.Dataset):
        raise NetxFormatError(f"{where}: '{key}' is {type(node).__name__}, expected a dataset")
    if node.shape is None or node.size > max_size:
        raise NetxFormatError(
            f"{where}: '{key}' declares shape {node.shape}; at most {max_size} elements are expected here"
        )
    return np.asarray(node[()])


def _numbers(node: Any, where: str, key: str, max_size: int = MAX_ELEMENTS) -> np.ndarray:
    a = _dataset(node, where, key, max_size)
    if a.dtype.kind not in "biuf":
        raise NetxFormatError(f"{where}: '{key}' holds {a.dtype}, expected numbers")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise NetxFormatError(f"{where}: '{key}' holds NaN or inf, expected finite numbers")
    return a


def _ints(node: Any, where: str, key: str, lo: int = -INT_LIMIT, hi: int = INT_LIMIT) -> tuple[int, ...]:
    """A few integers (floats truncate, as netx's ``astype(int)`` does), each in ``[lo, hi]``."""
    a = _numbers(node, where, key, MAX_SMALL).ravel()
    if a.size == 0:
        raise NetxFormatError(f"{where}: '{key}' is empty")
    if a.min() < lo or a.max() > hi:
        raise NetxFormatError(f"{where}: '{key}' = {a.tolist()}, expected integers in [{lo}, {hi}]")
    return tuple(int(v) for v in a.astype(np.int64))


def _text(node: Any, where: str = "", key: str = "type") -> str:
    v = _dataset(node, where or str(getattr(node, "name", "?")), key, 4096)
    v = v.ravel()[0] if v.size else b""
    v = v.item() if isinstance(v, np.generic) else v
    return v.decode("ascii", "replace") if isinstance(v, bytes) else str(v)


def _pair(g: h5py.Group, key: str, where: str) -> tuple[int, int]:
    if key not in g:
        raise NetxFormatError(f"{where}: conv layer lacks '{key}'")
    a = _ints(g[key], where, key, 0, 1 << 16)
    return (a[0], a[0]) if len(a) == 1 else (a[0], a[1])


def _shape(g: h5py.Group, where: str) -> tuple[int, ...]:
    """A layer's declared 'shape': positive sizes, at most :data:`MAX_NEURONS` neurons in all."""
    dims = _ints(g["shape"], where, "shape", 1, MAX_NEURONS)
    if int(np.prod(dims, dtype=object)) > MAX_NEURONS:
        raise NetxFormatError(f"{where}: shape {dims} declares more than {MAX_NEURONS} neurons in one layer")
    return dims


def _neuron(  # noqa: PLR0913
    g: h5py.Group,
    n_out: int,
    shape: tuple[int, ...],
    where: str,
    with_bias: bool = True,
    input_layer: bool = False,
    sigma_delta: bool = False,
) -> NxNeuronGroup:
    bias = None
    if with_bias and "bias" in g:
        b = _numbers(g["bias"], where, "bias")
        if np.abs(b).max(initial=0) >= 2.0**63:
            raise NetxFormatError(f"{where}: bias must be finite numbers within the int64 range")
        given = b.shape
        b = b.astype(int).astype(np.int64).ravel()  # netx: astype(int)
        if len(shape) == 3:
            # netx's blocks broadcast the bias against the neurons' Lava shape (W, H, C): a scalar or (1,), a
            # (C,) per channel, or exactly (W, H, C) per neuron; anything else fails inside netx (blocks/process.py)
            c, h, w = shape
            if b.size == 1:
                b = np.repeat(b, n_out)
            elif given == (c,):
                b = np.repeat(b, h * w)
            elif given == (w, h, c):
                b = b.reshape(w, h, c).transpose(2, 1, 0).ravel()
            else:
                raise NetxFormatError(
                    f"{where}: conv bias of shape {given}; netx takes ({c},) per channel or Lava's (W, H, C) = "
                    f"{(w, h, c)} per neuron"
                )
        elif b.size != n_out:
            raise NetxFormatError(f"{where}: bias has {b.size} entries, expected {n_out} or {shape[0]}")
        if b.min() < np.iinfo(np.int16).min or b.max() > np.iinfo(np.int16).max:
            raise NetxFormatError(f"{where}: bias outside Lava's int16 bias_mant range")
        bias = b
    if "neuron" not in g:
        # netx's default for a dense layer without neuron (hdf5.py create_dense): non-leaky integrator
        return NxNeuron(v_th_mant=schema.VTH_MANT_NEVER, i_decay=0, v_decay=4096, bias=bias)
    ng = g["neuron"]
    if not isinstance(ng, h5py.Group):
        raise NetxFormatError(f"{where}: 'neuron' is a {type(ng).__name__}, expected a group (netx reads its keys)")
    if "type" not in ng:
        raise NetxFormatError(f"{where}: the neuron group lacks 'type' (netx builds the neuron from it)")
    ntype = _text(ng["type"], where, "neuron/type")
    if sigma_delta and ntype == schema.SDNN_TYPE:
        return _sigma_delta(ng, bias, where, input_layer)
    if ntype not in schema.CUBA_TYPES:
        raise NetxFormatError(f"{where}: neuron type '{ntype}' is not supported: {schema.refused_neuron(ntype)}")
    try:
        vth, idec, vdec = (_ints(ng[k], where, f"neuron/{k}")[0] for k in ("vThMant", "iDecay", "vDecay"))
    except KeyError as exc:
        raise NetxFormatError(f"{where}: neuron lacks {exc}") from None
    if not (0 <= idec <= schema.DECAY_UNITY and 0 <= vdec <= schema.DECAY_UNITY):
        raise NetxFormatError(f"{where}: iDecay {idec} / vDecay {vdec} outside [0, 4096]")
    return NxNeuron(v_th_mant=vth, i_decay=idec, v_decay=vdec, bias=bias)


def _sigma_delta(ng: h5py.Group, bias: np.ndarray | None, where: str, input_layer: bool) -> NxSigmaDelta:
    """An 'SDNN' neuron group as netx builds it (hdf5.py get_neuron_params lines 164-189; spec 1.4, 2.5).
    What netx reads differently from what the file says is refused by name: an activation other than
    ReLU (netx ignores the key and runs ReLU), 'messageBits' (netx reads it as a NetDict and fails), a
    false 'sigma_output' or one on an 'input' layer (netx tests the key's presence, and builds a Delta for
    every input layer), a bias on a Sigma (Lava's Sigma takes none: netx fails)."""
    keys = set(ng.keys())
    if schema.MESSAGE_BITS_KEY in keys:
        raise NetxFormatError(
            f"{where}: neuron/{schema.MESSAGE_BITS_KEY} is not supported: netx (lava-dl 0.6.0) reads it as a NetDict "
            f"and fails to build the layer; without it netx uses {schema.SDNN_MESSAGE_BITS}-bit messages"
        )
    if schema.ACTIVATION_KEY in keys:
        act = _text(ng[schema.ACTIVATION_KEY], where, f"neuron/{schema.ACTIVATION_KEY}")
        if act.lower() != schema.SDNN_ACTIVATION:
            raise NetxFormatError(
                f"{where}: neuron/activation '{act}' is not supported: netx ignores it and Lava's SigmaDelta "
                f"runs '{schema.SDNN_ACTIVATION}' (proc/sdn/process.py act_mode), a different network"
            )
    sigma_output = schema.SIGMA_OUTPUT_KEY in keys
    if sigma_output:
        flag = _numbers(ng[schema.SIGMA_OUTPUT_KEY], where, f"neuron/{schema.SIGMA_OUTPUT_KEY}", MAX_SMALL)
        if input_layer or not flag.all():
            why = "netx builds a Delta for every 'input' layer" if input_layer else "netx tests only the key's presence"
            raise NetxFormatError(
                f"{where}: neuron/{schema.SIGMA_OUTPUT_KEY} = {flag.ravel().tolist()} is ambiguous: {why}"
            )
        if bias is not None:
            raise NetxFormatError(
                f"{where}: a bias on a Sigma neuron ('{schema.SIGMA_OUTPUT_KEY}'): Lava's Sigma takes none, so netx "
                "fails to build the layer"
            )
        return NxSigmaDelta("sigma", 0, None)
    if "vThMant" not in keys:
        raise NetxFormatError(f"{where}: neuron lacks 'vThMant'")
    vth = _ints(ng["vThMant"], where, "neuron/vThMant", 0, schema.SDNN_VTH_MANT_MAX)[0]
    return NxSigmaDelta("delta" if input_layer else "sigma_delta", vth, None if input_layer else bias)


def _refuse_unemulated(g: h5py.Group, ltype: str, where: str, sigma_delta: bool = False) -> None:
    """What netx would run with a Lava model loihic does not emulate, refused by name before anything
    else is read: non-LIF neurons (hdf5.py get_neuron_params; sigma-delta ones are read when asked),
    complex weights and synaptic delays (hdf5.py create_dense)."""
    ng = g.get("neuron")
    if isinstance(ng, h5py.Group) and isinstance(ng.get("type"), h5py.Dataset):
        ntype = _text(ng["type"], where, "neuron/type")
        if ntype not in schema.CUBA_TYPES and not (sigma_delta and ntype == schema.SDNN_TYPE):
            raise NetxFormatError(f"{where}: neuron type '{ntype}' is not supported: {schema.refused_neuron(ntype)}")
    if ltype not in schema.DENSE_TYPES:
        return
    if isinstance(g.get("weight"), h5py.Group) or any(k in g for k in schema.COMPLEX_WEIGHT_KEYS):
        raise NetxFormatError(
            f"{where}: complex weights ('weight/real', 'weight/imag': Lava ComplexDense, for resonate-and-fire "
            "neurons) are not supported by loihic"
        )
    if ltype == "dense_rec" and schema.DELAY_KEY in g:
        raise NetxFormatError(f"{where}: {schema.REC_DELAY_REFUSED}")
    if ltype == "dense_rec" and schema.WEIGHT_REC_KEY not in g:
        raise NetxFormatError(f"{where}: a 'dense_rec' layer lacks '{schema.WEIGHT_REC_KEY}' (netx needs it)")
    if (ltype == "dense_rec" or schema.DELAY_KEY in g) and isinstance(ng, h5py.Group) and sigma_delta:
        ntype = _text(ng["type"], where, "neuron/type") if "type" in ng else ""
        if ntype == schema.SDNN_TYPE:
            raise NetxFormatError(
                f"{where}: recurrence or delays with sigma-delta neurons; loihic emulates them with LIF neurons only"
            )


def _given_shape(input_shape: Any, path: str) -> tuple[int, ...]:
    try:
        given = tuple(operator.index(s) for s in input_shape)
    except TypeError:
        raise NetxFormatError(f"{path}: input shape {input_shape!r} is not a tuple of integers") from None
    if not given or min(given) < 1:
        raise NetxFormatError(f"{path}: input shape {given} must be positive integers, (C, H, W) or (n,)")
    return given


def _check_first_conv(where: str, given: tuple[int, ...], w: np.ndarray, conv: dict, lshape: tuple) -> None:
    """The caller's input shape against the first conv of a file without an 'input' layer."""
    if len(given) != 3:
        raise NetxFormatError(f"{where}: input shape {given} is not (C, H, W); the first layer is a conv")
    c_in = w.shape[1] * conv["groups"]
    if given[0] != c_in:
        raise NetxFormatError(
            f"{where}: input shape {given} gives {given[0]} input channels; the first conv takes {c_in} "
            f"(weight in-channels {w.shape[1]} x groups {conv['groups']})"
        )
    out = (w.shape[0], *conv_out_hw(given[1:], w.shape[2:], conv["stride"], conv["padding"], conv["dilation"]))
    if min(out) < 1:
        raise NetxFormatError(
            f"{where}: input shape {given} gives an empty conv output {out} (kernel {tuple(w.shape[2:])}, "
            f"stride {conv['stride']}, padding {conv['padding']}, dilation {conv['dilation']})"
        )
    if out != lshape:
        raise NetxFormatError(f"{where}: input shape {given} gives a conv output {out}; the file says {lshape}")


def _one_kind(inp: NxInput, layers: list[NxLayer], first: int, path: str) -> None:
    """Refuse a file that mixes CUBA and SDNN neuron groups (a dense without a 'neuron' group is netx's CUBA
    integrator): loihic emulates a network of one kind."""
    groups = [(0, inp.neuron)] if inp.neuron is not None else []
    groups += [(first + i, lay.neuron) for i, lay in enumerate(layers) if not isinstance(lay, NxFlatten)]
    kinds = [isinstance(n, NxSigmaDelta) for _, n in groups]
    if any(kinds) and not all(kinds):
        odd = next(i for (i, _), k in zip(groups, kinds, strict=True) if k != kinds[0])
        what = ("SDNN", "CUBA") if kinds[0] else ("CUBA", "SDNN")
        raise NetxFormatError(
            f"{path}: layer {odd}: {what[1]} neurons in a network whose first neuron layer is {what[0]} "
            "(a dense without a 'neuron' group is netx's CUBA integrator); loihic emulates networks of one kind"
        )


def _read_layers(
    f: h5py.File, path: str, given: tuple[int, ...] | None, sigma_delta: bool = False
) -> tuple[NxInput, list[NxLayer]]:
    if schema.LAYER_GROUP not in f or not isinstance(f[schema.LAYER_GROUP], h5py.Group):
        raise NetxFormatError(f"{path}: no 'layer' group; not a netx file")
    lg = f[schema.LAYER_GROUP]
    names = sorted(lg.keys(), key=lambda k: int(k) if k.isdigit() else -1)
    if names != [str(i) for i in range(len(names))] or not names:
        raise NetxFormatError(f"{path}: layers must be named 0..N-1, found {sorted(lg.keys())}")
    inp: NxInput | None = None
    layers: list[NxLayer] = []
    shape: tuple[int, ...] | None = None
    for i in range(len(names)):
        g = lg[str(i)]
        where = f"{path}: layer {i}"
        if "type" not in g:
            raise NetxFormatError(f"{where}: no 'type'")
        ltype = _text(g["type"], where)
        if ltype in schema.REFUSED_TYPES:
            raise NetxFormatError(f"{where}: layer type '{ltype}' is not supported: {schema.REFUSED_TYPES[ltype]}")
        if ltype not in schema.SUPPORTED_TYPES:
            raise NetxFormatError(
                f"{where}: layer type '{ltype}' is unknown; netx would skip it silently, so Lava would run a "
                "different network"
            )
        _refuse_unemulated(g, ltype, where, sigma_delta)
        lshape = _shape(g, where) if "shape" in g else None
        if ltype == "input":
            if i != 0 or lshape is None:
                raise NetxFormatError(f"{where}: an 'input' layer must be first and have a shape")
            if given is not None and given != lshape:
                raise NetxFormatError(
                    f"{where}: the 'input' layer has shape {lshape}, not the given input shape {given}"
                )
            # An input layer's 'weight'/'bias' (tiny.net: scalars) are never applied by netx (spec 1.5).
            neuron = None
            if "neuron" in g:
                neuron = _neuron(g, int(np.prod(lshape)), lshape, where, False, True, sigma_delta)
            inp, shape = NxInput(lshape, neuron), lshape
            continue
        first = inp is None and not layers  # the first layer of a file without an 'input' layer
        if first and given is not None:
            shape = given
        if ltype == "flatten":
            if shape is None:
                raise NetxFormatError(f"{where}: flatten before any layer with a known shape")
            shape = (int(np.prod(shape)),)
            layers.append(NxFlatten(shape))
            continue
        if "weight" not in g:
            raise NetxFormatError(f"{where}: {ltype} layer lacks 'weight'")
        w = _numbers(g["weight"], where, "weight")
        if w.dtype.kind == "f" and np.abs(w).max(initial=0) >= 2.0**63:  # astype(int) is undefined there
            raise NetxFormatError(f"{where}: weight magnitude {np.abs(w).max():.3g} does not fit an int64")
        w = w.astype(int).astype(np.int64)  # netx NetDict copy_keys truncate with astype(int)
        if ltype in schema.DENSE_TYPES:
            if lshape is None:
                raise NetxFormatError(f"{where}: dense layer lacks 'shape'")
            n_out = int(np.prod(lshape))
            w = w.reshape(n_out, -1) if w.ndim == 1 else w.reshape(w.shape[0], -1)
            if w.shape[0] != n_out:
                raise NetxFormatError(f"{where}: weight has {w.shape[0]} rows, shape says {n_out}")
            if shape is not None and int(np.prod(shape)) != w.shape[1]:
                src = f"the input shape {shape} gives" if first else "previous layer gives"
                raise NetxFormatError(f"{where}: weight expects {w.shape[1]} inputs, {src} {int(np.prod(shape))}")
            if not w.any():
                raise NetxFormatError(f"{where}: all-zero weight matrix (netx crashes on it)")
            w_rec = delay = None
            if ltype == "dense_rec":
                w_rec = _numbers(g[schema.WEIGHT_REC_KEY], where, schema.WEIGHT_REC_KEY)
                if w_rec.dtype.kind == "f" and np.abs(w_rec).max(initial=0) >= 2.0**63:
                    raise NetxFormatError(f"{where}: weight_rec does not fit an int64")
                w_rec = w_rec.astype(int).astype(np.int64)
                w_rec = w_rec.reshape(n_out, -1) if w_rec.ndim == 1 else w_rec
                if w_rec.shape != (n_out, n_out):
                    raise NetxFormatError(f"{where}: weight_rec has shape {w_rec.shape}, expected {(n_out, n_out)}")
                weff, w_rec, wexp = recurrent_weight_bits(w, w_rec)
            else:
                weff, _, wexp = optimize_weight_bits(w)
            if schema.DELAY_KEY in g:
                delay = _delay(g, n_out, w.shape[1], where)
            if (w_rec is not None or delay is not None) and inp is not None and inp.neuron is not None:
                raise NetxFormatError(
                    f"{where}: recurrence or delays in a file whose 'input' layer has a neuron; loihic emulates "
                    "them in networks driven by the source directly"
                )
            neuron = _neuron(g, n_out, (n_out,), where, sigma_delta=sigma_delta)
            shape = (n_out,)
            layers.append(NxDense(weff, wexp, neuron, shape, w_rec, delay))
        else:  # conv
            if w.ndim == 5:
                w = w[..., 0]
            if w.ndim != 4 or lshape is None or len(lshape) != 3:
                raise NetxFormatError(f"{where}: conv needs a 4-D weight and a (C, H, W) shape")
            if shape is None:  # netx too: "Input shape could not be inferred" (hdf5.py _create)
                raise NetxInputShapeError(
                    f"{where}: conv-first network without an 'input' layer; its input shape (C, H, W) is unknown: "
                    "give one (loihic: --input-shape C,H,W or input data; Python: read_netx(path, input_shape=))"
                )
            stride, padding, dilation = (_pair(g, k, where) for k in ("stride", "padding", "dilation"))
            groups = _ints(g["groups"], where, "groups", 1, 1 << 16)[0] if "groups" in g else 1
            if first:
                conv = {"groups": groups, "stride": stride, "padding": padding, "dilation": dilation}
                _check_first_conv(where, shape, w, conv, lshape)
            if len(shape) != 3:
                raise NetxFormatError(f"{where}: conv input of shape {shape}; a conv takes (C, H, W)")
            hw = conv_out_hw(shape[1:], w.shape[2:], stride, padding, dilation)
            if shape[0] != w.shape[1] * groups or (w.shape[0], *hw) != lshape:
                raise NetxFormatError(
                    f"{where}: conv weight {w.shape} with input {shape} gives {(w.shape[0], *hw)}, file says {lshape}"
                )
            if "neuron" not in g:
                raise NetxFormatError(f"{where}: conv layer lacks a 'neuron' group")
            neuron = _neuron(g, int(np.prod(lshape)), lshape, where, sigma_delta=sigma_delta)
            shape = lshape
            layers.append(NxConv(w, stride, padding, dilation, groups, neuron, lshape))
    if not any(not isinstance(lay, NxFlatten) for lay in layers):
        raise NetxFormatError(f"{path}: no dense or conv layer")
    if inp is None:  # the first layer is a dense (its in-features) or a conv (``given``, checked above)
        shape0 = given if given is not None else (int(layers[0].weight.shape[1]),)  # type: ignore[union-attr]
        inp = NxInput(shape0, None, declared=False)
    _one_kind(inp, layers, 1 if inp.declared else 0, path)
    return inp, layers


def read_netx(
    path: str | os.PathLike, input_shape: tuple[int, ...] | None = None, *, sigma_delta: bool = False
) -> NetxModel:
    """Parse and validate ``path``; every problem is a one-line :class:`NetxFormatError`.

    ``input_shape`` ((C, H, W) or (n,)) is what a conv-first file without an 'input' layer needs (else
    :class:`NetxInputShapeError`); it must give the first conv's channels and stored output shape.  For any
    other file it is optional and must agree: with the 'input' layer's shape, or (in size) with the first
    dense layer's in-features.  Files with an 'input' layer read the same with or without it.

    ``sigma_delta``: read 'SDNN' neuron groups as :class:`NxSigmaDelta`; without it they are refused by name,
    as every neuron type the emulator does not run.
    """
    p = Path(path)
    if p.is_dir():
        raise NetxFormatError(f"{p}: is a directory, expected a netx HDF5 file")
    if not p.is_file():
        raise NetxFormatError(f"{p}: no such file")
    try:
        given = None if input_shape is None else _given_shape(input_shape, str(p))
        with h5py.File(p, "r") as f:
            inp, layers = _read_layers(f, str(p), given, sigma_delta)
            meta: dict[str, Any] = {}
            if schema.META_GROUP in f and schema.META_JSON in f[schema.META_GROUP]:
                ds = f[schema.META_GROUP][schema.META_JSON]
                raw = _dataset(ds, str(p), "meta", 1 << 24)  # loihic writes UTF-8 bytes as uint8; or a string
                meta = json.loads(
                    raw.tobytes().decode("utf-8") if raw.dtype.kind in "iu" else _text(ds, str(p), "meta")
                )
    except NetxFormatError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError, OverflowError) as exc:
        raise NetxFormatError(
            f"{p}: not a readable netx HDF5 file ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'corrupt'})"
        ) from None
    return NetxModel(str(p), inp, tuple(layers), meta)
