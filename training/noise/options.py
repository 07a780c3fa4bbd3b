"""Noise-based training: constants, options and the Table 1 architectures (see ``training/noise/__init__.py``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from loihic.compiler import ir
from loihic.compiler.errors import InputError
from loihic.training.models import (
    MODELS as ANN_MODELS,
)
from loihic.training.models import (
    check_convertible,
    make_network,
    sequential,
)

LEAK = 0.5  # lambda of eq. 1; Lava vDecay = round(4096 * (1 - 0.5)) = 2048
THRESHOLD = 1.0  # V_th of eq. 2
ENCODING = "direct"  # the analogue input fed at every step (sec. 2.3)
NOISE_TYPES = ("gaussian", "uniform")
NOISE_MODELS = ("ap2-512fc", "mnist-cnn")
MODELS = (*NOISE_MODELS, *ANN_MODELS)
STAGES = ("2", "3", "lif", "lif+mean", "lif+noise")  # evaluation modes (module docstring)
# Adam learning rate when none is given: the paper's 1e-4, except on digits (23 batches per epoch), where
# 1e-4 reaches 58% (stage 2, T = 1) after 200 epochs and 1e-3 reaches 78% after 100 (ap2-512fc, seed 0).
DEFAULT_LR = 1e-4
DATASET_LR = {"digits": 1e-3}
RANGE_STDS = 3.0  # N_noise's range is [mean - 3 std, mean + 3 std] ([0, 1] at the defaults)


# --- options ---------------------------------------------------------------------------------------------
def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class NoiseConfig:
    """N_noise of eq. 6: ``kind`` gaussian (mean, std, clipped to mean +- 3 std if ``clip``) or uniform on
    [mean - 3 std, mean + 3 std]."""

    kind: str = "gaussian"
    mean: float = 0.5
    std: float = 1.0 / 6.0
    clip: bool = True

    def __post_init__(self) -> None:
        if self.kind not in NOISE_TYPES:
            raise InputError(f"--noise {self.kind!r}: unknown noise type; expected one of {', '.join(NOISE_TYPES)}")
        if not _finite(self.mean):
            raise InputError(f"--noise-mean {self.mean!r}: the noise mean must be a finite number")
        if not _finite(self.std) or self.std < 0:
            raise InputError(f"--noise-std {self.std!r}: the noise scale must be a finite number >= 0")
        if not isinstance(self.clip, bool):
            raise InputError(f"--noise-clip {self.clip!r}: expected true or false")

    @property
    def low(self) -> float:
        return float(self.mean - RANGE_STDS * self.std)

    @property
    def high(self) -> float:
        return float(self.mean + RANGE_STDS * self.std)

    @property
    def width(self) -> float:
        """R, the width of N_noise's range (6 std)."""
        return float(2 * RANGE_STDS * self.std)

    def sample(self, shape: Sequence[int], gen: torch.Generator) -> torch.Tensor:
        """A fresh draw of N_noise with ``shape``, float32, from ``gen``."""
        if self.kind == "gaussian":
            n = torch.randn(tuple(shape), generator=gen) * self.std + self.mean
            return n.clamp(self.low, self.high) if self.clip else n
        return torch.rand(tuple(shape), generator=gen) * (self.high - self.low) + self.low

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, "mean": float(self.mean), "std": float(self.std), "clip": self.clip}

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any]) -> NoiseConfig:
        d = ckpt["snn"].get("noise")
        if not isinstance(d, Mapping):
            raise InputError(
                f"checkpoint ({ckpt.get('model')} on {ckpt.get('dataset')}) records no noise "
                f"options: not trained with --method noise"
            )
        return cls(str(d["type"]), float(d["mean"]), float(d["std"]), bool(d["clip"]))


def check_stage3(alpha: float, beta: float) -> None:
    if not (isinstance(alpha, (int, float)) and not isinstance(alpha, bool)) or math.isnan(alpha) or alpha <= 0:
        raise InputError(f"--alpha {alpha!r}: alpha (eq. 10) must be > 0")
    if not _finite(beta):
        raise InputError(f"--beta {beta!r}: beta (eq. 10) must be a finite number")


def check_offset(offset: Any) -> float:
    if not _finite(offset):
        raise InputError(f"--offset {offset!r}: the constant current must be a finite number")
    return float(offset)


def check_timesteps(timesteps: Any) -> int:
    if not isinstance(timesteps, (int, np.integer)) or isinstance(timesteps, bool) or timesteps < 1:
        raise InputError(f"--timesteps {timesteps!r}: T must be an integer >= 1")
    return int(timesteps)


def check_stage(stage: Any) -> str:
    m = str(stage)
    if m not in STAGES:
        raise InputError(f"--stage {stage!r}: expected one of {', '.join(STAGES)}")
    return m


def residual_gain(noise: NoiseConfig, alpha: float) -> float:
    """k of N' = k (N_noise - mean): ``max(0, 1 - 2 / (alpha R))`` (module docstring, eq. 7)."""
    if noise.width == 0:
        return 0.0
    return max(0.0, 1.0 - 2.0 / (alpha * noise.width))


# --- architectures ---------------------------------------------------------------------------------------
def noise_network(
    model: str, input_shape: Sequence[int], num_classes: int, bias: bool = False, hidden: int | None = None
) -> ir.Network:
    """The paper's Table 1 networks as ANN IR networks (``training/models.py``), or a ``make_network`` one.

    - ``ap2-512fc`` (Fashion-MNIST): 2x2 average pooling of the input, flatten, linear -> ``hidden``
      (512), LIF, linear -> classes, LIF.
    - ``mnist-cnn`` (MNIST, Table 1 "64C3 AP2 128C3 AP2 128C3", our reading of its garbled entry, nC3 =
      3x3 conv stride 1, padding 1): conv 64, LIF, avgpool 2, conv 128, LIF, avgpool 2, conv 128, LIF,
      flatten, linear -> classes, LIF (the table omits the classifier; one linear layer is the minimum).
    - anything else: ``models.make_network`` (``mlp``, ``lenet5``, ...), its hidden default 128.

    The last linear layer carries the readout neuron (``check_convertible``): whether it spikes is the
    checkpoint's ``snn.output``, "spiking" here.  No bias by default (the paper does not say).
    """
    shape = tuple(int(s) for s in input_shape)
    specs: list[Any]
    if model == "ap2-512fc":
        if len(shape) != 3:
            raise InputError(f"model 'ap2-512fc' needs a (C, H, W) input, got {shape}")
        specs = [("avgpool", 2), "flatten", ("linear", hidden or 512), "relu", ("linear", num_classes)]
    elif model == "mnist-cnn":
        if len(shape) != 3:
            raise InputError(f"model 'mnist-cnn' needs a (C, H, W) input, got {shape}")
        conv = [("conv", 64, 3, 1), "relu", ("avgpool", 2), ("conv", 128, 3, 1), "relu", ("avgpool", 2)]
        specs = [*conv, ("conv", 128, 3, 1), "relu", "flatten", ("linear", num_classes)]
    elif model in ANN_MODELS:
        return make_network(model, shape, num_classes, bias=bias, hidden=hidden or 128)
    else:
        raise InputError(f"--model {model!r}: unknown model; expected one of {', '.join(MODELS)}")
    net = sequential(shape, specs, bias)
    check_convertible(net)
    return net
