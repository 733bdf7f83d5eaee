"""OpenMP threads that sleep when they wait, unless the user chose otherwise.

PyTorch's CPU kernels (and hcnn's and bilstm's compiled kernels) run their parallel regions on
OpenMP threads. GNU OpenMP's default lets a thread that reaches a barrier spin for 300,000
iterations before it sleeps. On a machine where another process holds a core — a laptop with a
browser, a CI runner, a shared server — the thread a barrier waits for is often descheduled, and
every small parallel region costs a scheduler time slice instead of microseconds. Measured on the
2-core development machine with one core busy with another job (AG News fit, pooled_embedding,
enc_dim 100, 2 torch threads): 47.7 s by default, 23.1 s with ``GOMP_SPINCOUNT=100000``, 9.1 s
with 10,000, 6.7 s with ``OMP_WAIT_POLICY=PASSIVE``, against 6.4 s on one thread
(docs/benchmarks.md, "Threads that sleep when they wait").

The policy is read once, when the OpenMP runtime loads with torch, so it is set here, when
object2vec is imported, and only if torch is not loaded yet and the user set neither
``OMP_WAIT_POLICY`` nor ``GOMP_SPINCOUNT``. Processes started from here (torchrun workers, tuning
trials) inherit it.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "PASSIVE"


def prefer_sleeping_waits() -> bool:
    """Set ``OMP_WAIT_POLICY`` for this process and its children; ``True`` if it was set here."""
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return False
    os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
    return True
