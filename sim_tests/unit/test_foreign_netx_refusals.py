"""netx files loihic must refuse by name, and the ``--input-shape`` checks, through the real CLI.

Lava runs, or tries to run, more than loihic emulates (lava-dl 0.6.0 ``netx/hdf5.py``; each case below was
checked by building a ``netx.hdf5.Network`` from such a file):

* layer types ``pool``, ``average``, ``concat``, ``convT``, ``unpool``: netx raises NotImplementedError;
  ``dense_comp``: netx has no ``create_complex_dense``; ``dense_rec`` with a ``delay``: RecurrentDense's
  recurrent delays;
* neuron types ``*RF*`` (RF if PHASE is in the name, else RF_IZ; ADRF drops its adaptive threshold), anything
  else (netx builds no neuron); ``SDNN`` (Delta / SigmaDelta / Sigma) only by export-nir (NIR has no sigma-delta
  neuron; a file mixing CUBA and SDNN everywhere: sim_tests/parity/test_sdnn.py);
* complex weights (``weight/real``, ``weight/imag``: ComplexDense) and a dense ``delay`` beyond 62 steps (netx
  clamps it).

Each gets one ``loihic: error:`` line naming the file, the layer index and the type (the helpers of
test_cli_bad_input.py check the rest: non-zero exit, no traceback, no file left behind).  A conv-first
file without an 'input' layer takes its input shape from the data or ``--input-shape C,H,W``; a shape that
does not fit the first conv, or the data, is refused in one line.  The CLI runs go side by side (a module
fixture); each test then checks its own run.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from loihic.compiler.errors import NetxFormatError, NetxInputShapeError
from loihic.compiler.netx.read import read_netx
from sim_tests.golden.lava_dl.make_lava_dl import unpack
from sim_tests.unit.test_cli_bad_input import Run, assert_no_processes_in, assert_refused, run_cli

T = 4


# --- files, built with h5py the way slayer's export_hdf5 lays them out ------------------------------------
def _neuron(g: h5py.Group, ntype: str = "CUBA") -> None:
    n = g.create_group("neuron")
    n["type"] = ntype
    for key, val in dict(vThMant=80, iDecay=1024, vDecay=128, refDelay=1).items():
        n[key] = val
    if "RF" in ntype:
        n["sinDecay"], n["cosDecay"] = 200, 3900  # what slayer's RF export adds


def _dense(g: h5py.Group, w: np.ndarray, ltype: str = "dense") -> None:
    g.create_dataset("type", (1,), "S10", [ltype.encode()])
    g["shape"] = np.array([w.shape[0]])
    g["weight"] = w.astype(np.float32)
    _neuron(g)


def _mlp(path: Path, change: Callable[[h5py.Group], None] | None = None) -> Path:
    """dense 8 -> 6 -> 4 -> 3 (no 'input' layer); ``change`` edits layer 1."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        layer = f.create_group("layer")
        for i, (n_in, n_out) in enumerate([(8, 6), (6, 4), (4, 3)]):
            _dense(layer.create_group(str(i)), rng.integers(-40, 40, (n_out, n_in)) * 2)
        if change is not None:
            change(layer["1"])
    return path


def _conv_first(path: Path, with_input: bool = False) -> Path:
    """conv 2 -> 4 channels, kernel 3 (input (2, 6, 6) -> (4, 4, 4)), flatten, dense 64 -> 3; with no 'input'
    layer unless ``with_input``."""
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        layer = f.create_group("layer")
        i = 0
        if with_input:
            g = layer.create_group("0")
            g.create_dataset("type", (1,), "S10", [b"input"])
            g["shape"] = np.array([2, 6, 6])
            i = 1
        g = layer.create_group(str(i))
        g.create_dataset("type", (1,), "S10", [b"conv"])
        g["shape"] = np.array([4, 4, 4])
        g["weight"] = (rng.integers(-20, 20, (4, 2, 3, 3)) * 2).astype(np.float32)
        for key, val in dict(stride=[1, 1], padding=[0, 0], dilation=[1, 1]).items():
            g[key] = np.array(val)
        g["groups"] = 1
        _neuron(g)
        g = layer.create_group(str(i + 1))
        g.create_dataset("type", (1,), "S10", [b"flatten"])
        g["shape"] = np.array([64, 1, 1])
        _dense(layer.create_group(str(i + 2)), rng.integers(-20, 20, (3, 64)) * 2)
    return path


def _set_type(ltype: str) -> Callable[[h5py.Group], None]:
    def change(g: h5py.Group) -> None:
        del g["type"]
        g.create_dataset("type", (1,), "S10", [ltype.encode()])
        if ltype == "dense_rec":  # with a delay: netx's RecurrentDense mis-wires the recurrent synapse's delays
            g["weight_rec"] = np.full((4, 4), 2.0, np.float32)
            g["delay"] = np.array([1, 2, 0, 3])

    return change


