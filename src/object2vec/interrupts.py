"""SIGTERM and SIGINT: stop at a clean point, keep what is finished, say how to go on.

SageMaker, Kubernetes and Slurm stop a job with SIGTERM (and SIGKILL after a grace period); a user
presses Ctrl-C (SIGINT). Python's defaults end the process at once on SIGTERM, so no ``finally``
runs and temporary files stay behind. Inside :func:`handled` either signal raises
:class:`Interrupted` where the program stands instead, so every ``finally`` and atomic writer
cleans up, except inside :func:`deferred` (a training step), where the signal is only recorded:
the training loop asks :func:`pending` after each step, writes its checkpoint and raises
:class:`Interrupted` itself. A second signal does not wait.

>>> import os
>>> with handled(), deferred():
...     os.kill(os.getpid(), signal.SIGTERM)
...     pending() == signal.SIGTERM
True
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)

_pending: int | None = None
_deferring = 0


class Interrupted(BaseException):
    """A stop signal arrived. A ``BaseException``, like ``KeyboardInterrupt``, so that ``except
    Exception`` clauses do not swallow it; ``where`` says how far the work got."""

    def __init__(self, signum: int, where: str = ""):
        self.signum, self.where = signum, where
        self.advice = ""  # what to do next, added by whoever knows (the train command: how to resume)
        super().__init__(signum, where)

    def __str__(self) -> str:
        where = f" {self.where}" if self.where else ""
        return f"interrupted by {self.signal_name}{where}" + (f"; {self.advice}" if self.advice else "")

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number (143, 130)."""
        return 128 + self.signum


def _handler(signum: int, _frame: Any) -> None:
    global _pending
    if _deferring and _pending is None:
        _pending = signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into :class:`Interrupted` inside the block (main thread only: Python
    delivers signals there; elsewhere the block changes nothing)."""
    global _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in SIGNALS}
    _pending = None
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Inside this block the first signal is recorded (see :func:`pending`), not raised."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1


def active() -> bool:
    """Whether :func:`handled` is in effect (SIGTERM raises :class:`Interrupted`)."""
    return signal.getsignal(signal.SIGTERM) is _handler


def pending() -> int | None:
    """The signal recorded inside :func:`deferred` and not acted on yet, or None."""
    return _pending


def clear() -> None:
    """Forget a recorded signal (after acting on it)."""
    global _pending
    _pending = None
