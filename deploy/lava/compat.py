"""Make lava-nc 0.10.0 and lava-dl 0.6.0 importable on Python 3.11+, and run netx files reliably,
without touching site-packages.

Each problem below is fixed by rewriting a few exact lines of Lava's source *as it is loaded* (an
import hook), never on disk.  Items 1-3 stop those last releases from importing on a modern
interpreter; item 4 is a netx bug that hangs a run:

1. ``lava/magma/compiler/var_model.py`` declares ``class ByteEncoder`` as a plain ``@dataclass`` and
   uses instances of it as field defaults.  Python 3.11 rejects unhashable dataclass defaults
   (``ValueError: mutable default ... ByteEncoder``).  We load the module with
   ``@dataclass(unsafe_hash=True)`` on that class: instances stay mutable, the class becomes hashable,
   and nothing else changes.  Applied only on Python >= 3.11.
2. ``lava/lib/dl/slayer/__init__.py`` imports ``object_detection``, which needs torchvision and
   OpenCV; there is no CPU torchvision wheel.  netx imports slayer (for the RF neuron helper), so
   we load slayer without that one line when torchvision or cv2 is missing.  ``slayer.obd`` is then
   absent; nothing in loihic uses it.

3. ``lava/magma/runtime/message_infrastructure/multiprocessing.py`` calls
   ``mp.set_start_method('fork')`` at import, which raises "context has already been set" once
   anything created a multiprocessing lock first (tqdm does, for every progress bar).  Only in that
   case, and only if the method in force is not already 'fork', we load it with ``force=True``;
   when it is already 'fork' the call is dropped.  Lava needs fork either way.

4. ``lava/lib/dl/netx/hdf5.py`` passes a CUBA neuron's ``vThMant``/``iDecay``/``vDecay`` to Lava's LIF
   exactly as h5py returns them.  A floating-point dataset (``iDecay = 3.0``, what h5py stores for a
   Python or numpy float) gives the LIF a float ``du``; ``PyLifModelBitAcc.subthr_dynamics`` then
   raises ``TypeError: ufunc 'right_shift' not supported`` at the first step, inside a forked child,
   and the run never ends: the layers downstream wait for spikes that never come, so the runtime
   service never reports the error and the parent waits forever (lava#178).  We load hdf5.py with
   those three values passed through :func:`netx_integer`: integral floats become int64 (the run is
   then identical to the emulator, which reads them as integers), anything else is refused in the
   parent with a :class:`~loihic.compiler.errors.NetxFormatError` naming the file and dataset.
   Always applied (integer files are unchanged).

On Python 3.10 with torchvision and OpenCV present, and no multiprocessing context set before Lava
is imported, only item 4 is patched.

Call :func:`install` (or :func:`import_netx`) before anything imports ``lava``: the CLI, the test
suite's ``conftest.py`` and the Lava worker processes all go through :mod:`loihic.deploy.lava.run`,
which does.  Lava forks its processes, so children inherit the already-patched modules.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

import numpy as np

from loihic.compiler.errors import NetxFormatError

_VAR_MODEL = "lava.magma.compiler.var_model"
_LAVA_MP = "lava.magma.runtime.message_infrastructure.multiprocessing"
_FORK_OLD = "mp.set_start_method('fork')"
_SLAYER = "lava.lib.dl.slayer"
_NETX_HDF5 = "lava.lib.dl.netx.hdf5"

_BYTE_ENCODER_OLD = "@dataclass\nclass ByteEncoder:"
_BYTE_ENCODER_NEW = "@dataclass(unsafe_hash=True)\nclass ByteEncoder:"
_OBD_OLD = "from . import object_detection as obd\n"
_OBD_NEW = "# loihic.deploy.lava.compat: object_detection skipped (needs torchvision and OpenCV)\n"
_NETX_IMPORT_OLD = "import numpy as np\nimport h5py\n"
_NETX_IMPORT_NEW = _NETX_IMPORT_OLD + "from loihic.deploy.lava import compat as _loihic_compat\n"
_NETX_CUBA_OLD = """\
                             'vth': neuron_config['vThMant'],
                             'du': neuron_config['iDecay'] - 1,
                             'dv': neuron_config['vDecay'],
"""
_NETX_CUBA_NEW = """\
                             'vth': _loihic_compat.netx_integer(neuron_config, 'vThMant'),
                             'du': _loihic_compat.netx_integer(neuron_config, 'iDecay') - 1,
                             'dv': _loihic_compat.netx_integer(neuron_config, 'vDecay'),
