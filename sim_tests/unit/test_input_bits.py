"""B-bit graded input (encoding direct<B>, ``loihic compile --input-bits B``)."""

from __future__ import annotations

import numpy as np
import pytest

from loihic.compiler.config import CompileConfig
from loihic.compiler.encoding import check_encoding, direct_bits, direct_encoding, encode, input_scale
from loihic.compiler.encoding import encode_all as encoded
from loihic.compiler.errors import CheckpointError, InputError
from loihic.compiler.netx.read import read_netx
from loihic.deploy.verification.accuracy import emulator_accuracy
from loihic.training.checkpoint import save_checkpoint, validate_checkpoint, with_input_bits
from loihic.training.data import load_dataset
from loihic.training.deployment import compile_checkpoint
from loihic.training.noise import evaluate_noise, train_noise


def test_encoding_names() -> None:
    assert [direct_bits(e) for e in ("poisson", "direct", "direct8", "direct4", "direct1")] == [0, 8, 8, 4, 1]
    assert [input_scale(e) for e in ("poisson", "direct", "direct4", "direct1")] == [1, 255, 15, 1]
    assert direct_encoding(8) == "direct" and direct_encoding(3) == "direct3"
    for bad in ("direct0", "direct9", "directx", "direct 4", "Direct4", ""):
        with pytest.raises(InputError, match="encoding"):
            check_encoding(bad)
    for bad in (0, 9, 2.5, True):
        with pytest.raises(InputError, match="^--input-bits"):
            direct_encoding(bad)


def test_encode_levels() -> None:
    x = np.array([[0.0, 0.5, 1.0, 0.03]], np.float32)
    got = encode(x, 2, "direct4", 0)
    assert got.shape == (1, 4, 2) and np.array_equal(got[..., 0], got[..., 1])
    assert got[0, :, 0].tolist() == [0, 8, 15, 0]  # round(15 x), numpy's round half to even: 7.5 -> 8
    assert encode(x, 1, "direct", 0)[0, :, 0].tolist() == [0, 128, 255, 8]


@pytest.fixture(scope="module")
def noise_ckpt(tmp_path_factory) -> tuple[dict, str]:
    ck = train_noise("ap2-512fc", "digits", 20, 0, progress=False)
    path = tmp_path_factory.mktemp("bits") / "n.pt"
    save_checkpoint(path, ck)
    return ck, str(path)


def test_checkpoint_encodings(noise_ckpt) -> None:
    ck, _ = noise_ckpt
    four = with_input_bits(ck, 4)
    assert four["snn"]["encoding"] == "direct4" and ck["snn"]["encoding"] == "direct"
    validate_checkpoint(four, "four", "snn")
    with pytest.raises(CheckpointError, match="snn.encoding = 'direct9'"):
        validate_checkpoint({**ck, "snn": {**ck["snn"], "encoding": "direct9"}}, "nine", "snn")
    with pytest.raises(InputError, match="^--input-bits 4: applies to direct-encoded"):
        with_input_bits({**ck, "snn": {**ck["snn"], "encoding": "poisson"}}, 4)


def test_compile_input_bits(noise_ckpt, tmp_path) -> None:
    """Fewer input bits: the netx metadata says so, the first layer gets a scale at least as fine, and the
    emulator tracks the float network fed the same B-bit input."""
    ck, path = noise_ckpt
    scales = {}
    for bits in (8, 4):
        _compiled = compile_checkpoint(path, str(tmp_path / f"{bits}.net"), CompileConfig(input_bits=bits))
        net, rows = _compiled.path, _compiled.layers
        model = read_netx(net)
        assert model.meta["encoding"] == direct_encoding(bits)
        assert model.meta["input_message_bits"] == bits and model.meta["input_bits"] == bits
        scales[bits] = rows[0]["scale"]
        x, y = load_dataset("digits", "test")
        emu = emulator_accuracy(model, x, y, 5, model.meta["encoding"], 0, device="cpu", progress=False)
        flt = evaluate_noise(with_input_bits(ck, bits), x, y, 5, "lif")
        assert abs(emu - flt) <= 0.05, (bits, emu, flt)
    assert scales[4] >= scales[8]
    plain = compile_checkpoint(path, str(tmp_path / "p.net"), CompileConfig(input_bits=None)).path
    assert read_netx(plain).meta["encoding"] == "direct" and read_netx(plain).meta["input_bits"] is None
    auto = read_netx(compile_checkpoint(path, str(tmp_path / "a.net"), CompileConfig()).path).meta
    errors = {int(b): e for b, e in auto["input_bits_error"].items()}
    assert auto["input_bits_auto"] and auto["input_bits"] == min(errors, key=errors.__getitem__)
    assert auto["encoding"] == direct_encoding(auto["input_bits"])


def test_input_bits_refuses_poisson(tmp_path) -> None:
    from loihic.compiler.ir import Dense, Input, Network, Neuron
    from loihic.compiler.passes.input_bits import input_bits

    net = Network(
        Input((2,)),
        (Dense("d", np.ones((1, 2)), None, Neuron(1.0)),),
        4,
        "poisson",
    )
    assert input_bits(net, CompileConfig()) is net
    with pytest.raises(InputError, match="^--input-bits 4: applies to direct-encoded"):
        input_bits(net, CompileConfig(input_bits=4))


@pytest.mark.lava
def test_lava_identical_with_4_bit_input(noise_ckpt, tmp_path) -> None:
    from loihic.deploy.verification.parity import verify

    _, path = noise_ckpt
    net = compile_checkpoint(path, str(tmp_path / "4.net"), CompileConfig(input_bits=4)).path
    x, y = load_dataset("digits", "test")
    spikes = encoded(x[:3], 5, "direct4", 0)
    assert spikes.max() <= 15
    rep = verify(str(net), spikes, y[:3], input_message_bits=4, device="cpu", progress=False)
    assert rep.identical and rep.mismatches == 0, rep.first_mismatch
