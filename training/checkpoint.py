"""Checkpoint files: a ``torch.save``d dict of plain data and tensors, loaded only with ``weights_only=True``.

Layout (format_version 2)::

    {"format": "loihic-checkpoint", "format_version": 2, "kind": "ann" | "snn",
     "model": str, "dataset": str, "input_shape": [int, ...], "num_classes": int,
     "layers": [layer dict, ...],             # the IR's layers, compiler/load/checkpoint.py network_data
     "state_dict": {str: tensor},              # keys of models.build_model(ann_network(ckpt))
     "seed": int, "hyperparams": {...}, "metrics": {str: float, ...}, "created_by": "loihic 0.1.0",
     "snn": {...}}                             # kind "snn" only, see convert.py; sigma-delta: "neuron": "sdnn"
                                               # with input_delta, act_max, budget (deploy/sdnn_convert.py)

Loading never runs code from the file: ``torch.load(..., weights_only=True)`` unpickles only tensors and
plain containers and refuses anything else.  A format-1 checkpoint (an ``arch`` list) is migrated on
loading and on validation (``compiler/load/checkpoint_v1.py upgrade_v1``): :func:`validate_checkpoint` returns
the format-2 dict.  The spiking parameters (thresholds, leak, reset, output, steps, encoding) are kept in one
place, the ``snn`` block.  Every failure is a :class:`CheckpointError` whose one-line
message starts with the file path.
"""

from __future__ import annotations

import math
import os
import pickle
import secrets
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from loihic.compiler import ir
from loihic.compiler.encoding import ENCODINGS, check_encoding, direct_bits, direct_encoding
from loihic.compiler.errors import CheckpointError, InputError, LoihicError, OutputExistsError
from loihic.compiler.ir import RESETS
from loihic.compiler.load.checkpoint import SYNAPTIC_TYPES, ann_network
from loihic.compiler.load.checkpoint_v1 import upgrade_v1
from loihic.training.models import build_model
from loihic.version import __version__

FORMAT = "loihic-checkpoint"
FORMAT_VERSION = 2
FORMAT_VERSIONS = (1, 2)  # 1: migrated on loading
KINDS = ("ann", "snn")
CREATED_BY = f"loihic {__version__}"
_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "format_version": int,
    "kind": str,
    "model": str,
    "dataset": str,
    "input_shape": list,
    "num_classes": int,
    "layers": list,
    "state_dict": dict,
    "seed": int,
    "hyperparams": dict,
    "metrics": dict,
    "created_by": str,
}
_SNN_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "thresholds": list,
    "timesteps": int,
    "reset": str,
    "leak": (float, int),
    "encoding": str,
    "seed": int,
}
# Written by threshold balancing (convert.py); other SNN trainers (noise, STDB) may omit them.
_SNN_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "norm": str,
    "calib_samples": int,
    "source_sha256": (str, type(None)),
    "first_layer_mean_potential": list,
    "output": str,
    "method": str,
    "neuron": str,
    "noise": dict,  # noise training's options (training/noise/options.py NoiseConfig)
    "deploy_offset": (float, int),  # the constant current already folded into the biases (noise with_offset)
    "deploy_stage": dict,  # the noise method's deployment stage options and seed (training/noise/deploy.py)
}
# A sigma-delta checkpoint (snn.neuron "sdnn", deploy/sdnn_convert.py): thresholds are the hidden layers' delta
# thresholds (>= 0, None for the Sigma read-out), encoding "direct" (graded input through a Delta).
_SDNN_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "input_delta": (float, int),
    "act_max": list,
    "budget": (float, int, type(None)),
}
NEURONS = ("lif", "sdnn")  # snn.neuron: rate-coded CUBA LIF (the default) or sigma-delta
OUTPUTS = ("integrator", "spiking")  # last layer: non-spiking integrator read from v, or spiking (spike counts)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}{'...' if len(text) > 200 else ''}"


def _unpickling_reason(exc: BaseException) -> str:
    """The useful part of torch's weights_only refusal (its advice to allowlist globals is dropped)."""
    text = str(exc)
    text = text.split("WeightsUnpickler error:", 1)[-1]
    for cut in ("Please use `torch.serialization", "Check the documentation"):
        text = text.split(cut, 1)[0]
    text = " ".join(text.split())[:200]
    return text or type(exc).__name__


