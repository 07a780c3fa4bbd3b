"""Post-conversion adjustments of an SNN checkpoint, for sweeps on the float SNN (Allred & Roy 4.3).

The compiler applies the same L4 factors (:func:`loihic.compiler.passes.l4_adjust.l4_factors`) to
the IR; these helpers apply them to a checkpoint so that soft-reset networks (which cannot be
deployed) and threshold sweeps can be evaluated with the float simulator.  Each returns a NEW dict.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch

from loihic.compiler.errors import InputError, LoihicError
from loihic.compiler.load.checkpoint import SYNAPTIC_TYPES, module_indices
from loihic.compiler.passes.l4_adjust import l4_factors
from loihic.training.checkpoint import validate_checkpoint


def with_threshold_scale(ckpt: dict[str, Any], factor: float) -> dict[str, Any]:
    """Every spiking layer's threshold times ``factor`` (the paper's layer-threshold sweep)."""
    if not (factor > 0 and math.isfinite(factor)):
        raise InputError(f"threshold scale {factor} must be finite and > 0")
    out = copy.deepcopy(ckpt)
    out["snn"]["thresholds"] = [None if t is None else t * factor for t in ckpt["snn"]["thresholds"]]
    out["snn"]["threshold_scale"] = ckpt["snn"].get("threshold_scale", 1.0) * factor
    return out


def with_l4(ckpt: dict[str, Any], rs: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Apply the L4-norm first-layer adjustment (eqs. 6-9) to the checkpoint's weights."""
    ckpt = validate_checkpoint(ckpt, f"checkpoint ({ckpt.get('model')} on {ckpt.get('dataset')})", "snn")
    snn = ckpt["snn"]
    if snn.get("l4") is not None:
        raise LoihicError("checkpoint already carries an L4 adjustment; apply it once")
    layers = ckpt["layers"]
    first = next(i for i, spec in zip(module_indices(layers), layers, strict=True) if spec["type"] in SYNAPTIC_TYPES)
    w = ckpt["state_dict"][f"{first}.weight"].double().numpy()
    f = l4_factors(w, np.asarray(snn["first_layer_mean_potential"]), float(snn["thresholds"][0]), rs)
    scale = torch.as_tensor(np.asarray(f["s_hat"]) * f["rescale"])
    out = copy.deepcopy(ckpt)
    sd = out["state_dict"]
    shape = (-1,) + (1,) * (w.ndim - 1)
    sd[f"{first}.weight"] = (sd[f"{first}.weight"].double() * scale.reshape(shape)).to(sd[f"{first}.weight"].dtype)
    if f"{first}.bias" in sd:
        sd[f"{first}.bias"] = (sd[f"{first}.bias"].double() * scale).to(sd[f"{first}.bias"].dtype)
    out["snn"]["l4"] = {k: f[k] for k in ("rs", "mu_L4", "rescale", "skipped_neurons")}
    return out, f
