"""netx HDF5: writer <-> reader round trip, golden files, refusals (Lava-free except where marked)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from loihic.compiler import ir
from loihic.compiler.errors import NetxFormatError, OutputExistsError, QuantizationError
from loihic.compiler.netx.read import NxConv, NxDense, NxFlatten, optimize_weight_bits, read_netx
from loihic.compiler.netx.write import write_netx
from loihic.compiler.pipeline import compile_network
from sim_tests.golden.make_golden import HERE as GOLDEN_DIR
from sim_tests.golden.make_golden import golden_networks, write_goldens


def _walk(f: h5py.File) -> dict[str, tuple]:
    items = {}
    f.visititems(
        lambda name, obj: (
            items.__setitem__(name, (obj.dtype.str, obj.shape, obj[()])) if isinstance(obj, h5py.Dataset) else None
        )
    )
    return items


@pytest.mark.parametrize("name", ["conv_small", "mlp_direct"])
def test_golden_files_are_reproduced_exactly(tmp_path, name):
    write_goldens(tmp_path)
    with h5py.File(GOLDEN_DIR / f"{name}.net") as a, h5py.File(tmp_path / f"{name}.net") as b:
        ga, gb = _walk(a), _walk(b)
        assert ga.keys() == gb.keys()
        for key in ga:
            (dta, sha, va), (dtb, shb, vb) = ga[key], gb[key]
            assert (dta, sha) == (dtb, shb), key
            if key.endswith("meta_json"):
                ma, mb = json.loads(va.tobytes()), json.loads(vb.tobytes())
                assert ma == mb
            else:
                assert np.array_equal(va, vb), key


def test_round_trip_integers_and_layout(tmp_path):
    net = compile_network(golden_networks()["conv_small"])
    path = write_netx(net, tmp_path / "m.net", {"timesteps": 16})
    model = read_netx(path)
    kinds = [type(lay) for lay in model.layers]
    assert kinds == [NxConv, NxConv, NxFlatten, NxDense]
    assert model.input.shape == (1, 8, 8) and model.output_shape == (5,)
    synaptic = net.synaptic()
    for lay, src in zip(model.neuron_layers, synaptic, strict=True):
        q = src.quant
        assert np.array_equal(lay.weight, q.weight)  # lossless, even in [-256, 254]
        assert (lay.neuron.v_th_mant, lay.neuron.i_decay, lay.neuron.v_decay) == (q.v_th_mant, q.i_decay, q.v_decay)
    assert np.array_equal(model.neuron_layers[0].neuron.bias, np.repeat(synaptic[0].quant.bias, 8 * 8))
    conv2 = model.neuron_layers[1]  # the pooling was folded into it
    assert conv2.weight.shape[2:] == (6, 6) and conv2.stride == (2, 2) and conv2.padding == (2, 2)
    assert model.meta == {"timesteps": 16}


def test_written_file_has_the_users_usual_mode(tmp_path):
    import os

    path = write_netx(compile_network(golden_networks()["mlp_direct"]), tmp_path / "m.net", {})
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_no_overwrite_without_force_and_atomic(tmp_path):
    net = compile_network(golden_networks()["mlp_direct"])
    path = tmp_path / "m.net"
    path.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="m.net"):
        write_netx(net, path, {})
    assert path.read_bytes() == b"precious"
    write_netx(net, path, {}, force=True)
    assert read_netx(path).layers and not list(tmp_path.glob(".*tmp"))


def test_writer_refuses_unquantized_and_bad_integers(tmp_path, rng):
    net = golden_networks()["mlp_direct"]
    with pytest.raises(Exception, match="not quantized|must be lowered"):
        write_netx(net, tmp_path / "a.net", {})
    q = ir.Quant(np.full((10, 12), 300), None, 10, 4096, 0, 1.0, 1, 0.0)
    bad = net.replace(
        layers=(
            ir.Dense("fc1", net.layers[0].weight, None, net.layers[0].neuron, quant=q),
            *compile_network(net).layers[1:],
        )
    )
    with pytest.raises(QuantizationError, match="fc1.*exceed"):
        write_netx(bad, tmp_path / "b.net", {})
    assert not (tmp_path / "b.net").exists() and not list(tmp_path.glob(".*"))


def _copy_with(tmp_path: Path, edit) -> Path:  # noqa: ANN001
    src = GOLDEN_DIR / "conv_small.net"
    dst = tmp_path / "edited.net"
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


@pytest.mark.parametrize("ltype,match", [("foo", "unknown; netx would skip it"), ("pool", "not supported")])
def test_reader_refuses_layer_types(tmp_path, ltype, match):
    def edit(f):
        del f["layer/2/type"]
        f["layer/2/type"] = ltype

    with pytest.raises(NetxFormatError, match=f"layer 2: layer type '{ltype}' is {match}"):
        read_netx(_copy_with(tmp_path, edit))


def _replace(f: h5py.File, key: str, **dataset) -> None:  # noqa: ANN003
    del f[key]
    f.create_dataset(key, **dataset)


@pytest.mark.parametrize(
    "key,dataset,match",
    [
        # a 10^9-neuron input layer (its conv would then be 10^9 neurons): refused from the 3 numbers declared
        ("layer/0/shape", {"data": np.array([1, 31623, 31623])}, r"layer 0: shape \(1, 31623, 31623\) declares more"),
        # 2^40 weights declared, a few bytes stored: refused from the declared shape, before anything is read
        (
            "layer/4/weight",
            {"shape": (2**20, 2**20), "dtype": np.int8, "chunks": (1, 1024)},
            r"layer 4: 'weight' declares shape \(1048576, 1048576\); at most",
        ),
        ("layer/2/neuron/vThMant", {"data": np.inf}, r"layer 2: 'neuron/vThMant' holds NaN or inf"),
        ("layer/2/stride", {"data": np.array([np.nan, 1.0])}, r"layer 2: 'stride' holds NaN or inf"),
        ("layer/1/padding", {"data": np.array([-1, 1])}, r"layer 1: 'padding' = \[-1, 1\], expected integers in"),
        ("layer/1/groups", {"data": 0}, r"layer 1: 'groups' = \[0\], expected integers in \[1,"),
        ("layer/1/weight", {"data": np.array(["a", "b"], dtype="S1")}, r"layer 1: 'weight' holds \|S1, expected"),
    ],
)
def test_reader_checks_sizes_and_numbers_before_use(tmp_path, key, dataset, match):
    with pytest.raises(NetxFormatError, match=match):
        read_netx(_copy_with(tmp_path, lambda f: _replace(f, key, **dataset)))


def test_reader_refuses_truncated_corrupt_and_non_netx(tmp_path):
    data = (GOLDEN_DIR / "conv_small.net").read_bytes()
    (tmp_path / "half.net").write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    corrupt[2000:6000] = b"\xff" * 4000
    (tmp_path / "corrupt.net").write_bytes(bytes(corrupt))
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    for name in ("half.net", "corrupt.net", "other.h5"):
        with pytest.raises(NetxFormatError, match=name):
            read_netx(tmp_path / name)


def test_reader_refuses_non_cuba_and_zero_weights(tmp_path):
    def sdnn(f):
        del f["layer/1/neuron/type"]
        f["layer/1/neuron/type"] = "SDNN"

    with pytest.raises(NetxFormatError, match="neuron type 'SDNN'"):
        read_netx(_copy_with(tmp_path, sdnn))

    def zero(f):
        f["layer/4/weight"][...] = 0

    with pytest.raises(NetxFormatError, match="all-zero"):
        read_netx(_copy_with(tmp_path, zero))


@pytest.mark.lava
def test_optimize_weight_bits_matches_lava_dl(rng):
    """Our numpy port equals netx's optimize_weight_bits + Lava Dense clip/truncate, incl. odd cases."""
    from lava.lib.dl.netx.utils import optimize_weight_bits as netx_opt
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    cases = [
        rng.integers(-128, 128, (4, 6)) * 2,
        rng.integers(-127, 128, (4, 6)),
        rng.integers(0, 256, (4, 6)),
        -rng.integers(0, 257, (4, 6)),
        rng.integers(-201, 202, (4, 6)),
        rng.integers(-32, 33, (4, 6)) * 8,
        rng.integers(0, 300, (4, 6)),
        rng.integers(-400, 400, (4, 6)),
    ]
    for w in cases:
        w = w.astype(float)
        ours, bits, wexp = optimize_weight_bits(w)
        nw, nbits, nexp, _ = netx_opt(w.copy())
        mode = determine_sign_mode(nw)
        lava = truncate_weights(clip_weights(nw, mode, num_bits=8), mode, nbits)
        assert (bits, wexp) == (nbits, nexp)
        assert np.array_equal(ours, lava.astype(np.int64))