"""

Rewrite = tuple[tuple[str, str], ...]  # (old, new) pairs; each old must occur exactly once


class LavaCompatError(ImportError):
    """Lava is missing, or its source is not the release this layer knows how to patch."""


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def needed_patches() -> dict[str, Rewrite]:
    """The source rewrites this interpreter needs, keyed by module name."""
    patches: dict[str, Rewrite] = {}
    if sys.version_info >= (3, 11):
        patches[_VAR_MODEL] = ((_BYTE_ENCODER_OLD, _BYTE_ENCODER_NEW),)
    if _missing("torchvision") or _missing("cv2"):
        patches[_SLAYER] = ((_OBD_OLD, _OBD_NEW),)
    patches[_LAVA_MP] = ((_FORK_OLD, _FORK_OLD),)  # decided when imported: see _fork_patch
    patches[_NETX_HDF5] = ((_NETX_IMPORT_OLD, _NETX_IMPORT_NEW), (_NETX_CUBA_OLD, _NETX_CUBA_NEW))
    return patches


def netx_integer(group, key: str):  # noqa: ANN001, ANN201 - an h5py group (netx NetDict); value as h5py gives it
    """``group[key]`` as integers for Lava's fixed-point LIF (item 4), shape and scalar-ness kept.

    Integer data pass unchanged; floats that hold integers become int64; anything else raises a
    one-line :class:`NetxFormatError`.  Called by the patched ``lava.lib.dl.netx.hdf5``."""
    value = group[key]
    arr = np.asarray(value)
    if arr.dtype.kind in "iu":
        return value
    if arr.dtype.kind == "f" and np.isfinite(arr).all() and (arr == np.round(arr)).all():
        return arr.astype(np.int64) if arr.ndim else np.int64(arr)
    h5 = getattr(group, "f", group)
    raise NetxFormatError(
        f"{h5.file.filename}: {h5.name}/{key} = {arr.tolist()!r} ({arr.dtype}) is not an integer; "
        "Loihi's fixed-point LIF needs integer vThMant, iDecay and vDecay"
    )


def _fork_patch() -> Rewrite | None:
    """Rewrite of Lava's start-method call, given the multiprocessing state right now (item 3)."""
    import multiprocessing as mp

    method = mp.get_start_method(allow_none=True)
    if method is None:
        return None
    if method == "fork":
        return ((_FORK_OLD, "pass  # loihic.deploy.lava.compat: start method already 'fork'"),)
    return ((_FORK_OLD, "mp.set_start_method('fork', force=True)  # loihic.deploy.lava.compat"),)


class _PatchingLoader(importlib.machinery.SourceFileLoader):
    """Loads a module from its own file, replacing exact pieces of its source text."""

    def __init__(self, fullname: str, path: str, rewrite: Rewrite) -> None:
        super().__init__(fullname, path)
        self._rewrite = rewrite

    def get_code(self, fullname: str):  # noqa: ANN201 - signature of the base class
        source = self.get_data(self.path).decode("utf-8")
        for old, new in self._rewrite:
            if source.count(old) != 1:
                raise LavaCompatError(
                    f"{self.path}: expected exactly one '{old.strip().splitlines()[-1].strip()}' to patch; "
                    "loihic supports lava-nc 0.10.0 and lava-dl 0.6.0 (reinstall with 'make setup')"
                )
            source = source.replace(old, new)
        return compile(source, self.path, "exec", dont_inherit=True)


class _LavaCompatFinder(importlib.abc.MetaPathFinder):
    def __init__(self, patches: dict[str, Rewrite]) -> None:
        self.patches = patches

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001, ANN201
        if fullname not in self.patches:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        rewrite = _fork_patch() if fullname == _LAVA_MP else self.patches[fullname]
        if rewrite is None:
            return spec
        spec.loader = _PatchingLoader(fullname, spec.origin, rewrite)
        return spec


def install() -> bool:
    """Register the import hook once.  Returns True (netx's integer check, item 4, is always active).

    Raises :class:`LavaCompatError` if a module it must patch was already imported unpatched.
    """
    if any(isinstance(f, _LavaCompatFinder) for f in sys.meta_path):
        return True
    patches = needed_patches()
    early = [m for m in patches if m in sys.modules and m != _LAVA_MP]
    if early:
        raise LavaCompatError(
            f"{', '.join(early)} was imported before loihic.deploy.lava.compat.install(); import loihic before lava"
        )
    sys.meta_path.insert(0, _LavaCompatFinder(patches))
    return True


def import_netx() -> ModuleType:
    """Install the hook and return ``lava.lib.dl.netx``, with a one-line error when Lava is absent."""
    install()
    try:
        from lava.lib.dl import netx
    except ModuleNotFoundError as exc:
        raise LavaCompatError(
            f"Lava is not installed ({exc.name} missing): run 'loihic install-lava' (in a checkout, 'make setup') "
            "to install lava-nc 0.10.0 and lava-dl 0.6.0"
        ) from exc
    return netx
