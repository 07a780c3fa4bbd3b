"""Every netx file lava-dl writes runs, on Lava and on the emulator, spike for spike.

* lava-dl's own example networks (sim_tests/golden/lava_dl, the exact bytes of lava-dl d825ac5):
  tests/.../netx/tiny.net (an 'input' layer with a LOIHI neuron, two convs), the netx MNIST tutorial's
  784-128-64-10 and the Oxford tutorial's 200-256-200, each on Lava's CPU simulator and on the emulator
  with random input, every layer compared.
* Conv-first files WITHOUT an 'input' layer, which lava-dl's netx runs only when given ``input_shape``:
  tiny.net with its input layer removed (every other group copied verbatim), and one written by slayer's
  own ``export_hdf5`` (grouped conv, non-square kernel/stride/padding, flatten, dense).  Their input shape
  comes from the data (or ``--input-shape``): ``loihic simulate`` with ``--input X.npy``, ``verify`` and
  ``evaluate`` with ``--data X.npy``, through the CLI on both backends.
* slayer's forward equals the emulator on the slayer file under the exact time shift documented in
  test_slayer_export.py (block k is k + 1 steps later), so the conv-first file means what slayer trained.

lava-dl's files that use what loihic does not emulate (the pilotnet SDNN networks) are refused by name:
sim_tests/unit/test_foreign_netx_refusals.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from loihic.compiler.netx.read import read_netx
from loihic.deploy.emulator.network import Emulator
from loihic.deploy.lava.compat import install
from loihic.deploy.verification.parity import verify
from sim_tests.golden.lava_dl.make_lava_dl import copy_layers, unpack

install()  # before anything imports lava (Python 3.11 patches)
slayer = pytest.importorskip("lava.lib.dl.slayer")

pytestmark = [
    pytest.mark.lava,
    # netx's create_input does int() on tiny.net's 1-element input weight/bias arrays (numpy 1.25+ warns)
    pytest.mark.filterwarnings("ignore:Conversion of an array with ndim > 0:DeprecationWarning"),
]

N, T = 2, 12  # samples, steps: Lava's scipy conv costs ~10 ms per step on tiny.net
CLI_TIMEOUT = 300
SLAYER_SHAPE = (4, 9, 12)  # (C, H, W) of the slayer conv-first network: non-square, odd H
_SLAYER_BLOCKS: dict[str, list] = {}  # file -> the slayer blocks it was exported from


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("lava_dl")
    out = {name: unpack(f"{name}.net", d) for name in ("tiny", "mnist_tutorial", "oxford")}
    out["tiny_noinput"] = copy_layers(out["tiny"], d / "tiny_noinput.net", 1)
    out["slayer_conv"] = _slayer_conv_first(d / "slayer_conv.net")
    return out


def _slayer_conv_first(path: Path) -> Path:
    """slayer blocks Conv (groups 2, kernel 3x5, stride (1, 2), padding (1, 2)) -> Conv -> Flatten -> Dense,
    exported block by block with slayer's ``export_hdf5`` and no Input block: no 'input' layer."""
    torch.manual_seed(1)
    cuba = slayer.block.cuba
    p = dict(threshold=1.0, current_decay=0.2, voltage_decay=0.05)
    blocks = [
        cuba.Conv(p, 4, 6, (3, 5), stride=(1, 2), padding=(1, 2), groups=2, weight_scale=3),  # (4,9,12) -> (6,9,6)
        cuba.Conv(p, 6, 3, 3, stride=2, padding=(0, 1), weight_scale=3),  # -> (3, 4, 3)
        cuba.Flatten(),
        cuba.Dense(p, 3 * 4 * 3, 5, weight_scale=3),
    ]
    _slayer_forward(blocks, torch.zeros(1, *SLAYER_SHAPE, 2))  # slayer infers neuron shapes, which export needs
    with h5py.File(path, "w") as h:
        layer = h.create_group("layer")
        for i, b in enumerate(blocks):
            b.export_hdf5(layer.create_group(f"{i}"))
    _SLAYER_BLOCKS[str(path)] = blocks
    return path


