"""Hooks into a training run: what progress displays, experiment trackers and tuners attach to.

:func:`object2vec.training.loop.fit` calls each callback's :meth:`Callback.on_epoch_end` with the
epoch's record (``{"epoch", "train", "validation"?, "throughput", "seconds"}``) once the epoch's
metrics are known, on every rank. A callback that returns True ends training after that epoch (the
best weights are still restored); an exception it raises (a tuner's pruning signal, say) ends the
run and propagates to the caller.
"""

from __future__ import annotations

from typing import Any, Protocol


class Callback(Protocol):
    def on_epoch_end(self, record: dict[str, Any]) -> bool | None:
        """Called after each epoch; return True to stop training."""
        ...
