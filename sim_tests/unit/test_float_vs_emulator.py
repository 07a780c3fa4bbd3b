"""The float SNN (training/snn.py), the compiler and the emulator implement ONE model.

With weights and thresholds on a grid that the quantizer maps to integers exactly (multiples of
1/64 with the largest at 127/64, so the chosen scale is exactly 128), every spike of every layer of
the float SNN must equal the emulator's.  Any difference would be a semantic bug (timing, reset,
threshold comparison, flatten order, bias), not quantization.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loihic.compiler.config import CompileConfig
from loihic.compiler.encoding import encode
from loihic.compiler.load.checkpoint import network_from_checkpoint
from loihic.compiler.netx.read import read_netx
from loihic.compiler.netx.write import write_netx
from loihic.compiler.pipeline import compile_network
from loihic.deploy.emulator.network import Emulator
from loihic.training.ann import train_ann
from loihic.training.convert import convert
from loihic.training.data import load_dataset
from loihic.training.snn import SNNModel


def _on_grid(snn: dict) -> dict:
    """Snap weights to k/64 (|k| <= 127, one weight at 127/64 per layer) and thresholds to k/64."""
    sd = {}
    for key, t in snn["state_dict"].items():
        w = t.double()
        if key.endswith("weight"):
            k = torch.round(w / w.abs().max() * 127)
            w = k / 64
        sd[key] = w.float()
    th = [None if t is None else float(max(round(t * 64), 1) / 64) for t in snn["snn"]["thresholds"]]
    return {**snn, "state_dict": sd, "snn": {**snn["snn"], "thresholds": th}}


@pytest.mark.parametrize("model", ["mlp", "lenet5-nopool"])
def test_float_snn_equals_emulator_spike_for_spike(tmp_path, model):
    x, _ = load_dataset("digits", "train")
    arch_model = "mlp" if model == "mlp" else "lenet5"
    ann = train_ann(arch_model, "digits", 1, 0, progress=False, limit_train=200)
    if model == "lenet5-nopool":  # conv -> relu -> flatten -> linear: no pooling (pool folds are not on-grid)
        gen = torch.Generator().manual_seed(0)
        readout = torch.randn(10, 6 * 8 * 8, generator=gen) * (torch.rand(10, 6 * 8 * 8, generator=gen) < 0.05)
        ann = {
            **ann,
            "layers": [  # modules: conv 0, its ReLU 1, flatten 2, dense 3
                ann["layers"][0],
                {"type": "flatten", "name": "2.flatten"},
                {"type": "dense", "name": "3.linear", "in": 6 * 8 * 8, "out": 10, "bias": False, "spiking": False},
            ],
            "state_dict": {"0.weight": ann["state_dict"]["0.weight"], "3.weight": readout},
        }
    snn = _on_grid(convert(ann, x, 12, calib_samples=32, progress=False))
    # threshold balancing gives thresholds well above one weight step; snap keeps them on the 1/64 grid
    net = compile_network(network_from_checkpoint(snn), CompileConfig())
    for layer in net.synaptic():
        assert layer.quant.scale == pytest.approx(128.0, rel=1e-6), layer.name
    model_nx = read_netx(write_netx(net, tmp_path / "m.net", {}))
    spikes = encode(x[:24], 12, "poisson", seed=3)
    emu = Emulator(model_nx, "cpu").run(spikes, record_layers=True)
    run = SNNModel.from_checkpoint(snn).simulate(torch.as_tensor(spikes), record=True)
    float_layers = [s.numpy().astype(np.uint8) for s in run.spikes]
    for k, (a, b) in enumerate(zip(float_layers, emu.layer_spikes[:-1], strict=False)):
        a = a.reshape(b.shape)
        assert np.array_equal(a, b), f"layer {k}: first diff {np.argwhere(a != b)[:1]}"
    # the read-out: float v_T * 128 * 64 == integer v
    np.testing.assert_array_equal(np.rint(run.output.double().numpy() * 128 * 64).astype(np.int64), emu.output_v)