def _slayer_forward(blocks: list, x: torch.Tensor) -> list[np.ndarray]:
    out, s = [], x
    with torch.no_grad():
        for b in blocks:
            b.eval()
            s = b(s)
            if getattr(b, "neuron", None) is not None:
                out.append(s.numpy().astype(np.uint8))
    return out


def _spikes(shape: tuple[int, ...], p: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < p).astype(np.uint8)


def _graded(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Half the entries 0, the rest uniform in [0, 40]: tiny.net's input neurons (iDecay 4096, vDecay 1024,
    vThMant 25: steady v = 4 * (a << 6)) fire only for a_in >= 7, so binary spikes would leave them silent."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 41, shape) * (rng.random(shape) < 0.5)).astype(np.uint8)


# case -> (file, input shape given to read_netx (None: the file's), input maker, spike probability)
CASES = {
    "tiny": ("tiny", None, _graded, None),
    "mnist_tutorial": ("mnist_tutorial", None, _spikes, 0.2),
    "oxford": ("oxford", None, _spikes, 0.02),
    "tiny_noinput": ("tiny_noinput", (3, 16, 16), _spikes, 0.3),
    # the same file with 15x15 inputs: its first conv (kernel 5, stride 2) gives 6x6 from these too
    "tiny_noinput_15": ("tiny_noinput", (3, 15, 15), _spikes, 0.3),
    "slayer_conv": ("slayer_conv", SLAYER_SHAPE, _spikes, 0.3),
}


@pytest.mark.parametrize("case", list(CASES))
def test_emulator_equals_lava(files: dict[str, Path], case: str) -> None:
    """Every layer of the network, every spike: emulator == Lava CPU simulator (fixed_pt)."""
    name, shape, make_x, p = CASES[case]
    model = read_netx(files[name], input_shape=shape)
    seed = list(CASES).index(case)
    x = make_x((N, *model.input.shape, T), seed) if p is None else make_x((N, *model.input.shape, T), p, seed)
    emu = Emulator(model, device="cpu").run(x, record_layers=True)
    for k, s in enumerate(emu.layer_spikes):
        assert 0 < s.sum() < s.size * 3 // 4, f"{case} layer {k}: {s.sum()} of {s.size} spikes"
    rep = verify(str(model.path), x, progress=False, model=model)
    assert rep.identical and rep.mismatches == 0, rep.first_mismatch
    assert rep.spikes_compared == sum(s.size for s in emu.layer_spikes)


@pytest.mark.parametrize("case", ["tiny", "mnist_tutorial", "tiny_noinput", "slayer_conv"])
def test_stream_timing_equals_a_plain_lava_run(files: dict[str, Path], case: str) -> None:
    """Stream timing, as lava-dl's tests and tutorials run netx (a plain Network, no resets, the sink's record):
    emulator == Lava on every layer, and it is not the aligned record (the pipeline's fill shows)."""
    name, shape, make_x, p = CASES[case]
    model = read_netx(files[name], input_shape=shape)
    seed = 100 + list(CASES).index(case)
    x = make_x((N, *model.input.shape, T), seed) if p is None else make_x((N, *model.input.shape, T), p, seed)
    rep = verify(str(model.path), x, progress=False, model=model, stream=True)
    assert rep.identical and rep.mismatches == 0, rep.first_mismatch
    stream = Emulator(model, device="cpu", stream=True).run(x).output_spikes
    aligned = Emulator(model, device="cpu").run(x).output_spikes
    assert stream.any() and not np.array_equal(stream, aligned)


