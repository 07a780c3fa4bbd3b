"""Every Lava run ends, and leaves no process behind.

Lava (0.10.0) forks one OS process per leaf process, plus one per runtime service and a shared
memory manager (spec 3).  Three things go wrong with that, and this module answers each:

1. **A child raises.**  The process model reports the error and exits, but the blocks downstream
   of it are waiting for its output inside the same time step, so the runtime service never
   collects every answer, never forwards the error, and the parent waits in
   ``Runtime._get_resp_for_run`` forever (lava#178).  :func:`supervise` runs the Lava session in
   a worker thread and polls the session's child processes: a child that exits before the run is
   over fails the run at once, with the child's own exception in the message.
2. **A child hangs.**  :func:`supervise` also enforces a deadline.  Start-up (network build,
   compile, fork) and a short first ``run()`` chunk of :data:`PROBE_STEPS` steps get
   :data:`START_S` seconds; the chunk's measured cost ``c`` (for ``s`` steps) then sets the rest
   of the run's allowance, ``max(MIN_RUN_S, MULTIPLE * c * max(steps left / s, chunks left))``.
   ``LOIHIC_LAVA_TIMEOUT`` (seconds) or a ``timeout`` argument replaces all of that with one fixed
   limit for the whole run.
3. **The parent dies.**  :mod:`loihic.deploy.lava.no_orphans`: while a session is open, every process
   forked here dies with this process (``PR_SET_PDEATHSIG``), and SIGTERM/SIGHUP let the run clean
   up before the process dies of them.  The session's worker thread, whose end is what the kernel
   watches, is kept until the watcher has finished with the children.

After any failure the session's processes are terminated, then killed, then reaped; Lava's shared
memory manager is asked to unlink its segments; the runtime is marked stopped so that its
``__del__`` does not wait on dead children.  The error is one line (:class:`LavaRunError`).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from loihic.compiler.errors import LoihicError
from loihic.deploy.lava.no_orphans import children_die_with_parent

ENV_TIMEOUT = "LOIHIC_LAVA_TIMEOUT"  # seconds for a whole Lava run, replacing the automatic deadline
START_S = 60.0  # start-up (build, compile, fork) plus the probe chunk
PROBE_STEPS = 16  # steps of the first run() chunk, whose cost is measured
MIN_RUN_S = 60.0  # the rest of the run gets at least this ...
MULTIPLE = 10.0  # ... or this many times its estimated cost (the estimate itself errs high)
POLL_S = 0.1  # how often the watchdog looks at the children
KILL_GRACE_S = 2.0  # SIGTERM -> SIGKILL
EXIT_GRACE_S = 1.0  # after a child exits, wait this long for the exception of the one that raised

T = TypeVar("T")


class LavaRunError(LoihicError):
    """A Lava run failed, died or hung; its processes have been stopped."""


def resolve_timeout(timeout: float | None) -> float | None:
    """The fixed limit in seconds for a run: ``timeout``, else ``$LOIHIC_LAVA_TIMEOUT``, else None
    (the automatic deadline)."""
    where = "timeout"
    if timeout is None:
        raw = os.environ.get(ENV_TIMEOUT, "").strip()
        if not raw:
            return None
        where = ENV_TIMEOUT
        try:
            timeout = float(raw)
        except ValueError:
            raise LoihicError(f"{ENV_TIMEOUT}={raw!r}: expected a number of seconds > 0") from None
    if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
        raise LoihicError(f"{where}={timeout!r}: expected a number of seconds > 0")
    return float(timeout)


# --- the watchdog -------------------------------------------------------------------------------------
@dataclass
class Session:
    """What the worker thread running a Lava session tells the watchdog, and the other way round."""

    plan: list[int]  # steps of each run() chunk, the probe first
    live_step: Callable[[], int] = lambda: 0  # the last Lava step the output sink has seen
    net: Any = None  # the netx Network, once built (its runtime is stopped after a failure)
    phase: str = "start-up"  # start-up -> running -> stopping
    steps_done: int = 0
    chunks_done: int = 0
    probe: tuple[float, int, float] | None = None  # (seconds, steps, finished at) of the first chunk
    cancelled: bool = False
    _chunk_t: float = field(default=0.0, repr=False)

    @property
    def total(self) -> int:
        return sum(self.plan)

    def start_chunk(self) -> None:
        if self.cancelled:
            raise LavaRunError("Lava run cancelled by its watchdog")
        self.phase, self._chunk_t = "running", time.monotonic()

    def end_chunk(self, steps: int) -> None:
        now = time.monotonic()
        if self.chunks_done == 0:
            self.probe = (now - self._chunk_t, steps, now)
        self.chunks_done += 1
        self.steps_done += steps

    def step(self) -> int:
        try:
            live = int(self.live_step())
        except (OSError, ValueError):
            live = 0
        return min(self.total, max(self.steps_done, live))


def _deadline(session: Session, t0: float, timeout: float | None) -> float:
    if timeout is not None:
        return t0 + timeout
    if session.probe is None:
        return t0 + START_S
    seconds, steps, at = session.probe
    rest = session.plan[1:]
    estimate = seconds * max(sum(rest) / max(steps, 1), len(rest))
    return at + max(MIN_RUN_S, MULTIPLE * estimate)


def _exitcode(proc: mp.process.BaseProcess) -> int | None:
    try:
        return proc.exitcode
    except ValueError:  # closed by Lava after joining it: it has exited
        return 0


def _describe(proc: mp.process.BaseProcess, pid: int | None, net: Any) -> str:
    """``PyLifResetModelBitAcc of netx block 2 (Dense), pid 123``: which Lava process this child runs.
    The runtime starts its actors in the order of the executable's builders (``Runtime.initialize``)."""
    what = proc.name
    with contextlib.suppress(Exception):
        runtime = net._runtime
        index = runtime._messaging_infrastructure.actors.index(proc)
        builders = list(runtime._executable.proc_builders.items())
        if index >= len(builders):  # the runtime services come after the process models
            what = "Lava runtime service"
        else:
            lava_proc, builder = builders[index]
            what = f"{builder.proc_model.__name__} of {type(lava_proc).__name__} '{lava_proc.name}'"
            for b, block in enumerate(net.layers):
                if lava_proc in (getattr(block, "neuron", None), getattr(block, "synapse", None)):
                    what = f"{builder.proc_model.__name__} of netx block {b} ({type(block).__name__})"
    return what if pid is None else f"{what}, pid {pid}"