def _set_neuron(ntype: str) -> Callable[[h5py.Group], None]:
    def change(g: h5py.Group) -> None:
        del g["neuron"]
        _neuron(g, ntype)

    return change


def _complex(ntype: str) -> Callable[[h5py.Group], None]:
    """weight -> weight/real + weight/imag (what netx builds a ComplexDense from)."""

    def change(g: h5py.Group) -> None:
        w = g["weight"][()]
        del g["weight"]
        g["weight/real"], g["weight/imag"] = w, w[::-1].copy()
        if ntype != "CUBA":
            _set_neuron(ntype)(g)

    return change


def _delay(g: h5py.Group) -> None:
    g["delay"] = np.array([1, 2, 70, 3])  # netx would clamp 70 to 62


def _npy(folder: Path, name: str, shape: tuple[int, ...], spikes: bool = True) -> None:
    rng = np.random.default_rng(2)
    np.save(folder / name, (rng.random(shape) < 0.3).astype(np.uint8) if spikes else rng.random(shape))


# --- the cases: (files to build, argv, words the one error line must contain) ------------------------------
Build = Callable[[Path], None]


def _mlp_case(change: Callable[[h5py.Group], None]) -> Build:
    def build(d: Path) -> None:
        _mlp(d / "bad.net", change)
        _npy(d, "X.npy", (2, 8, T))
        _npy(d, "D.npy", (2, 8), spikes=False)

    return build


MLP_CALLS = {
    "simulate": ("simulate", "bad.net", "--input", "X.npy", "-o", "Y.npy"),
    "simulate-lava": ("simulate", "bad.net", "--input", "X.npy", "-o", "Y.npy", "--backend", "lava-sim"),
    "verify": ("verify", "bad.net", "--data", "D.npy", "-T", str(T)),
    "evaluate": ("evaluate", "bad.net", "--data", "D.npy", "--labels", "L.npy", "-T", str(T)),
}

_NOT_IMPL = "NotImplementedError"
# name -> (edit of layer 1, command, words besides 'bad.net' and 'layer 1')
REFUSED: dict[str, tuple[Callable[[h5py.Group], None], str, tuple[str, ...]]] = {
    "pool": (_set_type("pool"), "simulate", ("layer type 'pool'", _NOT_IMPL)),
    "average": (_set_type("average"), "verify", ("layer type 'average'", _NOT_IMPL)),
    "concat": (_set_type("concat"), "simulate-lava", ("layer type 'concat'", _NOT_IMPL)),
    "convT": (_set_type("convT"), "simulate", ("layer type 'convT'", _NOT_IMPL)),
    "unpool": (_set_type("unpool"), "evaluate", ("layer type 'unpool'", _NOT_IMPL)),
    "dense_rec": (_set_type("dense_rec"), "simulate", ("recurrent layer with delays", "RecurrentDense")),
    "dense_comp": (_set_type("dense_comp"), "simulate", ("layer type 'dense_comp'", "create_complex_dense")),
    "RF": (_set_neuron("RF"), "simulate", ("neuron type 'RF'", "resonate-and-fire", "RF_IZ")),
    "RF_PHASE": (_complex("RF_PHASE"), "verify", ("neuron type 'RF_PHASE'", "resonate-and-fire", "Lava's RF for")),
    "ADRF_PHASE": (_set_neuron("ADRF_PHASE"), "simulate", ("neuron type 'ADRF_PHASE'", "adaptive threshold")),
    "ALIF": (_set_neuron("ALIF"), "evaluate", ("neuron type 'ALIF'", "builds no neuron")),
    "complex-weights": (_complex("CUBA"), "simulate", ("complex weights", "weight/real", "ComplexDense")),
    "delay": (_delay, "simulate-lava", ("delay 70 steps", "[0, 62]")),
}


def _conv_case(x: tuple[str, tuple[int, ...], bool] | None = None, with_input: bool = False) -> Build:
    def build(d: Path) -> None:
        _conv_first(d / "c.net", with_input)
        if x is not None:
            _npy(d, *x)

    return build


