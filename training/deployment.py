"""A loihic SNN checkpoint as the compile driver's :class:`~loihic.compiler.driver.Source`.

Two deployment policies need the float SNN, so they live here, on training's side of the compiler:

- a noise-trained SNN (Jiang & Zhang) deploys as plain LIF plus the mean of its training noise, folded into the
  bias (``offset="auto"``, training/noise/evaluate.py ``steady_offset``), unless the caller sets ``offset``; one
  that went through the deployment stage (training/noise/deploy.py) has it in its trained biases already and
  deploys as it is (an explicit ``offset`` is refused by ``with_offset``);
- a soft-reset SNN (Datta et al. eq. 3) deployed with Lava's hard reset: the float accuracy of both resets is
  measured on the recorded data set and returned as a warning.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from loihic.compiler.config import CompileConfig
from loihic.compiler.driver import CompileResult, Source, check_output, compile_source
from loihic.compiler.errors import InputError
from loihic.compiler.fileio import file_sha256
from loihic.compiler.load.checkpoint import is_sdnn, network_from_checkpoint
from loihic.compiler.load.pt2 import is_pt2
from loihic.training.checkpoint import load_checkpoint, validate_checkpoint
from loihic.training.data import test_split
from loihic.training.noise import steady_offset, with_offset
from loihic.training.snn import evaluate_snn


def hard_reset_effect(ckpt: dict[str, Any], samples: int, seed: int) -> dict[str, Any]:
    """Float accuracy of a soft-reset SNN as trained and as Loihi runs it (hard reset), same spikes."""
    x, y = test_split(ckpt["dataset"], samples)
    hard = {**ckpt, "snn": {**ckpt["snn"], "reset": "hard"}}
    return {
        "samples": int(len(x)),
        "seed": seed,
        "accuracy_soft": evaluate_snn(ckpt, x, y, seed=seed),
        "accuracy_hard": evaluate_snn(hard, x, y, seed=seed),
    }


def checkpoint_source(
    checkpoint: str | os.PathLike | dict[str, Any],
    config: CompileConfig,
    offset: str | None = None,
    default_offset: bool = False,
    effect_samples: int = 500,
    seed: int = 0,
) -> Source:
    """An SNN checkpoint (file, or dict from the Python API) as a driver Source.  ``default_offset`` (the CLI's
    and the API's default): a noise-trained SNN without ``offset`` deploys with ``offset="auto"``."""
    notes: list[str] = []
    warnings: list[str] = []
    if isinstance(checkpoint, dict):
        ckpt, sha = validate_checkpoint(checkpoint, "checkpoint", "snn"), None
        where = f"<{ckpt['model']} SNN checkpoint>"
    else:
        where = str(checkpoint)
        if Path(where).is_file() and is_pt2(where):
            raise InputError(
                f"{where}: is a torch.export program (an ANN); convert it first: "
                f"loihic convert {where} --calib X.npy -T 64 -o snn.pt"
            )
        ckpt, sha = load_checkpoint(where), file_sha256(where)
    noise = ckpt["kind"] == "snn" and ckpt["snn"].get("method") == "noise"
    if noise and "deploy_stage" in ckpt["snn"]:
        stage = ckpt["snn"]["deploy_stage"]
        notes.append(
            f"noise-trained SNN after its deployment stage ({stage['epochs']} epoch(s) at T={stage['timesteps']}, "
            f"{stage['input_bits']}-bit input): the noise mean is in its trained biases; deployed as trained"
        )
    elif offset is None and default_offset and noise and "deploy_offset" not in ckpt["snn"]:
        offset = "auto"  # a noise-trained SNN deploys as plain LIF plus the noise mean (training/noise/)
        notes.append(
            "noise-trained SNN: deploying the noise mean as a bias (--offset auto; --offset 0: none); "
            "'loihic train --method noise --deploy-epochs K' trains the network deployed this way"
        )
    if offset is not None:
        try:
            value = steady_offset() if offset == "auto" else float(offset)
        except ValueError:
            raise InputError(f"--offset {offset!r}: expected 'auto' or a number") from None
        ckpt = with_offset(ckpt, value)
    net = network_from_checkpoint(ckpt, where)
    if is_sdnn(ckpt):
        return _sdnn_source(ckpt, net, config, where, sha, offset)
    effect = None
    if config.force_hard_reset and ckpt["snn"].get("reset") == "soft" and not ckpt.get("dataset"):
        warnings.append(
            "soft-reset SNN deployed with Lava's hard reset (no data set recorded to measure the accuracy effect; "
            "compare with 'loihic evaluate --data')"
        )
    elif config.force_hard_reset and ckpt["snn"].get("reset") == "soft":
        effect = hard_reset_effect(ckpt, effect_samples, seed)
        warnings.append(
            f"soft-reset SNN deployed with Lava's hard reset: float accuracy {100 * effect['accuracy_soft']:.2f}% "
            f"(soft) -> {100 * effect['accuracy_hard']:.2f}% (hard) on {effect['samples']} test samples"
        )
    provenance = {
        **_origin(ckpt, net, where, sha),
        "force_hard_reset": config.force_hard_reset,
        "hard_reset_effect": effect,
        "readout": (
            "spike counts of the last layer, argmax"
            if ckpt["snn"].get("output") == "spiking"
            else "v of the last layer (non-spiking integrator), argmax"
        ),
        "offset": offset,
        "method": ckpt["snn"].get("method", "convert"),
    }
    return Source(net, provenance, tuple(notes), tuple(warnings))


def _origin(ckpt: dict[str, Any], net: Any, where: str, sha: str | None) -> dict[str, Any]:
    """The metadata keys every checkpoint's netx file records about where it came from."""
    return {
        "source_checkpoint": where,
        "source_sha256": sha,
        "imported": ckpt.get("imported"),
        "ann_sha256": net.meta.get("source_sha256"),
        "model": net.meta.get("model"),
        "dataset": net.meta.get("dataset"),
        "train_seed": net.meta.get("seed"),
        "conversion": net.meta.get("conversion"),
    }


def _sdnn_source(
    ckpt: dict[str, Any], net: Any, config: CompileConfig, where: str, sha: str | None, offset: str | None
) -> Source:
    """A sigma-delta checkpoint (deploy/sdnn_convert.py) as a Source: the LIF-only options are refused by name."""
    lif = [
        name
        for name, used in (
            ("--offset", offset is not None),
            ("--l4", config.l4),
            ("--force-hard-reset", config.force_hard_reset),
            ("--input-bits", config.input_bits not in ("auto", 8, None)),
        )
        if used
    ]
    if lif:
        raise InputError(
            f"{where}: is a sigma-delta checkpoint; {', '.join(lif)} appl{'ies' if len(lif) == 1 else 'y'}"
            " to rate-coded LIF networks"
        )
    snn = ckpt["snn"]
    k = sum(1 for d in ckpt["layers"] if d["type"] in ("dense", "conv"))
    how = "set by --thresholds" if snn["budget"] is None else f"chosen for accuracy budget {snn['budget']:g}"
    ths = ", ".join(f"{t:.3g}" for t in [snn["input_delta"], *snn["thresholds"][:-1]])
    trials = snn.get("threshold_trials") or []
    chosen = next((t for t in trials if t.get("chosen")), None)
    zero = next((t for t in trials if t.get("fraction") == 0), None)
    cost = (
        f", {chosen['messages']:.0f} messages per inference on the calibration data ({zero['messages']:.0f} with "
        f"thresholds 0), read-out change {chosen['error']:.2g} of its range"
        if chosen and zero
        else ""
    )
    notes = (
        f"sigma-delta: delta thresholds (input, hidden) {ths} ({how}{cost}); the read-out settles at step {k + 1} "
        f"(sink index {k}) with the input held; 'th. err' is what each threshold may hold back, 'floor/msg' what "
        "each message loses (activation units)",
    )
    provenance = {
        **_origin(ckpt, net, where, sha),
        "readout": f"the Sigma read-out (its running sum) at the last step, settled from sink index {k}; argmax",
        "method": "sdnn",
        "sdnn_thresholds": {"input": snn["input_delta"], "layers": snn["thresholds"], "budget": snn["budget"]},
        "sdnn_threshold_trials": snn.get("threshold_trials", []),
    }
    return Source(net, provenance, notes)


def compile_checkpoint(
    checkpoint: str | os.PathLike | dict[str, Any],
    output: str | os.PathLike,
    config: CompileConfig | None = None,
    force: bool = False,
    effect_samples: int = 500,
    seed: int = 0,
    offset: str | None = None,
    default_offset: bool = False,
) -> CompileResult:
    """An SNN checkpoint through the compile driver to the netx file ``output`` (:func:`checkpoint_source`,
    then :func:`~loihic.compiler.driver.compile_source`); the output is refused before any work if it exists."""
    check_output(output, force)
    config = config or CompileConfig()
    source = checkpoint_source(checkpoint, config, offset, default_offset, effect_samples, seed)
    return compile_source(source, output, config, force)