def test_conv_first_reads_as_netx_runs_it(files: dict[str, Path]) -> None:
    """No 'input' layer: the model takes the given shape and hands netx (x, y, f) = (W, H, C); files with
    an 'input' layer read exactly as before, with or without a (matching) input shape."""
    m = read_netx(files["tiny_noinput"], input_shape=(3, 16, 16))
    assert m.input.shape == (3, 16, 16) and not m.input.declared and m.netx_input_shape == (16, 16, 3)
    assert [lay.shape for lay in m.neuron_layers] == [(24, 6, 6), (36, 1, 1)]
    s = read_netx(files["slayer_conv"], input_shape=SLAYER_SHAPE)
    assert s.layers[0].groups == 2 and s.layers[0].stride == (1, 2) and s.netx_input_shape == (12, 9, 4)
    with h5py.File(files["slayer_conv"]) as f:
        assert f["layer/0/type"][0] == b"conv" and "input" not in {f[f"layer/{i}/type"][0] for i in range(4)}
    plain, given = read_netx(files["tiny"]), read_netx(files["tiny"], input_shape=(3, 16, 16))
    assert plain.input == given.input and plain.input.declared and plain.netx_input_shape is None
    pairs = zip(plain.neuron_layers, given.neuron_layers, strict=True)
    assert all(np.array_equal(a.weight, b.weight) for a, b in pairs)


def test_slayer_forward_equals_emulator_shifted(files: dict[str, Path]) -> None:
    """slayer's own forward of the conv-first blocks == the emulator on their export, block k delayed by
    k + 1 steps (each CUBA block's step_delay; test_slayer_export.py explains the shift)."""
    model = read_netx(files["slayer_conv"], input_shape=SLAYER_SHAPE)
    x = _spikes((N, *SLAYER_SHAPE, 16), 0.3, 8)
    emu = Emulator(model, device="cpu").run(x, record_layers=True).layer_spikes
    ref = _slayer_forward(_SLAYER_BLOCKS[str(files["slayer_conv"])], torch.as_tensor(x, dtype=torch.float32))
    assert len(emu) == len(ref) == 3
    for k, (e, s) in enumerate(zip(emu, ref, strict=True)):
        steps = e.shape[-1]
        assert s[..., k + 1 :].sum() > 0, f"slayer block {k} is silent"
        assert np.array_equal(e[..., : steps - k - 1], s[..., k + 1 :]), f"block {k} differs under shift {k + 1}"


def _loihic(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "loihic", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(procs: dict[str, subprocess.Popen]) -> dict[str, str]:
    """Wait for every CLI run (they go side by side to share the import cost); each must succeed."""
    outs = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=CLI_TIMEOUT)
        assert proc.returncode == 0, f"{name}: rc {proc.returncode}\n{err[-3000:]}"
        assert "Traceback" not in err, f"{name}:\n{err[-3000:]}"
        outs[name] = out
    return outs


@pytest.mark.parametrize("name", ["tiny_noinput", "slayer_conv"])
def test_cli_simulate_conv_first(files: dict[str, Path], name: str, tmp_path: Path) -> None:
    """``loihic simulate`` takes the input shape from ``--input X.npy`` (N, C, H, W, T); emulator and
    lava-sim give the same spikes, equal to the Python emulator's; ``--input-shape`` agrees."""
    shape = {"tiny_noinput": (3, 16, 16), "slayer_conv": SLAYER_SHAPE}[name]
    x = _spikes((N, *shape, T), 0.3, 9)
    np.save(tmp_path / "x.npy", x)
    net = files[name]
    _finish(
        {
            "emulator": _loihic("simulate", net, "--input", "x.npy", "-o", "y_emu.npy", cwd=tmp_path),
            "lava-sim": _loihic(
                "simulate", net, "--input", "x.npy", "-o", "y_lava.npy", "--backend", "lava-sim",
                "--input-shape", ",".join(map(str, shape)), cwd=tmp_path,
            ),
        }
    )  # fmt: skip
    y_emu, y_lava = np.load(tmp_path / "y_emu.npy"), np.load(tmp_path / "y_lava.npy")
    ref = Emulator(read_netx(net, input_shape=shape), device="cpu").run(x).output_spikes
    assert y_emu.shape == ref.shape and y_emu.sum() > 0
    np.testing.assert_array_equal(y_emu, ref)
    np.testing.assert_array_equal(y_lava, y_emu)