SPIKES = ("X.npy", (2, 2, 6, 6, T), True)
# name -> (files, argv, words the error line must contain)
SHAPE_CASES: dict[str, tuple[Build, tuple[str, ...], tuple[str, ...]]] = {
    "unknown": (
        _conv_case(),
        ("verify", "c.net", "-T", str(T)),
        ("c.net", "layer 0", "input shape (C, H, W) is unknown", "--input-shape"),
    ),
    "text": (
        _conv_case(SPIKES),
        ("simulate", "c.net", "--input", "X.npy", "-o", "Y.npy", "--input-shape", "2,six,6"),
        ("--input-shape", "'2,six,6'", "C,H,W"),
    ),
    "zero": (
        _conv_case(SPIKES),
        ("simulate", "c.net", "--input", "X.npy", "-o", "Y.npy", "--input-shape", "2,0,6"),
        ("--input-shape", "'2,0,6'"),
    ),
    "channels": (
        _conv_case(SPIKES),
        ("simulate", "c.net", "--input", "X.npy", "-o", "Y.npy", "--input-shape", "3,6,6"),
        ("c.net", "layer 0", "(3, 6, 6)", "3 input channels", "takes 2"),
    ),
    "empty-output": (
        _conv_case(SPIKES),
        ("simulate", "c.net", "--input", "X.npy", "-o", "Y.npy", "--input-shape", "2,2,2"),
        ("c.net", "layer 0", "(2, 2, 2)", "empty conv output (4, 0, 0)"),
    ),
    "wrong-output": (
        _conv_case(SPIKES),
        ("simulate", "c.net", "--input", "X.npy", "-o", "Y.npy", "--input-shape", "2,8,8"),
        ("c.net", "layer 0", "conv output (4, 6, 6)", "the file says (4, 4, 4)"),
    ),
    "rank": (
        _conv_case(SPIKES),
        ("simulate", "c.net", "--input", "X.npy", "-o", "Y.npy", "--input-shape", "72"),
        ("c.net", "layer 0", "(72,)", "is not (C, H, W)"),
    ),
    "data-channels": (
        _conv_case(("X3.npy", (2, 3, 6, 6, T), True)),
        ("simulate", "c.net", "--input", "X3.npy", "-o", "Y.npy"),
        ("c.net", "layer 0", "3 input channels", "--input X3.npy"),
    ),
    "data-rank": (
        _conv_case(("X2.npy", (2, 72, T), True)),
        ("simulate", "c.net", "--input", "X2.npy", "-o", "Y.npy"),
        ("X2.npy", "(2, 72, 4)", "(N, C, H, W, T)"),
    ),
    "given-vs-spikes": (
        _conv_case(("X7.npy", (2, 2, 7, 7, T), True)),
        ("simulate", "c.net", "--input", "X7.npy", "-o", "Y.npy", "--input-shape", "2,6,6"),
        ("X7.npy", "(2, 2, 7, 7, 4)", "(N, 2, 6, 6, T)"),
    ),
    "given-vs-data": (
        _conv_case(("D7.npy", (2, 2, 7, 7), False)),
        ("verify", "c.net", "--data", "D7.npy", "-T", str(T), "--input-shape", "2,6,6"),
        ("D7.npy", "(2, 2, 7, 7)", "(N, 2, 6, 6)"),
    ),
    "data-output": (
        _conv_case(("D5.npy", (2, 2, 5, 5), False)),
        ("evaluate", "c.net", "--data", "D5.npy", "--labels", "L.npy", "-T", str(T), "--backend", "lava-sim"),
        ("c.net", "layer 0", "conv output (4, 3, 3)", "--data D5.npy"),
    ),
    "input-layer": (
        _conv_case(SPIKES, with_input=True),
        ("simulate", "c.net", "--input", "X.npy", "-o", "Y.npy", "--input-shape", "2,7,7"),
        ("c.net", "layer 0", "'input' layer has shape (2, 6, 6)", "(2, 7, 7)"),
    ),
    "checkpoint": (
        lambda d: (d / "model.pt").write_bytes(b"not a netx file"),
        ("evaluate", "model.pt", "--input-shape", "1,8,8"),
        ("model.pt", "--input-shape applies to netx files"),
    ),
    "dense-size": (
        lambda d: (_mlp(d / "m.net"), _npy(d, "X.npy", (2, 3, 3, T))),
        ("simulate", "m.net", "--input", "X.npy", "-o", "Y.npy", "--input-shape", "3,3"),
        ("m.net", "layer 0", "8 inputs", "input shape (3, 3)"),
    ),
}


def _lava_dl_sdnn(d: Path) -> None:
    unpack("pilotnet_sdnn_head.net", d)
    _npy(d, "X.npy", (1, 3, 33, 33, T))


LAVA_DL = {  # the verb that does not take sigma-delta networks (NIR has no sigma-delta neuron; the others run them)
    "pilotnet-sdnn-export-nir": (("export-nir", "pilotnet_sdnn_head.net", "-o", "m.nir"),),
}


