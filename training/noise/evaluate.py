"""Noise-trained networks at T = N: stages 2 and 3, the deployed LIF, and the deploy-time offset."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from loihic.compiler.encoding import input_scale
from loihic.compiler.errors import InputError
from loihic.compiler.load.checkpoint import SYNAPTIC_TYPES, ann_network, module_indices
from loihic.training.checkpoint import validate_checkpoint
from loihic.training.models import (
    build_model,
)
from loihic.training.noise.options import (
    LEAK,
    NoiseConfig,
    check_offset,
    check_stage,
    check_stage3,
    check_timesteps,
    residual_gain,
)
from loihic.training.snn import encode_chunks, fire, integrate, split_stages


# --- stages 2 and 3, and the deployed LIF: evaluation ----------------------------------------------------
def chunk_generator(seed: int, chunk: int) -> torch.Generator:
    """The noise generator of sample chunk ``chunk`` (chunks of :data:`ENCODE_CHUNK`, as encode_chunks):
    noise, like the input spikes, depends only on (seed, sample position), never on batch_size."""
    state = np.random.SeedSequence([int(seed), int(chunk), 0x6E6F697365]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _normalised_potential(v: torch.Tensor, alpha: float, beta: float, leak: float) -> torch.Tensor:
    """N(lambda V(t-1)) of eqs. 8-10, per sample over the layer's neurons."""
    a = leak * v  # eq. 8
    flat = a.reshape(a.shape[0], -1)
    mu = flat.mean(dim=1, keepdim=True)
    sd = flat.std(dim=1, unbiased=False, keepdim=True)
    a_hat = torch.where(
        sd > 0, (flat - mu) / torch.where(sd > 0, sd, torch.ones_like(sd)), torch.zeros_like(flat)
    )  # eq. 9
    peak = a_hat.abs().amax(dim=1, keepdim=True)
    scaled = torch.where(
        peak > 0, a_hat / (alpha * torch.where(peak > 0, peak, torch.ones_like(peak))), torch.zeros_like(a_hat)
    )
    return (scaled + beta).reshape(a.shape)  # eq. 10


class NoiseSNN:
    """The float network of a noise checkpoint run at T steps in one of :data:`STAGES` (module docstring)."""

    def __init__(self, ckpt: Mapping[str, Any]) -> None:
        ckpt = validate_checkpoint(ckpt, f"checkpoint ({ckpt.get('model')} on {ckpt.get('dataset')})", "snn")
        snn = ckpt["snn"]
        if snn.get("output", "integrator") != "spiking" or any(t is None for t in snn["thresholds"]):
            raise InputError("noise evaluation needs a spiking output layer (snn.output 'spiking')")
        self.noise = NoiseConfig.from_checkpoint(ckpt)
        network = ann_network(ckpt, weights=False)
        self.net = build_model(network)
        self.net.load_state_dict(ckpt["state_dict"])
        self.net.eval()
        self.prefix, self.stages = split_stages(self.net, network)
        self.thresholds = [float(t) for t in snn["thresholds"]]
        self.leak, self.reset = float(snn["leak"]), str(snn["reset"])
        self.encoding = str(snn["encoding"])
        self.scale = float(input_scale(self.encoding))
        self.folded = snn.get("deploy_offset")  # the noise mean already in the biases (with_offset, deploy.py)
        self.stage3 = (ckpt.get("metrics") or {}).get("test_accuracy_stage3") if "deploy_stage" in snn else None

    def check_stage(self, stage: Any) -> str:
        """``stage`` checked (:data:`STAGES`); a checkpoint whose biases hold the noise mean runs "lif" only."""
        mode = check_stage(stage)
        if self.folded is not None and mode != "lif":
            was = (
                "" if self.stage3 is None else f"; its metrics keep the noise-trained stage 3: {100 * self.stage3:.2f}%"
            )
            raise InputError(
                f"--stage {mode}: this checkpoint's biases already hold the noise mean ({self.folded:g}): it is the "
                f"deterministic network Loihi runs, evaluated with --stage lif{was}"
            )
        return mode

    @torch.no_grad()
    def run(
        self,
        spikes: np.ndarray | torch.Tensor,
        stage: str,
        gen: torch.Generator | None,
        alpha: float = 4.0,
        beta: float = 0.5,
        offset: float | None = None,
    ) -> torch.Tensor:
        """Output spike counts (B, classes) for encoded inputs (B, *input_shape, T).

        ``offset`` is the constant current of stages "lif+mean"/"lif+noise" (None: :func:`steady_offset`
        ``(beta)``).  Noise is drawn from ``gen`` step by step, layer by layer, in a fixed order.
        """
        mode = self.check_stage(stage)
        check_stage3(alpha, beta)
        c = check_offset(steady_offset(beta, self.leak) if offset is None else offset)
        x = torch.as_tensor(spikes).to(torch.float32) / self.scale
        k = residual_gain(self.noise, alpha)
        v: list[torch.Tensor | float] = [0.0] * len(self.stages)
        counts: torch.Tensor | None = None
        for t in range(x.shape[-1]):
            h = x[..., t]
            for module in self.prefix:
                h = module(h)
            for n, stage in enumerate(self.stages):
                current = stage.current(h)
                th = self.thresholds[n]
                if mode == "lif":
                    s, v[n] = fire(integrate(v[n], current, self.leak), th, self.reset)
                elif mode == "lif+mean":
                    s, v[n] = fire(integrate(v[n], current + c, self.leak), th, self.reset)
                elif mode == "lif+noise":
                    extra = c + k * (self.noise.sample(current.shape, gen) - self.noise.mean)
                    s, v[n] = fire(integrate(v[n], current + extra, self.leak), th, self.reset)
                elif mode == "2":
                    s = (self.noise.sample(current.shape, gen) + current) > th  # eq. 6 at every step
                else:  # "3", eqs. 7-10
                    prev = v[n] if isinstance(v[n], torch.Tensor) else torch.zeros_like(current)
                    drawn = self.noise.sample(current.shape, gen)
                    hh = _normalised_potential(prev, alpha, beta, self.leak) + k * (drawn - self.noise.mean) + current
                    s, v[n] = fire(hh, th, self.reset)
                h = stage.forward_spikes(s.to(torch.float32))
            counts = h if counts is None else counts + h
        if counts is None:
            raise InputError("spikes have no time steps (T = 0)")
        return counts


