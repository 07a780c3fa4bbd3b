"""Sigma-delta (SDNN) networks through the emulator, Lava and the CLI, in stream timing (their only timing).

lava-dl's own PilotNet SDNN (``sim_tests/golden/lava_dl``: network.net, input.npy, output.npy of its
``test_pilotnet_sdnn``) must give lava-dl's recorded output; random dense SDNN files (Delta input, SigmaDelta with
bias, Sigma read-out; thresholds from 0 up) must equal Lava on every layer and step; a short video must too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loihic.compiler.errors import InputError
from loihic.compiler.netx.read import read_netx
from loihic.deploy.emulator.network import Emulator
from loihic.deploy.verification.parity import verify
from sim_tests.golden.lava_dl.make_lava_dl import copy_layers, unpack
from sim_tests.unit.test_cli_bad_input import assert_refused, run_cli
from sim_tests.unit.test_sigma_delta import sdnn_reference, write_sdnn


@pytest.fixture(scope="module")
def pilotnet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """(network.net, its input frame (C, H, W) int64, lava-dl's output (1, 9): the Sigma sink of 9 steps)."""
    d = tmp_path_factory.mktemp("pilotnet")
    frame = np.load(unpack("pilotnet_sdnn_input.npy", d)).transpose(2, 1, 0, 3)[..., 0].astype(np.int64)
    return unpack("pilotnet_sdnn.net", d), frame, np.load(unpack("pilotnet_sdnn_output.npy", d))


def _video(frame: np.ndarray, steps: int) -> np.ndarray:
    """The frame moved right 2 pixels and brightened by 3 each step: (1, C, H, W, steps)."""
    return np.stack([np.roll(frame, 2 * k, axis=2) + 3 * k for k in range(steps)], -1)[None]


@pytest.mark.parametrize("mode", ["layer", "step"])
def test_emulator_gives_lava_dls_pilotnet_output(pilotnet: tuple, mode: str) -> None:
    path, frame, want = pilotnet
    model = read_netx(path, sigma_delta=True)
    x = np.repeat(frame[None, ..., None], want.shape[-1], axis=-1)  # lava-dl holds its one frame for 9 steps
    res = Emulator(model, device="cpu", mode=mode).run(x)  # stream timing: a sigma-delta network's default
    assert res.output_spikes.dtype == np.int32
    assert np.array_equal(res.output_spikes[0].reshape(want.shape), want)


def test_emulator_equals_the_reference_on_random_sdnn_files(tmp_path: Path) -> None:
    """Every layer, every step, three samples each from a fresh network, both execution modes; with and without
    an 'input' layer (then the source drives the first dense, binary or graded)."""
    rng = np.random.default_rng(5)
    for case, vth in enumerate([(0, 0, 0), (0, 3, 1), (2, 40, 7), (5, 400, 90)]):
        path = write_sdnn(tmp_path / f"sd{case}.net", rng, vth=vth)
        variants = [(path, 0), (copy_layers(path, tmp_path / f"noinput{case}.net", 1), 0)]
        variants.append((variants[1][0], 16))
        for p, bits in variants:
            model = read_netx(p, sigma_delta=True)
            x = rng.integers(-300, 300, (3, *model.input.shape, 10)) * (bits or model.has_input_neuron)
            x = x if (bits or model.has_input_neuron) else (rng.random((3, *model.input.shape, 10)) < 0.4)
            x = x.astype(np.int64)
            layer = Emulator(model, "cpu", input_message_bits=bits).run(x, record_layers=True)
            step = Emulator(model, "cpu", input_message_bits=bits, mode="step").run(x, record_layers=True)
            for n in range(len(x)):
                want = sdnn_reference(model, x[n], x.shape[-1], bits)
                for k, w in enumerate(want):
                    assert np.array_equal(layer.layer_spikes[k][n].reshape(-1, x.shape[-1]).T, w), (case, p, k)
                    assert np.array_equal(step.layer_spikes[k][n].reshape(-1, x.shape[-1]).T, w), (case, p, k)


def test_aligned_timing_is_refused_for_sdnn(pilotnet: tuple) -> None:
    model = read_netx(pilotnet[0], sigma_delta=True)
    with pytest.raises(InputError, match="stream timing only"):
        Emulator(model, device="cpu", stream=False)


@pytest.mark.lava
def test_cli_simulate_gives_lava_dls_pilotnet_output_on_both_backends(pilotnet: tuple, tmp_path: Path) -> None:
    path, frame, want = pilotnet
    np.save(tmp_path / "x.npy", np.repeat(frame[None, ..., None], want.shape[-1], axis=-1).astype(np.int32))
    for backend in ("emulator", "lava-sim"):
        run = run_cli(tmp_path, "simulate", str(path), "--input", "x.npy", "-o", f"{backend}.npy", "--backend", backend)
        assert run.rc == 0, run.stderr
        assert np.array_equal(np.load(tmp_path / f"{backend}.npy")[0].reshape(want.shape), want), backend


@pytest.mark.lava
def test_pilotnet_on_a_video_equals_lava_on_every_layer(pilotnet: tuple) -> None:
    path, frame, _ = pilotnet
    rep = verify(str(path), _video(frame, 6), model=read_netx(path, sigma_delta=True), progress=False)
    assert rep.stream and rep.identical, rep.first_mismatch
    assert rep.spikes_compared > 250_000


@pytest.mark.lava
@pytest.mark.parametrize("vth", [(0, 0, 0), (0, 3, 1), (3, 60, 9)])
def test_random_sdnn_files_equal_lava(tmp_path: Path, vth: tuple[int, ...]) -> None:
    rng = np.random.default_rng(sum(vth))
    path = write_sdnn(tmp_path / "sd.net", rng, vth=vth)
    model = read_netx(path, sigma_delta=True)
    x = rng.integers(-500, 500, (2, *model.input.shape, 12)) * (rng.random((2, *model.input.shape, 12)) < 0.7)
    rep = verify(str(path), x, model=model, progress=False)
    assert rep.identical, rep.first_mismatch
    assert rep.spikes_compared == 2 * 12 * (12 + 10 + 8 + 3)


@pytest.mark.lava
def test_a_file_mixing_lif_and_sdnn_is_refused_in_one_line(tmp_path: Path) -> None:
    import h5py

    rng = np.random.default_rng(0)
    path = write_sdnn(tmp_path / "mixed.net", rng)
    with h5py.File(path, "r+") as f:
        g = f["layer/2/neuron"]
        for key in list(g):
            del g[key]
        g.create_dataset("type", (1,), "S10", [b"CUBA"])
        for key, value in (("iDecay", 4096), ("vDecay", 0), ("vThMant", 100)):
            g[key] = np.array([value], np.float32)
    np.save(tmp_path / "x.npy", np.zeros((1, 12, 4), np.int32))
    run = run_cli(tmp_path, "simulate", "mixed.net", "--input", "x.npy", "-o", "y.npy")
    assert_refused(run, "mixed.net", "layer 2", "CUBA neurons", "one kind")