def _child_error(proc: mp.process.BaseProcess) -> str | None:
    """The exception a Lava ``SystemProcess`` sent up its pipe before exiting, as one line."""
    box: list[Any] = []

    def read() -> None:
        conn = getattr(proc, "_pconn", None)
        if getattr(proc, "_is_done", True) or conn is None:
            box.append(getattr(proc, "_exception", None))
        elif conn.poll(0):
            box.append(conn.recv())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(1.0)  # never let a pipe read block the watchdog
    exc = box[0] if box else None
    if isinstance(exc, tuple) and exc:
        exc = exc[0]
    if not isinstance(exc, BaseException):
        return None
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= 300 else text[:297] + "..."


def _join(proc: mp.process.BaseProcess, seconds: float) -> None:
    # BaseProcess.join: Lava's SystemProcess.join takes no timeout (and closes the process)
    with contextlib.suppress(ValueError, OSError, AssertionError):
        mp.process.BaseProcess.join(proc, max(0.0, seconds))


def _kill(procs: list[mp.process.BaseProcess]) -> None:
    alive = [p for p in procs if _exitcode(p) is None]
    for p in alive:
        with contextlib.suppress(ValueError, OSError):
            p.terminate()
    end = time.monotonic() + KILL_GRACE_S
    for p in alive:
        _join(p, end - time.monotonic())
    for p in alive:
        if _exitcode(p) is None:
            with contextlib.suppress(ValueError, OSError):
                p.kill()
            _join(p, 5.0)


def _bounded(fn: Callable[[], object], seconds: float) -> None:
    """Call ``fn`` in a daemon thread; give up on it (not on us) after ``seconds``."""

    def call() -> None:
        with contextlib.suppress(Exception):
            fn()

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(seconds)


def _force_stop(session: Session, procs: list[mp.process.BaseProcess]) -> None:
    """Stop a failed session: kill Lava's workers, let the shared memory manager unlink its segments,
    mark the runtime stopped (its ``__del__`` would otherwise wait for answers), kill the rest."""
    session.cancelled = True
    _kill([p for p in procs if type(p).__name__ == "SystemProcess"])
    runtime = getattr(session.net, "_runtime", None)
    if runtime is not None:
        runtime._is_started = runtime._is_running = False
        smm = getattr(getattr(runtime, "_messaging_infrastructure", None), "smm", None)
        manager = getattr(smm, "_manager", None)
        if manager is not None:
            _bounded(manager.shutdown, 5.0)  # the server unlinks every segment, then exits
            smm._shared_memory_handles.clear()
            smm._manager = None
        watchdogs = getattr(runtime, "_watchdog_manager", None)
        if watchdogs is not None:
            _bounded(watchdogs.stop, 2.0)
    _kill(procs)


@contextlib.contextmanager
def _setting(event: threading.Event) -> Iterator[None]:
    try:
        yield
    finally:
        event.set()


