"""Lava verification sharded over a Ray cluster (``loihic verify/evaluate --backend lava-sim --ray [ADDRESS]``).

Samples are cut into consecutive ranges; each range is one Ray task that runs its own Lava runtime
(:func:`loihic.deploy.lava.run.run_lava`) on a copy of the netx file sent with the task (so workers on other
machines need no shared file system), and the results are merged in sample order, which makes the output
identical to the single-process run.  A task that fails (its worker died, or Lava raised) is retried
``retries`` times; one that does not finish within ``task_timeout`` seconds is cancelled and retried; a range
that still fails is reported by its sample range, never dropped.  ``address`` is ``None`` (or ``"local"``) for
a Ray instance started here on this machine's CPUs (and shut down afterwards), or a cluster address for
``ray.init(address=...)``.  Ray is an optional extra: ``pip install 'loihic[ray]'`` or ``make setup-ray``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from loihic.compiler.errors import LoihicError
from loihic.compiler.netx.read import NetxModel, read_netx
from loihic.deploy.lava.run import LavaResult, merge_results

DEFAULT_RETRIES = 2


def _ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise LoihicError("--ray needs Ray, an optional extra: pip install 'loihic[ray]' (or make setup-ray)") from None
    return ray


def _shard(net_bytes: bytes, model: NetxModel | None, x: np.ndarray, kwargs: dict[str, Any]) -> LavaResult:
    """One Ray task: write the netx file locally, run Lava on this sample range."""
    from loihic.deploy.lava import compat as lava_compat
    from loihic.deploy.lava.run import run_lava

    lava_compat.install()
    fd, path = tempfile.mkstemp(prefix="loihic-ray-", suffix=".net")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(net_bytes)
        local = dataclasses.replace(model, path=path) if model is not None else None
        return run_lava(path, x, progress=False, model=local, **kwargs)
    finally:
        os.unlink(path)


def run_lava_ray(
    path: str,
    x: np.ndarray,
    address: str | None = None,
    shard_samples: int | None = None,
    retries: int = DEFAULT_RETRIES,
    task_timeout: float | None = None,
    model: NetxModel | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> LavaResult:
    """:func:`~loihic.deploy.lava.run.run_lava` on ``x`` (N, *input, T), sharded over Ray (module docstring)."""
    model = model or read_netx(path)
    with ray_session(address) as ray:
        n = x.shape[0]
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        size = shard_samples or max(1, -(-n // cpus))
        ranges = [(a, min(a + size, n)) for a in range(0, n, size)]
        with open(path, "rb") as f:
            net_ref = ray.put(f.read())
        task = ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=True)(_shard)

        def submit(a: int, b: int) -> Any:
            return task.remote(net_ref, model, x[a:b], kwargs)

        refs = {r: submit(*r) for r in ranges}
        tries = dict.fromkeys(ranges, 0)
        done: dict[tuple[int, int], LavaResult] = {}
        from tqdm import tqdm

        bar = tqdm(total=n, desc="Lava on Ray", unit="sample", disable=not progress, leave=False)
        deadline = {r: time.monotonic() + task_timeout if task_timeout else None for r in ranges}
        while len(done) < len(ranges):
            pending = [refs[r] for r in ranges if r not in done]
            ready, _ = ray.wait(pending, num_returns=1, timeout=1.0)
            for r in ranges:
                if r in done:
                    continue
                if refs[r] in ready:
                    try:
                        done[r] = ray.get(refs[r])
                        bar.update(r[1] - r[0])
                    except Exception as exc:  # the task failed after Ray's own retries
                        raise LoihicError(
                            f"{path}: samples {r[0]}..{r[1] - 1} failed on Ray after {retries + 1} tries: "
                            f"{' '.join(str(exc).split())[-240:]}"
                        ) from None
                elif deadline[r] is not None and time.monotonic() > deadline[r]:
                    ray.cancel(refs[r], force=True)
                    tries[r] += 1
                    if tries[r] > retries:
                        raise LoihicError(
                            f"{path}: samples {r[0]}..{r[1] - 1} did not finish within {task_timeout:g} s on Ray "
                            f"({tries[r]} tries)"
                        )
                    refs[r] = submit(*r)
                    deadline[r] = time.monotonic() + task_timeout
        bar.close()
        return merge_results([done[r] for r in ranges])


@contextlib.contextmanager
def ray_session(address: str | None = None) -> Iterator[Any]:
    """Ray for :func:`run_lava_ray` and the sweep runner (:mod:`loihic.deploy.scale.sweep`): ``address`` None or
    ``"local"`` starts a local instance of this machine's CPUs, shut down on exit; else ``ray.init(address=...)``;
    an already initialised Ray is used as it is."""
    ray = _ray()
    started_here = not ray.is_initialized()
    if started_here:
        local = address in (None, "", "local")
        ray.init(
            address=None if local else address,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            **({"num_cpus": os.cpu_count() or 1} if local else {}),
        )
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()