def _check_plain(obj: Any, where: str) -> None:
    """Only what weights_only can load back: dict/list/tuple/str/int/float/bool/None and tensors."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise CheckpointError(f"{where}: key {key!r} is not a string")
            _check_plain(value, f"{where}.{key}")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _check_plain(value, f"{where}[{i}]")
    elif not isinstance(obj, (str, int, float, bool, type(None), torch.Tensor)):
        raise CheckpointError(f"{where}: {type(obj).__name__} is not plain data (use int/float/str/list/dict)")


def _type_name(typ: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in (typ if isinstance(typ, tuple) else (typ,)))


def _check_fields(d: Mapping[str, Any], spec: Mapping[str, Any], where: str) -> None:
    for key, typ in spec.items():
        if key not in d:
            raise CheckpointError(f"{where}: missing key '{key}'")
        value = d[key]
        if not isinstance(value, typ) or (isinstance(value, bool) and typ in (int, (float, int))):
            raise CheckpointError(f"{where}: '{key}' is {type(value).__name__}, expected {_type_name(typ)}")


def _check_snn(snn: Mapping[str, Any], n_synaptic: int, where: str) -> None:
    _check_fields(snn, _SNN_REQUIRED, f"{where}: snn")
    _check_fields(snn, {k: t for k, t in _SNN_OPTIONAL.items() if k in snn}, f"{where}: snn")
    if snn.get("neuron", "lif") not in NEURONS:
        raise CheckpointError(f"{where}: snn.neuron = {snn.get('neuron')!r}, expected one of {NEURONS}")
    if snn.get("neuron") == "sdnn":
        _check_sdnn(snn, n_synaptic, where)
        return
    output = snn.get("output", "integrator")
    if output not in OUTPUTS:
        raise CheckpointError(f"{where}: snn.output = {output!r}, expected one of {OUTPUTS}")
    th = snn["thresholds"]
    readout = output == "integrator"
    if len(th) != n_synaptic or (th[-1] is not None) == readout:
        raise CheckpointError(
            f"{where}: snn.thresholds has {len(th)} entries (last "
            f"{th[-1] if th else '-'}), expected {n_synaptic} with "
            f"{'None for the readout' if readout else 'a threshold for the spiking output'}"
        )
    for i, value in enumerate(th[:-1] if readout else th):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise CheckpointError(f"{where}: snn.thresholds[{i}] = {value!r}, expected a finite float > 0")
    if snn["timesteps"] < 1:
        raise CheckpointError(f"{where}: snn.timesteps = {snn['timesteps']}, expected >= 1")
    if snn["reset"] not in RESETS:
        raise CheckpointError(f"{where}: snn.reset = {snn['reset']!r}, expected one of {RESETS}")
    if not 0.0 <= snn["leak"] <= 1.0:
        raise CheckpointError(f"{where}: snn.leak = {snn['leak']}, expected within [0, 1]")
    try:
        check_encoding(snn["encoding"])
    except InputError:
        raise CheckpointError(
            f"{where}: snn.encoding = {snn['encoding']!r}, expected one of {', '.join(ENCODINGS)} or direct1 .. direct8"
        ) from None
    if not all(isinstance(v, float) and math.isfinite(v) for v in snn.get("first_layer_mean_potential", [])):
        raise CheckpointError(f"{where}: snn.first_layer_mean_potential must be a list of finite floats")


def _finite(value: Any, low: float = 0.0) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= low


def _check_sdnn(snn: Mapping[str, Any], n_synaptic: int, where: str) -> None:
    """The snn block of a sigma-delta checkpoint (``_SDNN_REQUIRED``; deploy/sdnn_convert.py)."""
    _check_fields(snn, _SDNN_REQUIRED, f"{where}: snn")
    th, act = snn["thresholds"], snn["act_max"]
    if len(th) != n_synaptic or th[-1] is not None or not all(_finite(v) for v in th[:-1]):
        raise CheckpointError(
            f"{where}: snn.thresholds = {th!r}, expected {n_synaptic} entries: a finite delta threshold >= 0 per "
            "hidden layer, then None for the Sigma read-out"
        )
    if len(act) != n_synaptic or not all(_finite(v) for v in act):
        raise CheckpointError(f"{where}: snn.act_max must be {n_synaptic} finite floats >= 0, got {act!r}")
    if not _finite(snn["input_delta"]):
        raise CheckpointError(f"{where}: snn.input_delta = {snn['input_delta']!r}, expected a finite float >= 0")
    if snn["budget"] is not None and not (_finite(snn["budget"]) and snn["budget"] <= 1):
        raise CheckpointError(f"{where}: snn.budget = {snn['budget']!r}, expected None or a fraction in [0, 1]")
    if snn["encoding"] != "direct":
        raise CheckpointError(f"{where}: snn.encoding = {snn['encoding']!r}; a sigma-delta network takes 'direct'")
    if snn["timesteps"] < n_synaptic + 1:
        raise CheckpointError(
            f"{where}: snn.timesteps = {snn['timesteps']}, a sigma-delta network of {n_synaptic} synaptic layers "
            f"needs >= {n_synaptic + 1} (it settles at sink index {n_synaptic})"
        )
    if snn.get("pooling", "fold") not in ("fold", "layer"):
        raise CheckpointError(f"{where}: snn.pooling = {snn['pooling']!r}, expected 'fold' or 'layer'")
    for key in ("threshold_trials", "bias_unit", "calibration_check"):
        if key in snn:
            _check_plain(snn[key], f"{where}: snn.{key}")


def _state_shapes(net: ir.Network) -> dict[str, tuple[int, ...]]:
    """state_dict key -> shape that ``build_model(net)`` has (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = build_model(net)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def validate_checkpoint(ckpt: Any, where: str, kind: str | None = None) -> dict[str, Any]:
    """The format-2 form of ``ckpt`` (a format-1 one migrated; the caller's dict is never changed); raises
    CheckpointError (message starting with ``where``) unless it is a valid checkpoint."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        got = type(ckpt).__name__
        if isinstance(ckpt, dict):
            got = f"a dict with keys {sorted(map(str, ckpt))[:6]}"
        raise CheckpointError(f"{where}: not a loihic checkpoint (expected a dict with format '{FORMAT}', got {got})")
    if ckpt.get("format_version") not in FORMAT_VERSIONS:
        raise CheckpointError(
            f"{where}: format_version {ckpt.get('format_version')!r} is not supported (expected one of "
            f"{', '.join(map(str, FORMAT_VERSIONS))})"
        )
    if ckpt["format_version"] == 1:
        ckpt = upgrade_v1(ckpt, where)
    _check_fields(ckpt, _REQUIRED, where)
    if ckpt["kind"] not in KINDS:
        raise CheckpointError(f"{where}: kind {ckpt['kind']!r} is not one of {KINDS}")
    if kind is not None and ckpt["kind"] != kind:
        raise CheckpointError(f"{where}: is an {ckpt['kind'].upper()} checkpoint, expected an {kind.upper()} one")
    shape = ckpt["input_shape"]
    if not shape or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
        raise CheckpointError(f"{where}: input_shape {shape!r} is not a list of positive ints")
    try:
        net = ann_network(ckpt, weights=False, source=where)
        shapes = ir.infer_shapes(net)
        expected = _state_shapes(net)
    except CheckpointError:
        raise
    except LoihicError as exc:
        raise CheckpointError(f"{where}: invalid layers: {exc}") from None
    if shapes[-1] != (ckpt["num_classes"],):
        raise CheckpointError(f"{where}: layers output shape {shapes[-1]}, expected ({ckpt['num_classes']},)")
    state = ckpt["state_dict"]
    if set(state) != set(expected):
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        raise CheckpointError(
            f"{where}: state_dict does not match the layers (missing {missing[:5]}, unexpected {extra[:5]})"
        )
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"{where}: state_dict['{name}'] is {type(tensor).__name__}, not a tensor")
        if tuple(tensor.shape) != expected[name]:
            raise CheckpointError(
                f"{where}: tensor '{name}' has shape {tuple(tensor.shape)}, the layers expect {expected[name]}"
            )
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{where}: tensor '{name}' contains NaN or Inf")
    for key in ("hyperparams", "metrics"):
        _check_plain(ckpt[key], f"{where}: {key}")
    if ckpt["kind"] == "snn":
        if not isinstance(ckpt.get("snn"), dict):
            raise CheckpointError(f"{where}: SNN checkpoint has no 'snn' dict")
        n_syn = sum(layer["type"] in SYNAPTIC_TYPES for layer in ckpt["layers"])
        _check_snn(ckpt["snn"], n_syn, where)
    return ckpt


def load_checkpoint(path: Path | str, kind: str | None = None) -> dict[str, Any]:
    """Load and validate a checkpoint; ``kind`` ("ann"/"snn") also checks its kind."""
    path = Path(path)
    if kind is not None and kind not in KINDS:
        raise CheckpointError(f"{path}: requested kind {kind!r} is not one of {KINDS}")
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file")
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol note; the file is judged below anyway
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _unpickling_reason(exc)
        raise CheckpointError(
            f"{path}: refused: not a file of tensors and plain data, so not a loihic "
            f"checkpoint (objects in it are never executed; {reason})"
        ) from None
    except (
        OSError,
        RuntimeError,
        EOFError,
        ValueError,
        zipfile.BadZipFile,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        UnicodeDecodeError,
    ) as exc:
        raise CheckpointError(
            f"{path}: cannot read checkpoint (corrupt, truncated or not a torch file; {_one_line(exc)})"
        ) from None
    return validate_checkpoint(ckpt, str(path), kind)


def with_input_bits(ckpt: Mapping[str, Any], bits: int) -> dict[str, Any]:
    """A copy of a direct-encoded SNN checkpoint whose input is B-bit graded (``direct<B>``): the float
    reference of ``loihic compile --input-bits B`` (compiler/passes/input_bits.py)."""
    encoding = direct_encoding(bits)
    if direct_bits(ckpt["snn"]["encoding"]) == 0:
        raise InputError(f"--input-bits {bits}: applies to direct-encoded SNNs, not '{ckpt['snn']['encoding']}'")
    return {**ckpt, "snn": {**ckpt["snn"], "encoding": encoding}}


def save_checkpoint(path: Path | str, ckpt: dict[str, Any], force: bool = False) -> Path:
    """Validate and write ``ckpt`` atomically (temp file in the same folder, then ``os.replace``).

    Refuses an existing ``path`` unless ``force`` (OutputExistsError).  Creates missing parent folders.
    """
    path = Path(path)
    ckpt = validate_checkpoint(ckpt, str(path))
    _check_plain(ckpt, str(path))
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file path")
    if path.exists() and not force:
        raise OutputExistsError(f"{path}: already exists (use --force to overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in ckpt["state_dict"].items()}
    # Opened with "xb" (not mkstemp) so the file gets the usual umask permissions, not 0600.
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "xb") as f:
            torch.save({**ckpt, "state_dict": state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
