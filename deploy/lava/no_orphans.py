"""Lava's child processes end whenever their parent ends.

Lava forks one process per leaf process (spec 3), with multiprocessing's 'fork'.  A parent killed
with SIGTERM, SIGINT or SIGKILL used to leave them running, reparented to init and holding its
stdout open.  Every Lava run (:func:`loihic.deploy.lava.run.run_lava`) is wrapped in both of these:

- :func:`children_die_with_parent`: while open, every process forked here (an ``os.register_at_fork``
  hook) sets ``PR_SET_PDEATHSIG(SIGKILL)`` (Linux ``prctl``), and exits at once if its parent is
  already gone.  The kernel then kills it when the *thread* that forked it ends, which includes
  the whole parent dying, even of SIGKILL.  The children also ignore SIGINT: Ctrl-C reaches the
  whole foreground process group, and the parent stops them itself (no traceback per child).
- :func:`exit_cleanly_on_signals`: in the main thread, SIGTERM and SIGHUP (and SIGINT if it has no
  Python handler) raise an exception for the duration of the run, so that the run's cleanup
  (children stopped, temporary files removed) happens before the process dies of the same signal.
  SIGINT normally raises ``KeyboardInterrupt`` already, with the same effect.

:func:`die_with_parent` is also the initializer of ``run_lava_parallel``'s worker processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_guarded_parent: int | None = None  # while set, forked children die with this process
_hook_lock = threading.Lock()
_hook_installed = False
_prctl: Any = None


def _load_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent(parent_pid: int, signum: int = signal.SIGKILL) -> None:
    """Make the kernel send ``signum`` to this process when its parent (thread) ends; exit now if the
    parent is already gone.  Also the initializer of :func:`run_lava_parallel`'s workers."""
    prctl = _prctl or _load_prctl()
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def _after_fork_in_child() -> None:
    global _guarded_parent
    parent = _guarded_parent
    if parent is None:
        return
    _guarded_parent = os.getpid()  # its own children, if any, die with it in turn
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    die_with_parent(parent)


@contextlib.contextmanager
def children_die_with_parent() -> Iterator[None]:
    """While open, every process forked here gets ``PR_SET_PDEATHSIG(SIGKILL)`` (see the module doc)."""
    global _guarded_parent, _hook_installed, _prctl
    with _hook_lock:
        if not _hook_installed:
            _prctl = _load_prctl()
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _hook_installed = True
    previous, _guarded_parent = _guarded_parent, os.getpid()
    try:
        yield
    finally:
        _guarded_parent = previous


class _Terminated(BaseException):
    """SIGTERM/SIGHUP arrived during a Lava run; raised so that every ``finally`` runs first."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


@contextlib.contextmanager
def exit_cleanly_on_signals() -> Iterator[None]:
    """In the main thread: SIGTERM, SIGHUP (and SIGINT when it has no Python handler) raise inside
    the block; after the block's cleanup the process dies of that signal.  Signals that have a
    handler of someone else's, or are ignored, are left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if not fired:  # a second signal during cleanup must not abort the cleanup
            fired.append(signum)
            raise _Terminated(signum)

    saved = {}
    for sig in [getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGINT") if hasattr(signal, name)]:
        if signal.getsignal(sig) == signal.SIG_DFL:
            saved[sig] = signal.signal(sig, handler)
    try:
        yield
    except _Terminated as exc:
        for sig, old in saved.items():
            signal.signal(sig, old)
        saved.clear()
        os.kill(os.getpid(), exc.signum)  # default action: die of it, as without us
        raise SystemExit(128 + exc.signum) from None
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)