def _all_cases() -> dict[str, tuple[Build, tuple[str, ...]]]:
    cases: dict[str, tuple[Build, tuple[str, ...]]] = {}
    for name, (change, command, _) in REFUSED.items():
        cases[f"refused-{name}"] = (_mlp_case(change), MLP_CALLS[command])
    for name, (build, argv, _) in SHAPE_CASES.items():
        cases[f"shape-{name}"] = (build, argv)
    for name, (argv,) in LAVA_DL.items():
        cases[name] = (_lava_dl_sdnn, argv)
    return cases


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every case's CLI run, three at a time, each in its own folder (so that new files are its own)."""
    folders = {}
    for name, (build, _) in _all_cases().items():
        d = tmp_path_factory.mktemp(name)
        build(d)
        np.save(d / "L.npy", np.array([0, 1]))
        folders[name] = d
    with cf.ThreadPoolExecutor(3) as pool:
        futures = {name: pool.submit(run_cli, folders[name], *argv) for name, (_, argv) in _all_cases().items()}
        return {name: fut.result() for name, fut in futures.items()}


# --- the tests ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_by_name(runs: dict[str, Run], name: str) -> None:
    line = assert_refused(runs[f"refused-{name}"], "bad.net", "layer 1", *REFUSED[name][2])
    assert "not supported" in line


@pytest.mark.parametrize("name", list(SHAPE_CASES))
def test_input_shape_refused(runs: dict[str, Run], name: str) -> None:
    assert_refused(runs[f"shape-{name}"], *SHAPE_CASES[name][2])


@pytest.mark.parametrize("name", list(LAVA_DL))
def test_lava_dl_sdnn_network_refused(runs: dict[str, Run], name: str) -> None:
    """lava-dl's own PilotNet SDNN (its first two layers, verbatim): export-nir refuses it at layer 0, by name
    (simulate, verify and evaluate run it: sim_tests/parity/test_sdnn.py; report: test_report_sdnn.py)."""
    run = runs[name]
    assert_refused(run, "pilotnet_sdnn_head.net", "layer 0", "neuron type 'SDNN'", "sigma-delta", "no NIR equivalent")
    assert_no_processes_in(run.cwd)


def test_simulate_shape_from_spikes_or_option(tmp_path: Path) -> None:
    """The emulator runs a conv-first file without an 'input' layer; the shape from ``--input`` and the same
    shape given as ``--input-shape`` give the same spikes (Lava: sim_tests/parity/test_foreign_netx.py)."""
    _conv_first(tmp_path / "c.net")
    _npy(tmp_path, "X.npy", SPIKES[1])
    a = run_cli(tmp_path, "simulate", "c.net", "--input", "X.npy", "-o", "a.npy")
    b = run_cli(tmp_path, "simulate", "c.net", "--input", "X.npy", "-o", "b.npy", "--input-shape", "2,6,6")
    for run in (a, b):
        assert run.rc == 0 and "Traceback" not in run.stderr, run.stderr
    ya, yb = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert ya.shape == (2, 3, T) and np.array_equal(ya, yb)


# --- the reader itself --------------------------------------------------------------------------------------
def test_reader_input_shape(tmp_path: Path) -> None:
    """read_netx(path, input_shape): required for a conv-first file without an 'input' layer, checked against
    the first conv; optional and checked elsewhere; a file with an 'input' layer reads the same either way."""
    c = _conv_first(tmp_path / "c.net")
    with pytest.raises(NetxInputShapeError, match="layer 0: conv-first network without an 'input' layer"):
        read_netx(c)
    m = read_netx(c, input_shape=(2, 6, 6))
    assert m.input.shape == (2, 6, 6) and not m.input.declared and m.netx_input_shape == (6, 6, 2)
    for bad in [(2, 6.0, 6), "266", (2, -6, 6)]:
        with pytest.raises(NetxFormatError, match="input shape"):
            read_netx(c, input_shape=bad)
    ci = _conv_first(tmp_path / "ci.net", with_input=True)
    plain, given = read_netx(ci), read_netx(ci, input_shape=(2, 6, 6))
    assert plain.input == given.input and plain.input.declared and plain.netx_input_shape is None
    assert [lay.shape for lay in plain.neuron_layers] == [lay.shape for lay in given.neuron_layers]
    d = _mlp(tmp_path / "m.net")
    assert read_netx(d).input.shape == (8,) and read_netx(d).netx_input_shape is None
    assert read_netx(d, input_shape=(2, 2, 2)).input.shape == (2, 2, 2)  # 8 values: a dense takes any layout


@pytest.mark.parametrize("name", list(REFUSED))
def test_reader_refuses_by_name(tmp_path: Path, name: str) -> None:
    change, _, words = REFUSED[name]
    with pytest.raises(NetxFormatError) as exc:
        read_netx(_mlp(tmp_path / "bad.net", change))
    msg = str(exc.value)
    assert "\n" not in msg and "bad.net: layer 1: " in msg and all(w in msg for w in words), msg
