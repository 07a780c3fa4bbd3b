"""Test-suite set-up.

- ``loihic.deploy.lava.compat.install()`` runs first, before any test module can import Lava.
- Markers: ``lava`` (runs Lava's CPU simulator; forks processes, seconds per test) and ``slow``
  (exhaustive; ``make test-slow`` only).  ``make test`` runs everything not marked ``slow``.
- torch runs on one thread (see below).
- Hypothesis runs derandomized (the same examples on every run) without deadlines.
"""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
import torch
from hypothesis import settings

from loihic.deploy.lava import compat as lava_compat

lava_compat.install()

# The suite's models are tiny: torch's thread pool only adds contention on 2 (often shared) cores, and
# made some modules 20x slower.  One thread for the whole session.
torch.set_num_threads(1)

settings.register_profile("loihic", derandomize=True, deadline=None, max_examples=60)
settings.load_profile("loihic")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _no_leftover_lava_processes():
    """Every test must leave no Lava (or other) child processes running."""
    yield
    alive = [p for p in multiprocessing.active_children() if p.is_alive()]
    assert not alive, f"child processes left running: {alive}"
