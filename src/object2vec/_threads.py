"""OpenMP threads that spin only briefly before they sleep, unless the user chose otherwise.

PyTorch's CPU kernels (and hcnn's and bilstm's compiled kernels) run their parallel regions on
OpenMP threads. GNU OpenMP (the runtime of PyTorch's Linux wheels) lets a thread that reaches a
barrier spin for 300,000 iterations before it sleeps. On a machine where another process holds a
core — a laptop with a browser, a CI runner, a shared server — the thread a barrier waits for is
often descheduled, and every small parallel region costs a scheduler time slice instead of
microseconds: with one of 2 cores busy, 2-thread training ran 7-11x slower than it should.

Sleeping at once (``OMP_WAIT_POLICY=PASSIVE``) cures that but costs an idle machine 1.65-1.96x, as
every barrier then wakes a sleeping thread. A spin of 10,000 iterations keeps most of both
(benchmarks/wait_policy.py, 2 threads on the 2-core development machine, seconds of ``fit``):

=================  ==============  ==============  ===============
                   default (300k)  PASSIVE         spin 10,000
=================  ==============  ==============  ===============
idle, pooled       1.39            2.28            1.56
idle, hcnn         8.64            16.95           9.28
one core busy,     37.7            3.75            5.13
pooled
one core busy,     159.9           23.71           34.25
hcnn
=================  ==============  ==============  ===============

The spin count is read once, when the OpenMP runtime loads with torch, so it is set here, when
object2vec is imported, and only if torch is not loaded yet and the user set neither
``OMP_WAIT_POLICY`` nor ``GOMP_SPINCOUNT``. Processes started from here (torchrun workers, tuning
trials) inherit it. (LLVM's OpenMP, on macOS, does not read ``GOMP_SPINCOUNT``.)
"""

from __future__ import annotations

import os
import sys

SPIN_COUNT = "10000"


def prefer_short_spins() -> bool:
    """Set ``GOMP_SPINCOUNT`` for this process and its children; ``True`` if it was set here."""
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return False
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    return True
