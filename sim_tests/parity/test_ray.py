"""Lava verification sharded over Ray (deploy/scale/ray_lava.py), on a local Ray instance of this machine's CPUs.

Ray is an optional extra: ``make test-ray`` installs it and runs these; elsewhere they are skipped."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from loihic.compiler.config import CompileConfig
from loihic.compiler.errors import LoihicError
from loihic.deploy.lava.run import run_lava
from loihic.training.ann import train_ann
from loihic.training.checkpoint import save_checkpoint
from loihic.training.convert import convert
from loihic.training.data import load_dataset
from loihic.training.deployment import compile_checkpoint

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.lava]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    d = tmp_path_factory.mktemp("ray")
    x_train, _ = load_dataset("digits", "train")
    ann = train_ann("mlp", "digits", 2, 0, hidden=32, progress=False)
    save_checkpoint(d / "snn.pt", convert(ann, x_train, 8, calib_samples=64, progress=False))
    compile_checkpoint(str(d / "snn.pt"), str(d / "m.net"), CompileConfig())
    x = (np.random.default_rng(0).random((24, 1, 8, 8, 8)) < 0.3).astype(np.int8)
    return d / "m.net", x


def _same(a, b) -> None:  # noqa: ANN001
    np.testing.assert_array_equal(a.output_spikes, b.output_spikes)
    np.testing.assert_array_equal(a.output_v, b.output_v)
    for la, lb in zip(a.layer_spikes, b.layer_spikes, strict=True):
        np.testing.assert_array_equal(la, lb)


def test_sharded_run_equals_the_single_process_run(net: tuple[Path, np.ndarray]) -> None:
    from loihic.deploy.scale.ray_lava import run_lava_ray

    path, x = net
    one = run_lava(str(path), x, record_layers=True, read_v=True, progress=False)
    sharded = run_lava_ray(str(path), x, shard_samples=7, record_layers=True, read_v=True, progress=False)
    _same(one, sharded)
    assert not ray.is_initialized()  # the local instance it started is shut down


def _ray_task_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(b"ray::_shard"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_a_killed_task_is_retried(net: tuple[Path, np.ndarray]) -> None:
    from loihic.deploy.scale.ray_lava import run_lava_ray

    path, x = net
    out: dict = {}
    thread = threading.Thread(
        target=lambda: out.update(res=run_lava_ray(str(path), x, shard_samples=12, read_v=True, progress=False))
    )
    thread.start()
    killed, t0 = None, time.monotonic()
    while killed is None and time.monotonic() - t0 < 120 and thread.is_alive():
        pids = _ray_task_pids()
        if pids:
            killed = pids[0]
            os.kill(killed, 9)  # the worker dies mid-task: Ray must rerun that sample range
        time.sleep(0.05)
    thread.join(300)
    assert killed is not None, "no Ray task process was seen"
    _same_out = run_lava(str(path), x, read_v=True, progress=False)
    np.testing.assert_array_equal(out["res"].output_spikes, _same_out.output_spikes)
    np.testing.assert_array_equal(out["res"].output_v, _same_out.output_v)


def test_a_hung_task_is_reported_by_sample_range(net: tuple[Path, np.ndarray]) -> None:
    from loihic.deploy.scale.ray_lava import run_lava_ray

    path, x = net
    with pytest.raises(LoihicError, match=r"samples 0\.\.11 did not finish within 0\.2 s on Ray"):
        run_lava_ray(str(path), x, shard_samples=12, retries=0, task_timeout=0.2, progress=False)
    assert not ray.is_initialized()
