"""Make lava-nc 0.10.0 and lava-dl 0.6.0 importable on Python 3.11+ without touching site-packages.

Two problems stop those last releases from importing on a modern interpreter, and both are fixed
here by rewriting one line of source *as it is loaded* (an import hook), never on disk:

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

On Python 3.10 with torchvision and OpenCV present, and no multiprocessing context set before Lava
is imported, nothing is patched.

Call :func:`install` (or :func:`import_netx`) before anything imports ``lava``: the CLI, the test
suite's ``conftest.py`` and the Lava worker processes all go through :mod:`loihic.deploy.lava_run`,
which does.  Lava forks its processes, so children inherit the already-patched modules.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

_VAR_MODEL = "lava.magma.compiler.var_model"
_LAVA_MP = "lava.magma.runtime.message_infrastructure.multiprocessing"
_FORK_OLD = "mp.set_start_method('fork')"
_SLAYER = "lava.lib.dl.slayer"

_BYTE_ENCODER_OLD = "@dataclass\nclass ByteEncoder:"
_BYTE_ENCODER_NEW = "@dataclass(unsafe_hash=True)\nclass ByteEncoder:"
_OBD_OLD = "from . import object_detection as obd\n"
_OBD_NEW = "# loihic.deploy.lava_compat: object_detection skipped (needs torchvision and OpenCV)\n"


class LavaCompatError(ImportError):
    """Lava is missing, or its source is not the release this layer knows how to patch."""


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def needed_patches() -> dict[str, tuple[str, str]]:
    """The source rewrites this interpreter needs, keyed by module name (empty when none)."""
    patches: dict[str, tuple[str, str]] = {}
    if sys.version_info >= (3, 11):
        patches[_VAR_MODEL] = (_BYTE_ENCODER_OLD, _BYTE_ENCODER_NEW)
    if _missing("torchvision") or _missing("cv2"):
        patches[_SLAYER] = (_OBD_OLD, _OBD_NEW)
    patches[_LAVA_MP] = (_FORK_OLD, _FORK_OLD)  # decided when imported: see _fork_patch
    return patches


def _fork_patch() -> tuple[str, str] | None:
    """Rewrite of Lava's start-method call, given the multiprocessing state right now (item 3)."""
    import multiprocessing as mp

    method = mp.get_start_method(allow_none=True)
    if method is None:
        return None
    if method == "fork":
        return _FORK_OLD, "pass  # loihic.deploy.lava_compat: start method already 'fork'"
    return _FORK_OLD, "mp.set_start_method('fork', force=True)  # loihic.deploy.lava_compat"


class _PatchingLoader(importlib.machinery.SourceFileLoader):
    """Loads a module from its own file, replacing one exact piece of its source text."""

    def __init__(self, fullname: str, path: str, old: str, new: str) -> None:
        super().__init__(fullname, path)
        self._old, self._new = old, new

    def get_code(self, fullname: str):  # noqa: ANN201 - signature of the base class
        source = self.get_data(self.path).decode("utf-8")
        if source.count(self._old) != 1:
            raise LavaCompatError(
                f"{self.path}: expected exactly one '{self._old.splitlines()[-1]}' to patch; "
                "loihic supports lava-nc 0.10.0 and lava-dl 0.6.0 (reinstall with 'make setup')"
            )
        patched = source.replace(self._old, self._new)
        return compile(patched, self.path, "exec", dont_inherit=True)


class _LavaCompatFinder(importlib.abc.MetaPathFinder):
    def __init__(self, patches: dict[str, tuple[str, str]]) -> None:
        self.patches = patches

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001, ANN201
        if fullname not in self.patches:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        old, new = self.patches[fullname]
        if fullname == _LAVA_MP:
            rewrite = _fork_patch()
            if rewrite is None:
                return spec
            old, new = rewrite
        spec.loader = _PatchingLoader(fullname, spec.origin, old, new)
        return spec


def install() -> bool:
    """Register the import hook once.  Returns True when any patch is active.

    Raises :class:`LavaCompatError` if a module it must patch was already imported unpatched.
    """
    if any(isinstance(f, _LavaCompatFinder) for f in sys.meta_path):
        return True
    patches = needed_patches()
    early = [m for m in patches if m in sys.modules and m != _LAVA_MP]
    if early:
        raise LavaCompatError(
            f"{', '.join(early)} was imported before loihic.deploy.lava_compat.install(); import loihic before lava"
        )
    sys.meta_path.insert(0, _LavaCompatFinder(patches))
    return len(patches) > 1


def import_netx() -> ModuleType:
    """Install the hook and return ``lava.lib.dl.netx``, with a one-line error when Lava is absent."""
    install()
    try:
        from lava.lib.dl import netx
    except ModuleNotFoundError as exc:
        raise LavaCompatError(
            f"Lava is not installed ({exc.name} missing): run 'make setup' to install lava-nc 0.10.0 and lava-dl 0.6.0"
        ) from exc
    return netx