def test_cli_verify_and_evaluate_conv_first(files: dict[str, Path], tmp_path: Path) -> None:
    """``verify --data X.npy`` (N, C, H, W) on the slayer conv-first file: IDENTICAL on every layer;
    ``evaluate --data --labels`` gives the same accuracy on the emulator and on lava-sim."""
    rng = np.random.default_rng(10)
    np.save(tmp_path / "X.npy", rng.random((3, *SLAYER_SHAPE)).astype(np.float32))
    np.save(tmp_path / "Y.npy", np.array([0, 3, 4]))
    net, common = files["slayer_conv"], ("--data", "X.npy", "-T", str(T), "--json")
    outs = _finish(
        {
            "verify": _loihic("verify", net, *common, "--samples", "2", cwd=tmp_path),
            "evaluate-emulator": _loihic("evaluate", net, *common, "--labels", "Y.npy", cwd=tmp_path),
            "evaluate-lava": _loihic(
                "evaluate", net, *common, "--labels", "Y.npy", "--backend", "lava-sim", cwd=tmp_path
            ),
        }
    )
    rep = json.loads(outs["verify"])
    assert rep["identical"] and rep["mismatches"] == 0 and rep["samples"] == 2 and rep["spikes_compared"] > 0
    emu, lava = json.loads(outs["evaluate-emulator"]), json.loads(outs["evaluate-lava"])
    assert emu["samples"] == lava["samples"] == 3 and emu["accuracy"] == lava["accuracy"]


def test_python_api_takes_the_input_shape_from_the_data(files: dict[str, Path]) -> None:
    """loihic.simulate / verify on a conv-first file without an 'input' layer: the shape comes from x."""
    import loihic

    spikes = _spikes((3, *SLAYER_SHAPE, 6), 0.3, 7)
    run = loihic.simulate(files["slayer_conv"], spikes)
    assert run.output_spikes.shape == (3, 5, 6)
    rep = loihic.verify(files["slayer_conv"], np.random.default_rng(0).random((2, *SLAYER_SHAPE)), timesteps=6)
    assert rep.identical


def test_pilotnet_lif_stream_equals_a_plain_lava_run(tmp_path: Path) -> None:
    """lava-dl's trained PilotNet LIF (gts/pilotnet_lif/network.net: LOIHI input layer 3x66x200, 5 convs, 4 dense), run
    as lava-dl runs it (a plain Network, no resets): on its test frame and on that frame moved 7 pixels and brightened
    by 20%, held 16 steps, emulator == Lava on every spike of every layer (about 5 million compared)."""
    model = read_netx(unpack("pilotnet_lif.net", tmp_path))
    img = np.load(unpack("pilotnet_lif_image.npy", tmp_path)).transpose(2, 1, 0).astype(np.int64)  # (W,H,C) -> CHW
    moved = np.clip(np.roll(img, 7, axis=2) * 1.2, 0, 255).astype(np.int64)
    x = np.stack([img, moved])[..., None].repeat(16, -1).astype(np.int32)
    rep = verify(str(model.path), x, progress=False, model=model, stream=True)
    assert rep.identical and rep.mismatches == 0, rep.first_mismatch
    stream = Emulator(model, device="cpu", stream=True).run(x, record_layers=True).layer_spikes
    aligned = Emulator(model, device="cpu").run(x, record_layers=True).layer_spikes
    assert rep.spikes_compared == sum(s.size for s in stream) > 5_000_000
    assert all(s.any() for s in stream[:-1])  # the last layer (one steering neuron) stays silent on these frames
    assert any(not np.array_equal(s, a) for s, a in zip(stream, aligned, strict=True))
