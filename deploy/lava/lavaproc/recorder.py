"""``MemmapSink``: a sink that records what it receives into a shared memory-mapped file.

Lava's ``io.sink.RingBuffer`` keeps its data in a Var, and ``Var.get`` sends one message per element
(about 25 us each, spec 3): reading 100 neurons x 10,000 steps takes 25 s.  This sink's process model
(running in Lava's forked child) writes every step's input into a ``np.memmap`` (MAP_SHARED) that
the parent created; the parent reads the file after the run.  Data travel through Lava's channels
exactly as to any sink; only the read-back differs.  Layout on disk: (buffer, *shape) int32, one
row per step, row ``(time_step - 1) % buffer`` (the RingBuffer convention).

With ``progress`` set, the sink also writes the Lava step it has just recorded into that file (one
int64, see :func:`allocate_progress`): the parent's watchdog reads it to tell how far a run got.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class MemmapSink(AbstractProcess):
    """Receive ``shape``-shaped data each step into the file ``path`` (created by :func:`allocate`)."""

    def __init__(self, *, shape: tuple[int, ...], buffer: int, path: str, progress: str = "") -> None:
        super().__init__(shape=shape, buffer=buffer, path=path, progress=progress)
        self.a_in = InPort(shape=shape)


def allocate(path: str, shape: tuple[int, ...], buffer: int) -> None:
    np.memmap(path, dtype=np.int32, mode="w+", shape=(buffer, *shape)).flush()


def allocate_progress(path: str) -> np.memmap:
    """Create the step counter a sink with ``progress=path`` updates; returns a live read-only view."""
    np.memmap(path, dtype=np.int64, mode="w+", shape=(1,)).flush()
    return np.memmap(path, dtype=np.int64, mode="r", shape=(1,))


def read(path: str, shape: tuple[int, ...], buffer: int) -> np.ndarray:
    """The recorded data as (*shape, buffer), the layout of ``RingBuffer.data``."""
    data = np.array(np.memmap(path, dtype=np.int32, mode="r", shape=(buffer, *shape)))
    return np.moveaxis(data, 0, -1)


@implements(proc=MemmapSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyMemmapSinkModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)

    def __init__(self, proc_params) -> None:  # noqa: ANN001 - Lava's signature
        super().__init__(proc_params)
        self._shape = tuple(proc_params["shape"])
        self._buffer = int(proc_params["buffer"])
        self._path = str(proc_params["path"])
        self._progress_path = str(proc_params["progress"])
        self._mm: np.memmap | None = None
        self._progress: np.memmap | None = None

    def run_spk(self) -> None:
        data = self.a_in.recv()
        if self._mm is None:
            self._mm = np.memmap(self._path, dtype=np.int32, mode="r+", shape=(self._buffer, *self._shape))
        self._mm[(self.time_step - 1) % self._buffer] = data
        if self._progress_path:
            if self._progress is None:
                self._progress = np.memmap(self._progress_path, dtype=np.int64, mode="r+", shape=(1,))
            self._progress[0] = self.time_step
