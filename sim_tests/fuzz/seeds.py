"""Valid seed files for the fuzzer, one of every type loihic reads, built with the real pipeline (small).

- ``mlp.pt`` / ``lenet5.pt``: loihic SNN checkpoints (digits, T=8), trained for one short epoch and converted;
- ``ann.pt``: the MLP's ANN checkpoint (what ``convert --calib`` reads);
- ``model.net``: the MLP compiled to netx (with loihic metadata: data set, T, encoding); ``conv.net``: LeNet-5's;
- ``model.nir``: ``model.net`` exported with ``loihic export-nir``; ``snntorch.nir``: a hand-built NIR graph of
  the kind snnTorch writes (Affine -> LIF -> Affine -> LI, float time constants);
- ``mlp.pt2`` / ``conv.pt2``: ``torch.export.save`` archives of a small MLP and CNN;
- ``X.npy`` (16 digits images), ``Y.npy`` (their labels), ``S.npy`` (binary spikes (4, 1, 8, 8, 8));
- sigma-delta (netx 'SDNN') files: ``sdnn.net`` (Delta input 12 -> dense SigmaDelta with a bias -> dense
  SigmaDelta -> dense Sigma, the neuron groups written by loihic's ``write_sdnn_neuron``) with ``SD.npy``
  (graded integers (2, 12, 8)), and ``sdnn_conv.net``: lava-dl's PilotNet SDNN head (Delta 3x33x33 -> conv 24,
  SigmaDelta; ``sim_tests/golden/lava_dl``) with ``SDC.npy`` ((1, 3, 33, 33, 8) pixel values).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

T = 8  # timesteps of every seed network
N = 16  # samples in X.npy / Y.npy


def _export(model: torch.nn.Module, path: Path) -> None:
    torch.manual_seed(0)
    example = torch.rand(2, 1, 8, 8)
    torch.export.save(torch.export.export(model.eval(), (example,)), path)


def _snntorch_like_nir(path: Path) -> None:
    import nir

    rng = np.random.default_rng(0)
    dt = 1e-4
    nodes = {
        "input": nir.Input(input_type={"input": np.array([64])}),
        "fc1": nir.Affine(weight=rng.normal(0, 0.3, (16, 64)), bias=rng.normal(0, 0.1, 16)),
        "lif1": nir.LIF(tau=np.full(16, dt / 0.1), r=np.full(16, 10.0), v_leak=np.zeros(16), v_threshold=np.ones(16)),
        "fc2": nir.Affine(weight=rng.normal(0, 0.3, (10, 16)), bias=np.zeros(10)),
        "li2": nir.LI(tau=np.full(10, dt / 0.2), r=np.full(10, 5.0), v_leak=np.zeros(10)),
        "output": nir.Output(output_type={"output": np.array([10])}),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "li2"), ("li2", "output")]
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": dt}))


def _sdnn_seeds(folder: Path) -> None:
    import h5py

    from loihic.compiler.netx.model import NxSigmaDelta
    from loihic.compiler.netx.write import write_sdnn_neuron
    from sim_tests.golden.lava_dl.make_lava_dl import unpack

    rng = np.random.default_rng(0)
    sizes = (12, 10, 8, 3)
    with h5py.File(folder / "sdnn.net", "w") as f:
        g = f.create_group("layer/0")
        g.create_dataset("type", (1,), "S10", [b"input"])
        g["shape"] = np.asarray([sizes[0]])
        write_sdnn_neuron(g, NxSigmaDelta("delta", 1, None))
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), 1):
            g = f.create_group(f"layer/{i}")
            g.create_dataset("type", (1,), "S10", [b"dense"])
            g["shape"] = np.asarray([n_out])
            g["weight"] = (rng.integers(-128, 128, (n_out, n_in)) * 2).astype(np.float32)
            last = i == len(sizes) - 1
            write_sdnn_neuron(g, NxSigmaDelta("sigma" if last else "sigma_delta", 0 if last else 2, None))
            if i == 1:
                g["bias"] = rng.integers(-40, 40, n_out).astype(np.float32)
    unpack("pilotnet_sdnn_head.net", folder).rename(folder / "sdnn_conv.net")
    np.save(folder / "SD.npy", rng.integers(-300, 300, (2, sizes[0], T)).astype(np.int32))
    np.save(folder / "SDC.npy", rng.integers(0, 256, (1, 3, 33, 33, T)).astype(np.int32))


def _temporal_seeds(folder: Path) -> None:
    """temporal.net: 12 -> 10 (per-synapse delays 0..62) -> 8 (recurrent) -> 3, and its input TS.npy."""
    from sim_tests.temporal_cases import spikes, temporal_net, write_temporal

    write_temporal(folder / "temporal.net", temporal_net(0, (12, 10, 8, 3), (1,), (0,), 62, T))
    np.save(folder / "TS.npy", spikes(0, 2, 12, T, 0.3))


def build_seeds(folder: Path) -> dict[str, Path]:
    from loihic.compiler.config import CompileConfig
    from loihic.compiler.netx.nir_export import export_nir
    from loihic.training.ann import train_ann
    from loihic.training.checkpoint import save_checkpoint
    from loihic.training.convert import convert
    from loihic.training.data import load_dataset
    from loihic.training.deployment import compile_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x_train, _ = load_dataset("digits", "train")
        x_test, y_test = load_dataset("digits", "test")
        for model in ("mlp", "lenet5"):
            ann = train_ann(model, "digits", 1, 0, hidden=16, bias=True, progress=False, limit_train=200)
            if model == "mlp":
                save_checkpoint(folder / "ann.pt", ann)
            snn = convert(ann, x_train, T, calib_samples=32, progress=False)
            save_checkpoint(folder / f"{model}.pt", snn)
        compile_checkpoint(str(folder / "mlp.pt"), str(folder / "model.net"), CompileConfig())
        compile_checkpoint(str(folder / "lenet5.pt"), str(folder / "conv.net"), CompileConfig())
        export_nir(folder / "model.net", folder / "model.nir")
        _snntorch_like_nir(folder / "snntorch.nir")
        torch.manual_seed(0)
        _export(
            torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10)),
            folder / "mlp.pt2",
        )
        _export(
            torch.nn.Sequential(
                torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 10)
            ),
            folder / "conv.pt2",
        )
    finally:
        torch.set_num_threads(threads)
    np.save(folder / "X.npy", x_test[:N].astype(np.float32))
    np.save(folder / "Y.npy", y_test[:N].astype(np.int64))
    rng = np.random.default_rng(0)
    np.save(folder / "S.npy", (rng.random((4, 1, 8, 8, T)) < 0.3).astype(np.int8))
    _sdnn_seeds(folder)
    _temporal_seeds(folder)
    return {p.name: p for p in sorted(folder.iterdir())}
