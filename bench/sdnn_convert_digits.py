"""A loihic ANN checkpoint and a user's .pt2 CNN to sigma-delta networks on digits: float ANN vs SDNN emulator.

    OMP_NUM_THREADS=1 .venv/bin/python bench/sdnn_convert_digits.py --out bench/results/sdnn_convert_digits.json

The models of sim_tests/unit/test_sdnn_convert.py: ``train_ann("mlp", "digits", 4 epochs, bias)`` and the user CNN
(conv-BN-ReLU-avgpool, conv-ReLU-avgpool, dense 32, dense 10; 15 epochs of Adam in plain PyTorch, exported with
torch.export).  Each is converted with ``loihic.convert(..., neuron="sdnn")`` (budget 0.01), compiled, and run on
the emulator over the whole digits test set (360 images, each held T steps from a fresh state) at the recorded T
(K + 1) and at T = 8: accuracy, messages (Delta and SigmaDelta layers) and synaptic operations per image.  The
CNN once more with ``pooling="layer"`` (``--sdnn-pooling layer``: each average pooling a sigma-delta layer of its
own instead of folded into the next layer's kernel).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from _results import write_results

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import loihic  # noqa: E402
from loihic.compiler.load.checkpoint import network_from_checkpoint  # noqa: E402
from loihic.compiler.netx.read import read_netx  # noqa: E402
from loihic.compiler.resources import synops_per_inference  # noqa: E402
from loihic.deploy import sdnn_thresholds as st  # noqa: E402
from loihic.deploy.emulator.network import Emulator  # noqa: E402
from loihic.deploy.verification.accuracy import sdnn_emulator_accuracy  # noqa: E402
from loihic.training.ann import evaluate_ann, train_ann  # noqa: E402
from loihic.training.data import load_dataset  # noqa: E402
from loihic.training.models import model_from_checkpoint  # noqa: E402
from sim_tests.unit.test_sdnn_convert import train_user_cnn  # noqa: E402


def measure(name: str, sd: dict, float_acc: float, xt: np.ndarray, yt: np.ndarray, tmp: Path) -> dict:
    path = loihic.compile(sd, tmp / f"{name}.net", force=True)
    model, net = read_netx(path, sigma_delta=True), network_from_checkpoint(sd)
    rows = []
    for steps in sorted({sd["snn"]["timesteps"], 8}):
        acc = sdnn_emulator_accuracy(model, xt, yt, steps, "cpu", progress=False)
        held = st.hold(net, xt, steps)
        res = Emulator(model, "cpu", stream=True).run(held, record_layers=True)
        msgs = sum(float((r != 0).reshape(len(r), -1).sum(1).mean()) for r in res.layer_spikes[:-1])
        rows.append(
            {
                "T": steps,
                "accuracy": acc,
                "messages": msgs,
                "synops": sum(synops_per_inference(model, res.layer_spikes, held)),
            }
        )
    snn = sd["snn"]
    return {
        "name": name,
        "float_accuracy": float_acc,
        "runs": rows,
        "input_delta": snn["input_delta"],
        "thresholds": snn["thresholds"],
        "budget": snn["budget"],
        "bias_unit": snn["bias_unit"],
        "pooling": snn["pooling"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/results/sdnn_convert_digits.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    x, y = load_dataset("digits", "train")
    xt, yt = load_dataset("digits", "test")
    out = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        torch.manual_seed(0)
        ann = train_ann("mlp", "digits", 4, 0, progress=False, bias=True)
        fa = evaluate_ann(model_from_checkpoint(ann), xt, yt)
        out.append(measure("mlp", loihic.convert(ann, x, neuron="sdnn"), fa, xt, yt, tmp))
        fa = train_user_cnn(x, y, xt, yt, tmp / "cnn.pt2")
        out.append(
            measure(
                "user_cnn_pt2", loihic.convert(tmp / "cnn.pt2", x[:300], neuron="sdnn", pooling="fold"), fa, xt, yt, tmp
            )
        )
        sd = loihic.convert(tmp / "cnn.pt2", x[:300], neuron="sdnn", pooling="layer")
        out.append(measure("user_cnn_pt2_pool_layer", sd, fa, xt, yt, tmp))
    for r in out:
        for run in r["runs"]:
            print(
                f"{r['name']}: float {100 * r['float_accuracy']:.2f}%  SDNN T={run['T']} {100 * run['accuracy']:.2f}%  "
                f"messages {run['messages']:.0f}  synops {run['synops']:.0f} per image"
            )
    write_results({"args": vars(args), "python": platform.python_version(), "models": out}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
