"""Where trials run: a few long-lived worker processes, or the tuning process itself.

A worker is a fresh interpreter (``python -m object2vec.tuning.worker``; nothing forked from the
parent, whose PyTorch thread pools would not survive a fork, and the caller's script is not run
again, so ``tune`` needs no ``if __name__ == "__main__"`` guard) that imports PyTorch once and then
runs trial after trial, each with its share of the cores. A worker that dies in the middle of a
trial (the kernel's out-of-memory killer, a segfault) costs that trial only: it is reported failed
with the exit signal, and a new worker takes the slot.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, cast

from .worker import Outcome, Task, run_trial


class WorkerPool:
    """``size`` worker processes, each running one trial at a time with ``threads`` torch threads."""

    def __init__(self, size: int, threads: int):
        self.size = size
        self.threads = threads
        self._workers: list[tuple[subprocess.Popen, Connection] | None] = [None] * size
        self._busy: dict[int, Task] = {}

    def free(self) -> bool:
        return len(self._busy) < self.size

    def running(self) -> list[Task]:
        return list(self._busy.values())

    def submit(self, task: Task) -> None:
        slot = next(i for i in range(self.size) if i not in self._busy)
        worker = self._workers[slot]
        if worker is None or worker[0].poll() is not None:
            worker = self._start(slot)
        worker[1].send(task)
        self._busy[slot] = task

    def _start(self, slot: int) -> tuple[subprocess.Popen, Connection]:
        ours, theirs = socket.socketpair()
        package_root = str(Path(__file__).resolve().parents[2])  # the same object2vec as this process
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(self.threads)  # read when PyTorch loads
        command = [sys.executable, "-m", "object2vec.tuning.worker", str(theirs.fileno()), str(self.threads), str(slot)]
        process = subprocess.Popen(command, pass_fds=(theirs.fileno(),), env=env)
        theirs.close()
        self._workers[slot] = (process, Connection(ours.detach()))
        return self._workers[slot]  # type: ignore[return-value]

    def wait(self, timeout: float) -> list[tuple[Task, Outcome]]:
        """Trials that ended within ``timeout`` seconds (possibly none)."""
        waiting = {self._workers[slot][1]: slot for slot in self._busy}  # type: ignore[index]
        done = []
        for ready in wait(list(waiting), timeout):
            conn = cast(Connection, ready)
            slot = waiting[conn]
            process = self._workers[slot][0]  # type: ignore[index]
            try:
                outcome = cast(Outcome, conn.recv())
            except (EOFError, OSError):  # the worker died: its end of the socket closed
                conn.close()
                outcome = Outcome("fail", reason=_death(process.wait()))
                self._workers[slot] = None
            done.append((self._busy.pop(slot), outcome))
        return done

    def close(self) -> None:
        for worker in self._workers:
            if worker is None:
                continue
            process, conn = worker
            conn.close()  # an idle worker ends when its socket closes
            try:
                process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                process.kill()  # a worker in the middle of a trial
                process.wait(timeout=5)
        self._workers = [None] * self.size
        self._busy.clear()


def _death(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        hint = " (the system may have run out of memory)" if -code == signal.SIGKILL else ""
        return f"the trial's process was killed by {name}{hint}"
    return f"the trial's process ended with exit code {code}"


class InProcess:
    """Runs each trial in the tuning process when it is waited for: no start-up cost, easy to debug,
    but a crash of a trial ends the study (it resumes from the next run)."""

    size = 1

    def __init__(self, study: Any):
        self.study = study
        self._task: Task | None = None

    def free(self) -> bool:
        return self._task is None

    def running(self) -> list[Task]:
        return [self._task] if self._task else []

    def submit(self, task: Task) -> None:
        self._task = task

    def wait(self, timeout: float) -> list[tuple[Task, Outcome]]:
        task, self._task = self._task, None
        return [(task, run_trial(task, self.study))] if task else []

    def close(self) -> None:
        self._task = None
