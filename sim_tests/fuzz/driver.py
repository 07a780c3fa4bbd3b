"""Run many ``loihic`` command lines in ONE interpreter.

Usage: ``python -m sim_tests.fuzz.driver CASES.json OUT.jsonl [START]``.

Each case (``{"id", "argv", "cwd"}``) runs as ``loihic.deploy.cli.main.main(argv)`` in its own working folder, with
its stdout / stderr captured (Python's and file descriptor 2's, where C libraries write), under a per-case
deadline (``SIGALRM`` after ``deadline_s``, default 20 s), and with the address space capped
(``LOIHIC_FUZZ_MEMORY_GB``, default 6) so that a reader that allocates what a file declares gets a
``MemoryError`` instead of taking the machine's memory.  For every case one JSON line goes to OUT.jsonl:
exit code, captured text, an exception that escaped ``main()`` (with its traceback), whether the deadline hit,
the files that appeared in the folder.  A ``{"id", "started": true}`` line is written first, so that the
caller knows which case was running if this process dies (it then restarts after that case).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import sys
import tempfile
import time
import traceback
import warnings
from typing import Any


class CaseTimeout(BaseException):
    """The per-case deadline passed (a BaseException: ``except Exception`` in the code under test cannot eat it)."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise CaseTimeout


def _listing(folder: str) -> set[str]:
    return set(os.listdir(folder))


def run_one(case: dict[str, Any], main: Any, deadline: float) -> dict[str, Any]:
    cwd = case["cwd"]
    before = _listing(cwd)
    out, err = io.StringIO(), io.StringIO()
    result: dict[str, Any] = {"id": case["id"], "rc": None, "exception": None, "timeout": False}
    saved_fd2 = os.dup(2)
    t0 = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+b") as c_err:
        os.dup2(c_err.fileno(), 2)
        old = os.getcwd()
        try:
            os.chdir(cwd)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
                warnings.simplefilter("default")  # what a fresh `loihic` process shows: each warning once
                signal.setitimer(signal.ITIMER_REAL, deadline)
                try:
                    result["rc"] = main(case["argv"])
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        except CaseTimeout:
            result["timeout"] = True
        except SystemExit as exc:  # argparse
            result["rc"] = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:  # noqa: BLE001 - exactly what the fuzzer looks for
            result["exception"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]
        finally:
            os.chdir(old)
            sys.stderr.flush()
            os.dup2(saved_fd2, 2)
            os.close(saved_fd2)
            c_err.seek(0)
            c_text = c_err.read().decode("utf-8", "replace")
    result["seconds"] = round(time.perf_counter() - t0, 3)
    result["stdout"] = out.getvalue()[-2000:]
    result["stderr"] = err.getvalue()[-4000:] + c_text[-2000:]
    result["new_files"] = sorted(_listing(cwd) - before)
    return result


def main_loop(cases_path: str, out_path: str, start: int = 0) -> None:
    limit = int(float(os.environ.get("LOIHIC_FUZZ_MEMORY_GB", "6")) * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import torch

    torch.set_num_threads(1)
    from loihic.deploy.cli.main import main

    signal.signal(signal.SIGALRM, _on_alarm)
    with open(cases_path) as fh:
        cases = json.load(fh)
    with open(out_path, "a") as log:
        for case in cases[start:]:
            print(json.dumps({"id": case["id"], "started": True}), file=log, flush=True)
            res = run_one(case, main, float(case.get("deadline_s", 20.0)))
            print(json.dumps(res), file=log, flush=True)


if __name__ == "__main__":
    main_loop(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