def noise_outputs(
    ckpt: Mapping[str, Any],
    x: np.ndarray,
    timesteps: int | None = None,
    stage: str | int = "3",
    alpha: float = 4.0,
    beta: float = 0.5,
    seed: int = 0,
    offset: float | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Output spike counts (N, classes) of the float network at ``timesteps`` in ``stage`` (:data:`STAGES`).

    Inputs are encoded with ``snn.encode_chunks`` (chunks of 256 samples, chunk k seeded ``seed + k``) and
    each chunk's noise comes from :func:`chunk_generator` ``(seed, k)``: results depend on ``seed`` only.
    """
    mode = check_stage(stage)
    check_stage3(alpha, beta)
    if offset is not None:
        check_offset(offset)
    model = NoiseSNN(ckpt)
    model.check_stage(mode)
    steps = check_timesteps(int(ckpt["snn"]["timesteps"]) if timesteps is None else timesteps)
    out = np.zeros((len(x), ckpt["num_classes"]), dtype=np.float32)
    bar = tqdm(total=len(x), desc=f"noise {mode}", unit="sample", file=sys.stderr, disable=not progress)
    for k, (start, spikes) in enumerate(encode_chunks(x, steps, model.encoding, seed)):
        out[start : start + len(spikes)] = model.run(
            spikes, mode, chunk_generator(seed, k), alpha, beta, offset
        ).numpy()
        bar.update(len(spikes))
    bar.close()
    return out


def evaluate_noise(
    ckpt: Mapping[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    timesteps: int | None = None,
    stage: str | int = "3",
    alpha: float = 4.0,
    beta: float = 0.5,
    seed: int = 0,
    offset: float | None = None,
    progress: bool = False,
) -> float:
    """Accuracy of argmax of the output spike counts (ties to the lowest index) in ``stage``; stage "lif"
    equals ``training.snn.evaluate_snn`` on the same checkpoint, spike for spike."""
    if len(x) != len(y) or len(x) == 0:
        raise InputError(f"x has {len(x)} samples and y {len(y)}: expected the same non-zero number")
    pred = noise_outputs(ckpt, x, timesteps, stage, alpha, beta, seed, offset, progress).argmax(axis=1)
    return float((pred == np.asarray(y)).mean())


def steady_offset(beta: float = 0.5, leak: float = LEAK) -> float:
    """The constant per-step current ``c = beta (1 - lambda)`` whose LIF steady state matches stage 3's mean:
    a neuron that neither fires nor receives input settles at V = c / (1 - lambda), so its accumulated term
    plus the offset is ``lambda V + c = c / (1 - lambda) = beta``, the mean of N(lambda V(t-1)) (eq. 10)."""
    return float(beta) * (1.0 - float(leak))


def with_offset(ckpt: Mapping[str, Any], offset: float) -> dict[str, Any]:
    """A copy of a noise checkpoint whose every synaptic layer adds the constant current ``offset`` each step,
    folded into its bias (its layers get ``bias: true`` where they had none): the plain LIF of this copy is
    stage "lif+mean" with ``offset`` of the original, and it compiles like any SNN checkpoint."""
    check_offset(offset)
    ckpt = validate_checkpoint(ckpt, f"checkpoint ({ckpt.get('model')} on {ckpt.get('dataset')})", "snn")
    if "deploy_offset" in ckpt["snn"]:
        raise InputError(
            f"--offset {offset:g}: this checkpoint's biases already hold a constant current "
            f"({ckpt['snn']['deploy_offset']:g}"
            + (", trained by its deployment stage" if "deploy_stage" in ckpt["snn"] else "")
            + "); compile it without --offset"
        )
    layers = [dict(layer) for layer in ckpt["layers"]]
    state = dict(ckpt["state_dict"])
    for k, (i, layer) in enumerate(zip(module_indices(layers), layers, strict=True)):
        if layer["type"] not in SYNAPTIC_TYPES:
            continue
        if k + 1 < len(layers) and layers[k + 1]["type"] == "batchnorm":
            raise InputError(f"layer '{layer['name']}': offset folding with batchnorm is not supported")
        w = state[f"{i}.weight"]
        bias = (
            state.get(f"{i}.bias", torch.zeros(w.shape[0], dtype=w.dtype))
            if layer["bias"]
            else torch.zeros(w.shape[0], dtype=w.dtype)
        )
        layer["bias"] = True
        state[f"{i}.bias"] = bias + float(offset)
    out = {**ckpt, "layers": layers, "state_dict": state, "snn": {**ckpt["snn"], "deploy_offset": float(offset)}}
    validate_checkpoint(out, "offset checkpoint", "snn")
    return out