class _Watch:
    """The processes a session started (everything forked after it began), and its verdicts."""

    def __init__(self, session: Session, timeout: float | None) -> None:
        self.session, self.timeout = session, timeout
        self.t0 = time.monotonic()
        self.before = set(mp.active_children())
        self.first_exit: float | None = None  # when a session process was first seen to have exited
        self.seen: dict[mp.process.BaseProcess, int | None] = {}  # process -> pid, in the order first seen

    def procs(self) -> list[mp.process.BaseProcess]:
        """Our children started since the session began, plus every actor of the runtime and its
        shared memory manager (Lava closes its actors after an error, and a short run can start and
        close them between two polls)."""
        found = mp.active_children()
        infra = getattr(getattr(self.session.net, "_runtime", None), "_messaging_infrastructure", None)
        found += list(getattr(infra, "actors", None) or [])
        manager = getattr(getattr(infra, "smm", None), "_manager", None)
        found += [manager._process] if getattr(manager, "_process", None) is not None else []
        for p in found:
            if p not in self.before and p not in self.seen:
                try:
                    self.seen[p] = p.pid
                except ValueError:  # closed: its pid is gone with it
                    self.seen[p] = None
        return list(self.seen)

    def dead(self) -> tuple[str, bool] | None:
        """What happened to a session process that has exited, if any: the first that raised (True),
        else the first to have exited (False)."""
        exited = [(p, c) for p in self.procs() if (c := _exitcode(p)) is not None]
        if not exited:
            return None
        errors = ((p, err) for p, _ in exited if (err := _child_error(p)) is not None)
        proc, err = next(errors, (None, None))
        if proc is not None:
            return f"Lava process {_describe(proc, self.seen[proc], self.session.net)} died with {err}", True
        proc, code = exited[0]
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        return f"Lava process {_describe(proc, self.seen[proc], self.session.net)} {how}", False

    def verdict(self) -> str | None:
        """Why the run must be stopped now, or None while it is healthy."""
        s = self.session
        if s.phase != "stopping" and (dead := self.dead()) is not None:
            # a child that raised exits after its pipe message, the others (stopped by Lava) may go first
            self.first_exit = self.first_exit or time.monotonic()
            if dead[1] or time.monotonic() - self.first_exit > EXIT_GRACE_S:
                return f"failed at step {s.step()} of {s.total}: {dead[0]}"
        deadline = _deadline(s, self.t0, self.timeout)
        if time.monotonic() <= deadline:
            return None
        limit = deadline - self.t0
        within = f"{limit:.0f} s" if limit >= 10 else f"{limit:.1f} s"
        why = "hung, or the limit is too short" if self.timeout else f"hung (allow longer with {ENV_TIMEOUT}=seconds)"
        return f"did not finish within {within} (stuck at step {s.step()} of {s.total}); a Lava process {why}"


def supervise(
    body: Callable[[Session], T],
    session: Session,
    *,
    label: str,
    timeout: float | None = None,
    on_poll: Callable[[Session], None] | None = None,
) -> T:
    """Run ``body(session)`` (a whole Lava session: build, run the chunks of ``session.plan``, stop)
    in a worker thread, and watch it from this one; see the module doc.  ``label`` starts every
    error message, e.g. ``"m.net: lava-sim run"``."""
    watch = _Watch(session, timeout)
    outcome: dict[str, Any] = {}
    done, release = threading.Event(), threading.Event()

    def target() -> None:
        try:
            outcome["value"] = body(session)
        except BaseException as exc:  # noqa: BLE001 - handed to the watching thread
            outcome["error"] = exc
        finally:
            done.set()
            # The children's PR_SET_PDEATHSIG fires when THIS thread ends: keep it until the watcher
            # has stopped them in order (the shared memory manager must unlink its segments first).
            release.wait()

    with children_die_with_parent(), _setting(release):
        try:
            threading.Thread(target=target, name="loihic-lava-session", daemon=True).start()
            failure = None
            while failure is None and not done.wait(POLL_S):
                if on_poll is not None:
                    on_poll(session)
                failure = watch.verdict()
        except BaseException:  # KeyboardInterrupt, SIGTERM (exit_cleanly_on_signals)
            _force_stop(session, watch.procs())
            raise
        if failure is not None:
            _force_stop(session, watch.procs())
            raise LavaRunError(f"{label} {failure}")
        if "error" in outcome:
            exc = outcome["error"]
            try:
                dead = watch.dead()
            finally:
                _force_stop(session, watch.procs())  # Lava may raise with its children alive (spec 9)
            if isinstance(exc, RuntimeError) and dead is not None:
                raise LavaRunError(f"{label} failed: {dead[0]}") from exc
            raise exc
    if on_poll is not None:
        on_poll(session)
    return outcome["value"]
